"""The two baselines: first-come-first-served, and priority-ordered best-fit greedy.

First-come-first-served is what booking systems do today: requests in arrival order, each
gets the earliest slot with the first free matching resources. Best-fit greedy takes
requests by priority (emergencies first), tightest window first, and gives each the
resources that are least wanted elsewhere (lowest over-qualification, lowest demand
pressure, cheapest). Best-fit greedy is also the optimizer's warm start and its fallback.
"""

from __future__ import annotations

from collections.abc import Iterable

from scheduling.eligibility import Prepared, prepare
from scheduling.greedy import Occupancy, ResourceKey
from scheduling.report import build_plan
from scheduling.schemas import Instance, Plan


def run_list(prep: Prepared, order: Iterable[int], key: ResourceKey, occ: Occupancy) -> Occupancy:
    """Place requests in `order` (each one's dependencies are tried just before it)."""
    tried = set(occ.placed)
    requests = prep.instance.requests
    for root in order:
        if root in tried:
            continue
        # Iterative post-order over dependencies so long chains do not hit the recursion limit.
        stack: list[tuple[int, bool]] = [(root, False)]
        while stack:
            r, expanded = stack.pop()
            if r in tried:
                continue
            if not expanded:
                stack.append((r, True))
                for dep in requests[r].after:
                    d = prep.request_index.get(dep)
                    if d is not None and d not in tried:
                        stack.append((d, False))
                continue
            tried.add(r)
            placement = occ.find(r, key)
            if placement is not None:
                occ.place(placement)
    return occ


def arrival_order(prep: Prepared) -> list[int]:
    """Requests in arrival order (ties: list order)."""
    requests = prep.instance.requests
    return sorted(range(len(requests)), key=lambda r: (requests[r].arrival, r))


def priority_order(prep: Prepared) -> list[int]:
    """Heaviest weight first, then tightest window, then arrival."""
    requests = prep.instance.requests

    def slack(r: int) -> int:
        lo, hi = prep.windows[r]
        return hi - lo - requests[r].duration

    return sorted(
        range(len(requests)), key=lambda r: (-requests[r].weight, slack(r), requests[r].arrival, r)
    )


def first_free_key(prep: Prepared) -> ResourceKey:
    """Resources in catalog order."""
    return lambda _r, _i, k: (k,)


def best_fit_key(prep: Prepared) -> ResourceKey:
    """Least over-qualified, least wanted elsewhere, cheapest first."""
    inst = prep.instance
    pressure = [0] * len(inst.resources)
    for r, groups in enumerate(prep.eligible):
        for group in groups:
            for k in group:
                pressure[k] += inst.requests[r].duration

    def key(r: int, i: int, k: int) -> tuple[int, ...]:
        requirement = inst.requests[r].requirements[i]
        resource = inst.resources[k]
        excess = 0
        if requirement.skill is not None:
            excess = resource.skills.get(requirement.skill, 0) - requirement.min_level
        return (excess, pressure[k], prep.price(r, k), k)

    return key


def first_come_first_served_occupancy(prep: Prepared) -> Occupancy:
    """The first-come-first-served partial plan."""
    return run_list(prep, arrival_order(prep), first_free_key(prep), Occupancy(prep))


def best_fit_occupancy(prep: Prepared, occ: Occupancy | None = None) -> Occupancy:
    """The best-fit greedy partial plan (on top of `occ` if given)."""
    occ = occ if occ is not None else Occupancy(prep)
    return run_list(prep, priority_order(prep), best_fit_key(prep), occ)


def first_come_first_served(instance: Instance) -> Plan:
    """Baseline: requests in arrival order, earliest slot, first free matching resources."""
    prep = prepare(instance)
    occ = first_come_first_served_occupancy(prep)
    return build_plan(prep, occ.assignments(), status="fallback", method="fcfs")


def best_fit_greedy(instance: Instance) -> Plan:
    """Baseline and warm start: priority order, earliest slot, best-fit resources."""
    prep = prepare(instance)
    occ = best_fit_occupancy(prep)
    return build_plan(prep, occ.assignments(), status="fallback", method="best_fit")
