"""The CP-SAT model, one builder function per rule.

Every request r gets a presence literal, a start and an end; every (request, requirement,
eligible resource) triple an assignment literal; every (request, resource) pair an optional
interval sharing the request's start, so all requirements are served at the same time;
a resource with set-up or tear-down also gets an interval for its block. A displaceable
pinned booking is an optional interval, present while kept (moves term).
A model may cover only part of the requests (a neighbourhood of the large-instance search):
the rest of the plan is then folded into the calendars (`busy`, `blocks`), the capacity
windows used, the budget spent and the pins already displaced.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from scheduling.eligibility import Prepared, span_mask
from scheduling.greedy import Placement
from scheduling.report import FAIRNESS_SCALE


@dataclass
class Scope:
    """What a model covers: its requests, and the fixed rest of the plan around them."""

    requests: list[int]
    busy: list[int]
    """Per resource: time units taken by unavailability, pins and fixed assignments."""
    blocks: list[int]
    """Per resource: pins and fixed assignments' blocks (set-up and tear-down included)."""
    used: list[list[int]]
    """Per resource and capacity window: time units the fixed assignments use inside it."""
    spent: dict[str, int]
    windows: dict[int, tuple[int, int]]
    """Per request: (earliest start, latest end), after fixed dependencies and dependants."""
    forced: set[int] = field(default_factory=set)
    """Requests that must be present (mandatory, or fixed requests depend on them)."""
    open_pins: set[int] = field(default_factory=set)
    """Displaceable pins (indices into `instance.pinned`) no fixed assignment displaces:
    the model decides whether to keep them."""


@dataclass
class AllocationModel:
    """A built model and handles to its variables."""

    model: cp_model.CpModel
    prep: Prepared
    scope: Scope
    present: dict[int, cp_model.IntVar] = field(default_factory=dict)
    start: dict[int, cp_model.IntVar] = field(default_factory=dict)
    end: dict[int, cp_model.IntVar] = field(default_factory=dict)
    interval: dict[int, cp_model.IntervalVar] = field(default_factory=dict)
    assign: dict[tuple[int, int, int], cp_model.IntVar] = field(default_factory=dict)
    uses: dict[tuple[int, int], cp_model.IntVar] = field(default_factory=dict)
    by_resource: dict[int, list[cp_model.IntervalVar]] = field(default_factory=dict)
    """Resource -> its assignments' own spans."""
    by_block: dict[int, list[cp_model.IntervalVar]] = field(default_factory=dict)
    """Buffered resource -> its assignments' blocks (set-up and tear-down included)."""
    kept: dict[int, cp_model.IntVar] = field(default_factory=dict)
    """Open displaceable pin -> whether it stays (its interval is then in the no-overlap)."""
    makespan: cp_model.IntVar | None = None

    # ---- objective terms ------------------------------------------------------------
    def fulfilment(self) -> cp_model.LinearExprT:
        """(1) Priority-weighted fulfilled requests (maximise)."""
        requests = self.prep.instance.requests
        return sum(requests[r].weight * p for r, p in self.present.items())

    def completion_and_cost(self, completion_weight: int) -> cp_model.LinearExprT:
        """(4) completion_weight x sum of ends of allocated requests + total price (minimise)."""
        cost = sum(self.prep.price(r, k) * u for (r, k), u in self.uses.items())
        return completion_weight * sum(self.end.values()) + cost

    def placements(self, solver: cp_model.CpSolver) -> list[Placement]:
        """The solution in the solver as placements."""
        inst = self.prep.instance
        out = []
        for r, p in self.present.items():
            if not solver.boolean_value(p):
                continue
            ks = [k for (rr, k), u in self.uses.items() if rr == r and solver.boolean_value(u)]
            start = solver.value(self.start[r])
            duration = inst.requests[r].duration
            cost = sum(self.prep.price(r, k) for k in ks)
            out.append(Placement(r, start, start + duration, ks, cost))
        return out

    def hint(self, placements: list[Placement]) -> None:
        """Hint a full solution: placed requests as given, the rest absent at window start."""
        self.model.clear_hints()
        values: dict[int, tuple[cp_model.IntVar, int]] = {}

        def put(var: cp_model.IntVar, value: int) -> None:
            values[var.index] = (var, value)

        placed = {p.request: p for p in placements}
        duration = {r: self.prep.instance.requests[r].duration for r in self.present}
        for r, pres in self.present.items():
            p = placed.get(r)
            lo = self.scope.windows[r][0]
            put(pres, int(p is not None))
            put(self.start[r], p.start if p else lo)
            put(self.end[r], p.end if p else lo + duration[r])
        chosen = {r: set(p.resources) for r, p in placed.items()}
        for (r, k), u in self.uses.items():
            put(u, int(k in chosen.get(r, ())))
        # Requirement roles: give each chosen resource the first requirement it can take.
        for r in self.present:
            taken: set[int] = set()
            need = [q.quantity for q in self.prep.instance.requests[r].requirements]
            for i in range(len(need)):
                for k in self.prep.eligible[r][i]:
                    var = self.assign.get((r, i, k))
                    if var is None:
                        continue
                    on = k in chosen.get(r, ()) and k not in taken and need[i] > 0
                    if on:
                        taken.add(k)
                        need[i] -= 1
                    put(var, int(on))
        if self.makespan is not None:
            put(self.makespan, max((p.end for p in placements), default=0))
        for pin, kept in self.kept.items():
            put(kept, int(not displaces_pin(self.prep, placements, pin)))
        for var, value in values.values():
            self.model.add_hint(var, value)


def displaces_pin(prep: Prepared, placements: list[Placement], pin: int) -> bool:
    """Whether some placement's block overlaps displaceable pin `pin`."""
    booking = prep.instance.pinned[pin]
    k = prep.resource_index[booking.resource_id]
    return any(
        k in p.resources
        and prep.block(k, p.start, p.end)[0] < booking.end
        and booking.start < prep.block(k, p.start, p.end)[1]
        for p in placements
    )


def build_model(prep: Prepared, scope: Scope) -> AllocationModel:
    """All hard rules over `scope`, without an objective."""
    m = AllocationModel(model=cp_model.CpModel(), prep=prep, scope=scope)
    add_requests_and_windows(m)
    add_requirements(m)
    add_no_overlap(m)
    add_dependencies(m)
    add_budgets(m)
    add_caps(m)
    return m


def add_requests_and_windows(m: AllocationModel) -> None:
    """Each request starts and ends inside its window; absent ones sit at the window start."""
    inst = m.prep.instance
    for r in m.scope.requests:
        request = inst.requests[r]
        lo, hi = m.scope.windows[r]
        latest = max(lo, hi - request.duration)
        name = request.id
        present = m.model.new_bool_var(f"present[{name}]")
        if hi - lo < request.duration:
            # The window cannot hold the request: it stays out.
            m.model.add(present == 0)
        if r in m.scope.forced:
            m.model.add(present == 1)
        start = m.model.new_int_var(lo, latest, f"start[{name}]")
        end = m.model.new_int_var(lo + request.duration, latest + request.duration, f"end[{name}]")
        m.interval[r] = m.model.new_optional_interval_var(
            start, request.duration, end, present, f"slot[{name}]"
        )
        # An absent request is pinned to its window start, so it adds no freedom.
        m.model.add(start == lo).only_enforce_if(present.Not())
        m.present[r], m.start[r], m.end[r] = present, start, end


def add_requirements(m: AllocationModel) -> None:
    """Each requirement gets exactly its quantity of eligible resources, one role per resource."""
    inst = m.prep.instance
    scope = m.scope
    for r in scope.requests:
        request = inst.requests[r]
        lo, hi = scope.windows[r]
        window = span_mask(lo, hi - request.duration + 1) if hi - lo >= request.duration else 0
        free_starts: dict[int, int] = {}
        roles: dict[int, list[cp_model.IntVar]] = {}
        for i, requirement in enumerate(request.requirements):
            chosen = []
            for k in m.prep.eligible[r][i]:
                if k not in free_starts:
                    starts = m.prep.starts(k, request.duration, scope.busy[k], scope.blocks[k])
                    free_starts[k] = starts & window
                if not free_starts[k]:
                    continue  # never free long enough inside the window
                x = m.model.new_bool_var(f"assign[{request.id},{i},{inst.resources[k].id}]")
                m.assign[(r, i, k)] = x
                roles.setdefault(k, []).append(x)
                chosen.append(x)
            # The requirement takes exactly `quantity` resources when the request is present.
            m.model.add(sum(chosen) == requirement.quantity * m.present[r])
        for k, xs in roles.items():
            if len(xs) == 1:
                u = xs[0]
            else:
                # A resource contributes to at most one requirement of the request.
                u = m.model.new_bool_var(f"uses[{request.id},{inst.resources[k].id}]")
                m.model.add(sum(xs) == u)
            m.uses[(r, k)] = u
            add_hold(m, r, k, u)


def add_hold(m: AllocationModel, r: int, k: int, u: cp_model.IntVar) -> None:
    """Resource k's optional intervals for request r (present with u): its own span and,
    for a buffered resource, its block (which may reach outside the horizon)."""
    request = m.prep.instance.requests[r]
    name = f"{request.id},{m.prep.instance.resources[k].id}"
    m.by_resource.setdefault(k, []).append(
        m.model.new_optional_interval_var(
            m.start[r], request.duration, m.end[r], u, f"hold[{name}]"
        )
    )
    if m.prep.buffered(k):
        setup, teardown = m.prep.buffers[k]
        m.by_block.setdefault(k, []).append(
            m.model.new_optional_interval_var(
                m.start[r] - setup,
                setup + request.duration + teardown,
                m.end[r] + teardown,
                u,
                f"block[{name}]",
            )
        )


def add_no_overlap(m: AllocationModel) -> None:
    """A resource does one thing at a time, and nothing while unavailable or booked."""
    span: dict[int, tuple[int, int]] = {}
    for r, k in m.uses:
        lo, hi = m.scope.windows[r]
        old = span.get(k, (lo, hi))
        span[k] = (min(lo, old[0]), max(hi, old[1]))
    for k in m.by_resource:
        add_resource_no_overlap(m, k, *span[k])


def add_resource_no_overlap(m: AllocationModel, k: int, lo: int, hi: int) -> None:
    """Resource k's assignments (requests' windows within [lo, hi)) against each other and
    its fixed calendar: without buffers, one no-overlap of spans against `scope.busy`; with
    them, spans against unavailability and blocks against pins and fixed blocks."""
    setup, teardown = m.prep.buffers[k]
    pins = _kept_pins(m, k, lo - setup, hi + teardown)
    if not m.prep.buffered(k):
        _no_overlap(m, k, m.by_resource[k] + pins, m.scope.busy[k], lo, hi)
        return
    # Unavailability binds the span only: set-up and tear-down may happen off hours.
    _no_overlap(m, k, m.by_resource[k], m.prep.unavailable[k], lo, hi)
    blocks = m.by_block[k] + pins
    _no_overlap(m, k, blocks, m.scope.blocks[k], max(0, lo - setup), hi + teardown)


def _kept_pins(m: AllocationModel, k: int, lo: int, hi: int) -> list[cp_model.IntervalVar]:
    """Resource k's open displaceable pins meeting [lo, hi), as intervals present while kept."""
    out = []
    for p in m.prep.displaceable[k]:
        pin = m.prep.instance.pinned[p]
        if p not in m.scope.open_pins or pin.end <= lo or pin.start >= hi:
            continue
        kept = m.kept.get(p)
        if kept is None:
            kept = m.kept[p] = m.model.new_bool_var(f"kept[{pin.id}]")
        out.append(
            m.model.new_optional_fixed_size_interval_var(
                pin.start, pin.end - pin.start, kept, f"pin[{pin.id}]"
            )
        )
    return out


def _no_overlap(
    m: AllocationModel, k: int, intervals: list[cp_model.IntervalVar], busy: int, lo: int, hi: int
) -> None:
    """No two of `intervals` overlap, nor any of them a busy run of `busy` in [lo, hi)."""
    fixed = [
        m.model.new_fixed_size_interval_var(s, e - s, f"busy[{k},{s}]")
        for s, e in busy_runs(busy, lo, hi)
    ]
    if len(intervals) + len(fixed) > 1:
        m.model.add_no_overlap(intervals + fixed)


def add_dependencies(m: AllocationModel) -> None:
    """A request follows its dependencies: they are allocated and end before it starts."""
    inst = m.prep.instance
    for r in m.scope.requests:
        for dep in inst.requests[r].after:
            d = m.prep.request_index.get(dep)
            if d is None or d not in m.present:
                continue  # pinned or fixed outside the scope: already in the window
            m.model.add_implication(m.present[r], m.present[d])
            m.model.add(m.start[r] >= m.end[d]).only_enforce_if(m.present[r])


def add_budgets(m: AllocationModel) -> None:
    """A project's total price stays within its available budget."""
    inst = m.prep.instance
    by_project: dict[str, list[cp_model.LinearExprT]] = {}
    for (r, k), u in m.uses.items():
        price = m.prep.price(r, k)
        if price:
            by_project.setdefault(inst.requests[r].project, []).append(price * u)
    for project, prices in by_project.items():
        budget = inst.budgets.get(project)
        if budget is not None:
            m.model.add(sum(prices) <= budget - m.scope.spent.get(project, 0))


def add_caps(m: AllocationModel) -> None:
    """Within each capacity window, the parts of the assignments it counts stay within
    its limit (less what fixed assignments already use there)."""
    inst = m.prep.instance
    overlaps: dict[tuple[int, int, int], cp_model.IntVar] = {}
    loads: dict[tuple[int, int], list[cp_model.LinearExprT]] = {}
    for (r, k), u in m.uses.items():
        duration = inst.requests[r].duration
        lo, hi = m.scope.windows[r]
        for w in m.prep.caps_of(r, k):
            cap = m.prep.caps[k][w]
            if hi <= cap.start or lo >= cap.end:
                continue  # the request cannot meet the window
            load = loads.setdefault((k, w), [])
            if cap.start <= lo and hi <= cap.end:
                load.append(duration * u)  # wholly inside, wherever it starts
                continue
            # It may straddle a window boundary: count only its part inside.
            key = (r, cap.start, cap.end)
            if key not in overlaps:
                overlaps[key] = _overlap_var(m, r, cap.start, cap.end)
            part = m.model.new_int_var(0, duration, f"part[{inst.requests[r].id},{k},{w}]")
            m.model.add(part >= overlaps[key]).only_enforce_if(u)
            load.append(part)
    for (k, w), load in loads.items():
        room = m.prep.caps[k][w].limit - m.scope.used[k][w]
        m.model.add(sum(load) <= max(0, room))


def _overlap_var(m: AllocationModel, r: int, lo: int, hi: int) -> cp_model.IntVar:
    """|[start, end) of request r  ∩ [lo, hi)| when it meets it (negative when it does not)."""
    duration = m.prep.instance.requests[r].duration
    var = m.model.new_int_var(-m.prep.instance.horizon, duration, f"overlap[{r},{lo},{hi}]")
    m.model.add_min_equality(var, [duration, m.end[r] - lo, hi - m.start[r], hi - lo])
    return var


def add_fairness(m: AllocationModel) -> cp_model.IntVar:
    """(2) z <= every requesting unit's reciprocity-scaled fulfilment share (see fairness_of)."""
    inst = m.prep.instance
    wanted: dict[str, int] = {}
    got: dict[str, list[cp_model.LinearExprT]] = {}
    for request in inst.requests:
        wanted[request.unit] = wanted.get(request.unit, 0) + request.weight
    for r, p in m.present.items():
        got.setdefault(inst.requests[r].unit, []).append(inst.requests[r].weight * p)
    rho_max = max([inst.reciprocity.get(u, 1) for u in wanted] + [1])
    z = m.model.new_int_var(0, FAIRNESS_SCALE, "fairness")
    for unit, weight in wanted.items():
        rho = inst.reciprocity.get(unit, 1)
        # 1000 * rho_max * F_u >= z * rho_u * W_u, i.e. z <= the unit's scaled share.
        m.model.add(FAIRNESS_SCALE * rho_max * sum(got.get(unit, [])) >= z * rho * weight)
    return z


def add_moves(m: AllocationModel) -> cp_model.LinearExprT:
    """(3) Published assignments not kept exactly (same start, same resources), plus
    displaceable pinned bookings displaced."""
    inst = m.prep.instance
    moved: list[cp_model.LinearExprT] = [1 - kept for kept in m.kept.values()]
    for a in inst.published:
        r = m.prep.request_index.get(a.request_id)
        if r is None or r not in m.present:
            continue
        ks = [m.prep.resource_index.get(k) for k in a.resource_ids]
        if any(k is None or (r, k) not in m.uses for k in ks) or a.end - a.start != (
            inst.requests[r].duration
        ):
            moved.append(1)
            continue
        kept = m.model.new_bool_var(f"kept[{a.request_id}]")
        m.model.add_implication(kept, m.present[r])
        m.model.add(m.start[r] == a.start).only_enforce_if(kept)
        for k in ks:
            assert k is not None
            m.model.add_implication(kept, m.uses[(r, k)])
        moved.append(1 - kept)
    return sum(moved)


def add_makespan(m: AllocationModel, upper: int) -> cp_model.IntVar:
    """Makespan >= every end (benchmark mode)."""
    makespan = m.model.new_int_var(0, upper, "makespan")
    m.model.add_max_equality(makespan, list(m.end.values()))
    m.makespan = makespan
    return makespan


def add_workforce_cumulatives(m: AllocationModel, max_subset: int = 2) -> None:
    """Redundant: over any set of requirement kinds, demand at any time <= their pool size.

    Each resource plays at most one role per request, so the requests running at a time
    need, over a set S of requirement kinds, no more resources than those eligible for
    some kind in S. Cheap for CP-SAT to propagate, and much stronger than no-overlaps alone.
    """
    inst = m.prep.instance
    kinds: dict[tuple[object, ...], set[int]] = {}
    demand: dict[tuple[object, ...], dict[int, int]] = {}
    for r in m.scope.requests:
        for i, requirement in enumerate(inst.requests[r].requirements):
            kind: tuple[object, ...] = (
                requirement.skill,
                requirement.min_level,
                requirement.device_type,
                requirement.resource_id,
            )
            kinds.setdefault(kind, set()).update(m.prep.eligible[r][i])
            per = demand.setdefault(kind, {})
            per[r] = per.get(r, 0) + requirement.quantity
    names = sorted(kinds, key=repr)
    subsets: list[tuple[tuple[object, ...], ...]] = []
    if len(names) <= 6:
        for size in range(1, len(names) + 1):
            subsets.extend(itertools.combinations(names, size))
    else:
        for size in range(1, max_subset + 1):
            subsets.extend(itertools.combinations(names, size))
        subsets.append(tuple(names))
    for subset in subsets:
        pool: set[int] = set()
        need: dict[int, int] = {}
        for kind in subset:
            pool |= kinds[kind]
            for r, q in demand[kind].items():
                need[r] = need.get(r, 0) + q
        if not need or sum(need.values()) <= len(pool):
            continue
        m.model.add_cumulative([m.interval[r] for r in need], [need[r] for r in need], len(pool))


def busy_runs(mask: int, lo: int, hi: int) -> list[tuple[int, int]]:
    """Maximal busy runs of `mask` intersecting [lo, hi), clipped to it."""
    runs = []
    mask &= span_mask(lo, hi)
    while mask:
        start = (mask & -mask).bit_length() - 1
        rest = ~mask & ~((1 << start) - 1)
        end = (rest & -rest).bit_length() - 1
        runs.append((start, end))
        mask &= ~span_mask(start, end)
    return runs
