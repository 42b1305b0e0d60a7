"""Independent pools: requests that can never compete, solved apart and merged.

Two requests compete when they share an eligible resource, when one must follow the other,
or when they draw on one project budget that could run short. Following those links
transitively splits the requests into *pools*; nothing one pool plans can block, cap or
price anything of another, so each pool is an instance of its own:

- `independent_pools(prep)`: the pools, largest first (by request-resource pairs);
- `work_units(prep)`: pools bundled into units of work (small pools travel together, so
  a federation of many small pools does not pay one solver start each);
- `sub_instance(instance, prep, requests)`: a unit of work as a plain `Instance`: its
  requests, every resource they could use or are refused for, those resources' pinned
  bookings, the agreements between their units, their projects' budgets. It is pydantic
  and serialisable, so a job queue may solve units on several workers;
- `merge(instance, plans, ...)`: one plan for the whole instance. Priority-weighted
  fulfilment adds up over pools, so the merged bound is the sum of the pools' bounds;
  fairness (term 2) is maximised within each pool, not across them.
"""

from __future__ import annotations

from scheduling.eligibility import Prepared, displaced_pins
from scheduling.report import objective_of
from scheduling.schemas import Instance, Plan, ReasonCode, SolveStatus

UNIT_PAIRS = 2000
"""Pools smaller than this many (request, eligible resource) pairs are bundled together
into units of about this size."""


class _Links:
    """Union-find over request indices."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def root(self, r: int) -> int:
        while self.parent[r] != r:
            self.parent[r] = self.parent[self.parent[r]]
            r = self.parent[r]
        return r

    def join(self, a: int, b: int) -> None:
        a, b = self.root(a), self.root(b)
        if a != b:
            self.parent[max(a, b)] = min(a, b)


def pairs_of(prep: Prepared, r: int) -> int:
    """Request r's (requirement, eligible resource) pairs: the size of its part of a model."""
    return sum(len(group) for group in prep.eligible[r])


def independent_pools(prep: Prepared) -> list[list[int]]:
    """Requests (indices, ascending in each pool) split into pools that never compete,
    largest first (most pairs; ties: first request)."""
    inst = prep.instance
    links = _Links(len(inst.requests))
    holder: dict[int, int] = {}
    for r in range(len(inst.requests)):
        for k in prep.candidates(r):
            links.join(r, holder.setdefault(k, r))
        for dep in inst.requests[r].after:
            d = prep.request_index.get(dep)
            if d is not None:
                links.join(r, d)
    by_project: dict[str, int] = {}
    for r in _budget_bound(prep):
        links.join(r, by_project.setdefault(inst.requests[r].project, r))
    pools: dict[int, list[int]] = {}
    for r in range(len(inst.requests)):
        pools.setdefault(links.root(r), []).append(r)
    return sorted(pools.values(), key=lambda p: (-sum(pairs_of(prep, r) for r in p), p[0]))


def _budget_bound(prep: Prepared) -> list[int]:
    """Requests of projects whose budget could run short: even the dearest choice for each
    of its requests would not fit it (otherwise the budget never binds and links nothing)."""
    inst = prep.instance
    dearest: dict[str, int] = {}
    members: dict[str, list[int]] = {}
    for r, request in enumerate(inst.requests):
        if request.project not in inst.budgets:
            continue
        most = 0
        for group, q in zip(prep.eligible[r], request.requirements, strict=True):
            prices = sorted((prep.price(r, k) for k in group), reverse=True)
            most += sum(prices[: q.quantity])
        dearest[request.project] = dearest.get(request.project, 0) + most
        members.setdefault(request.project, []).append(r)
    return [
        r for project, rs in members.items() if dearest[project] > inst.budgets[project] for r in rs
    ]


def work_units(prep: Prepared) -> list[list[int]]:
    """Pools as units of work, largest first: a pool of `UNIT_PAIRS` pairs or more alone,
    smaller ones bundled in order up to about that size."""
    units: list[list[int]] = []
    bundle: list[int] = []
    size = 0
    for pool in independent_pools(prep):
        pairs = sum(pairs_of(prep, r) for r in pool)
        if pairs >= UNIT_PAIRS:
            units.append(pool)
            continue
        bundle.extend(pool)
        size += pairs
        if size >= UNIT_PAIRS:
            units.append(sorted(bundle))
            bundle, size = [], 0
    if bundle:
        units.append(sorted(bundle))
    return units


def sub_instance(instance: Instance, prep: Prepared, requests: list[int]) -> Instance:
    """Requests `requests` (indices) of `instance` as an instance of their own.

    Resources: those the requests could use, and those that match but are refused by
    agreement (so refusals read the same). A dependency on a pinned booking of another
    request becomes the earliest start it implies (the booking's resource may be elsewhere).
    """
    inst = instance
    keep: set[int] = set()
    for r in requests:
        for group in prep.matching[r]:
            keep.update(group)
    resources = [inst.resources[k] for k in sorted(keep)]
    ids = {res.id for res in resources}
    units = {res.home_unit for res in resources} | {inst.requests[r].unit for r in requests}
    chosen = [inst.requests[r] for r in requests]
    own = {q.id for q in chosen}
    out_requests = []
    for q in chosen:
        outside = [dep for dep in q.after if dep not in own]
        if outside:
            earliest = max([q.window_start, *(prep.pinned_end[d] for d in outside)])
            q = q.model_copy(
                update={
                    "after": [dep for dep in q.after if dep in own],
                    "window_start": min(earliest, inst.window_end(q)),
                }
            )
        out_requests.append(q)
    projects = {q.project for q in chosen}
    return Instance(
        horizon=inst.horizon,
        slot_minutes=inst.slot_minutes,
        resources=resources,
        requests=out_requests,
        pinned=[p for p in inst.pinned if p.resource_id in ids],
        published=[a for a in inst.published if a.request_id in own],
        budgets={p: b for p, b in inst.budgets.items() if p in projects},
        reciprocity=inst.reciprocity,
        agreements=[a for a in inst.agreements if a.lender in units and a.borrower in units],
        name=f"{inst.name} pool of {len(requests)}",
    )


NEVER = {ReasonCode.NO_ELIGIBLE_RESOURCE, ReasonCode.NO_AGREEMENT, ReasonCode.WINDOW_TOO_SHORT}
"""Reasons that hold whatever the plan: such a request can never be served."""


def _ceiling(part: Instance, plan: Plan) -> int:
    """The most a unit can serve: its requested weight, less the requests the plan shows
    can never be served (a bound even when the unit had no time to search)."""
    never = {u.request_id for u in plan.unallocated if any(x.code in NEVER for x in u.reasons)}
    return sum(q.weight for q in part.requests if q.id not in never)


def merge(instance: Instance, prep: Prepared, plans: list[tuple[Instance, Plan]]) -> Plan:
    """One unchecked plan for `instance` from the plans of its units of work.

    The bound is the sum of the units' bounds (a unit without one counts what it could
    serve at most, see `_ceiling`); the status is the weakest of theirs.
    """
    index = prep.request_index
    assignments = sorted(
        (a for _, plan in plans for a in plan.assignments), key=lambda a: index[a.request_id]
    )
    unallocated = sorted(
        (u for _, plan in plans for u in plan.unallocated), key=lambda u: index[u.request_id]
    )
    bound = 0
    for part, plan in plans:
        most = _ceiling(part, plan)
        bound += most if plan.bound is None else min(plan.bound, most)
    objective = objective_of(instance, assignments)
    gap = max(0.0, (bound - objective.fulfilled_weight) / max(bound, 1))
    statuses = {plan.status for _, plan in plans}
    status: SolveStatus = (
        "optimal"
        if statuses == {"optimal"}
        else "fallback"
        if statuses == {"fallback"}
        else "feasible"
    )
    methods = sorted({plan.method for _, plan in plans})
    return Plan(
        assignments=assignments,
        unallocated=unallocated,
        displaced=displaced_pins(instance, assignments),
        objective=objective,
        bound=bound,
        gap=gap,
        status=status,
        method="+".join(methods),
    )
