"""Makespan mode's model: identical resources pooled into classes (symmetry breaking).

Benchmark instances have many interchangeable workers (same skills, same calendar, same
rate): the per-resource model lets the solver try every permutation of them. Here such
resources form one class with a capacity; a request takes a *number* of each class's
members per requirement, and each class is a cumulative resource of its size. Any
schedule of the pooled model becomes a per-resource one by interval colouring (requests
sorted by start, each takes members that are free by then), and every per-resource
schedule maps to a pooled one by counting, so the optimum is the same: no feasible optimum
is cut, only permutations of identical resources are.

Resources with a lending cap or capacity windows stay alone in their class (their caps are
per resource), and so do resources with set-up or tear-down (their blocks are).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ortools.sat.python import cp_model

from scheduling.eligibility import Prepared, span_mask
from scheduling.greedy import Placement
from scheduling.model import (
    AllocationModel,
    Scope,
    add_caps,
    add_dependencies,
    add_hold,
    add_requests_and_windows,
    add_resource_no_overlap,
    busy_runs,
    displaces_pin,
)


@dataclass
class PooledModel(AllocationModel):
    """An AllocationModel whose resources come in classes of identical members."""

    classes: list[list[int]] = field(default_factory=list)
    """Class -> its resources (sorted)."""
    count: dict[tuple[int, int, int], cp_model.IntVar] = field(default_factory=dict)
    """(request, requirement, class) -> members of the class serving that requirement."""
    load: dict[tuple[int, int], cp_model.IntVar] = field(default_factory=dict)
    """(request, class) -> members of the class the request holds."""

    def placements(self, solver: cp_model.CpSolver) -> list[Placement]:
        """The solution, members given out by interval colouring per class."""
        inst = self.prep.instance
        starts = {r: solver.value(self.start[r]) for r in self.present}
        present = {r for r, p in self.present.items() if solver.boolean_value(p)}
        chosen: dict[int, list[int]] = {r: [] for r in present}
        for c, members in enumerate(self.classes):
            users = sorted(
                (r for r in present if (r, c) in self.load),
                key=lambda r: (starts[r], r),
            )
            free_at = dict.fromkeys(members, 0)
            for r in users:
                want = int(solver.value(self.load[(r, c)]))
                if not want:
                    continue
                ready = [k for k in members if free_at[k] <= starts[r]]
                if len(ready) < want:
                    raise AssertionError(f"class {c} over capacity at {starts[r]}")
                for k in ready[:want]:
                    free_at[k] = starts[r] + inst.requests[r].duration
                    chosen[r].append(k)
        out = []
        for r in sorted(present):
            duration = inst.requests[r].duration
            cost = sum(self.prep.price(r, k) for k in chosen[r])
            out.append(Placement(r, starts[r], starts[r] + duration, sorted(chosen[r]), cost))
        return out

    def hint(self, placements: list[Placement]) -> None:
        """Hint a full solution given per resource (roles found by matching)."""
        self.model.clear_hints()
        inst = self.prep.instance
        of_class = {k: c for c, members in enumerate(self.classes) for k in members}
        placed = {p.request: p for p in placements}
        values: dict[int, tuple[cp_model.IntVar, int]] = {}

        def put(var: cp_model.IntVar, value: int) -> None:
            values[var.index] = (var, value)

        counts: dict[tuple[int, int, int], int] = {}
        for r, pres in self.present.items():
            p = placed.get(r)
            lo = self.scope.windows[r][0]
            put(pres, int(p is not None))
            put(self.start[r], p.start if p else lo)
            put(self.end[r], p.end if p else lo + inst.requests[r].duration)
            if p is not None:
                for k, i in _roles(self.prep, r, p.resources).items():
                    key = (r, i, of_class[k])
                    counts[key] = counts.get(key, 0) + 1
        for (r, c), load in self.load.items():
            put(load, sum(n for (rr, _i, cc), n in counts.items() if (rr, cc) == (r, c)))
        for key, var in self.count.items():
            put(var, counts.get(key, 0))
        if self.makespan is not None:
            put(self.makespan, max((p.end for p in placements), default=0))
        for pin, kept in self.kept.items():
            put(kept, int(not displaces_pin(self.prep, placements, pin)))
        for var, value in values.values():
            self.model.add_hint(var, value)


def resource_classes(prep: Prepared, scope: Scope) -> list[list[int]]:
    """Resources grouped by everything the model can tell apart (eligibility, calendar, …)."""
    inst = prep.instance
    wanted: dict[int, list[tuple[int, int]]] = {}
    for r in scope.requests:
        for i, group in enumerate(prep.eligible[r]):
            for k in group:
                wanted.setdefault(k, []).append((r, i))
    groups: dict[tuple[object, ...], list[int]] = {}
    for k in sorted(wanted):
        res = inst.resources[k]
        signature = (
            tuple(wanted[k]),
            scope.busy[k],
            # Resources priced differently for some request are not identical for it.
            tuple(prep.price(r, k) for r, _i in wanted[k]),
            res.home_unit,
            k if res.caps or res.lending_cap is not None or _alone(prep, k) else None,
        )
        groups.setdefault(signature, []).append(k)
    return sorted(groups.values())


def _alone(prep: Prepared, k: int) -> bool:
    """Whether resource k has blocks or displaceable pins of its own (a class of one)."""
    return prep.buffered(k) or bool(prep.displaceable[k])


def build_pooled_model(prep: Prepared, scope: Scope) -> PooledModel:
    """Every hard rule of the makespan benchmarks over `scope`, identical resources pooled."""
    m = PooledModel(model=cp_model.CpModel(), prep=prep, scope=scope)
    m.classes = resource_classes(prep, scope)
    add_requests_and_windows(m)
    add_pooled_requirements(m)
    add_pooled_capacity(m)
    add_dependencies(m)
    add_pooled_budgets(m)
    add_caps(m)  # capped resources are singleton classes, held through m.uses
    return m


def add_pooled_requirements(m: PooledModel) -> None:
    """Each requirement gets its quantity from its eligible classes; a member takes one role."""
    inst = m.prep.instance
    of_class = {k: c for c, members in enumerate(m.classes) for k in members}
    for r in m.scope.requests:
        request = inst.requests[r]
        lo, hi = m.scope.windows[r]
        window = span_mask(lo, hi - request.duration + 1) if hi - lo >= request.duration else 0
        per_class: dict[int, list[cp_model.IntVar]] = {}
        for i, requirement in enumerate(request.requirements):
            terms = []
            for c in sorted({of_class[k] for k in m.prep.eligible[r][i]}):
                members = m.classes[c]
                k = members[0]
                starts = m.prep.starts(k, request.duration, m.scope.busy[k], m.scope.blocks[k])
                if not starts & window:
                    continue  # never free long enough inside the window
                most = min(requirement.quantity, len(members))
                label = f"{request.id},{i},class{c}"
                x = (
                    m.model.new_bool_var(f"count[{label}]")
                    if most == 1
                    else m.model.new_int_var(0, most, f"count[{label}]")
                )
                m.count[(r, i, c)] = x
                per_class.setdefault(c, []).append(x)
                terms.append(x)
            # The requirement takes exactly `quantity` members when the request is present.
            m.model.add(sum(terms) == requirement.quantity * m.present[r])
        for c, xs in per_class.items():
            size = len(m.classes[c])
            if size == 1:
                # A single resource: one role per request, as in the per-resource model.
                u = xs[0] if len(xs) == 1 else m.model.new_bool_var(f"uses[{request.id},{c}]")
                if len(xs) > 1:
                    m.model.add(sum(xs) == u)
                m.uses[(r, m.classes[c][0])] = u
                m.load[(r, c)] = u
            else:
                if len(xs) == 1:
                    m.load[(r, c)] = xs[0]
                    continue
                # A member takes at most one role: the class gives at most its size.
                load = m.model.new_int_var(0, size, f"load[{request.id},class{c}]")
                m.model.add(load == sum(xs))
                m.load[(r, c)] = load


def add_pooled_capacity(m: PooledModel) -> None:
    """A class serves at most its size at any time; nothing while its calendar is busy."""
    by_class: dict[int, list[int]] = {}
    for r, c in m.load:
        by_class.setdefault(c, []).append(r)
    for c, rs in by_class.items():
        members = m.classes[c]
        lo = min(m.scope.windows[r][0] for r in rs)
        hi = max(m.scope.windows[r][1] for r in rs)
        if len(members) == 1:
            # A single resource: its holds and no-overlaps as in the per-resource model.
            k = members[0]
            for r in rs:
                add_hold(m, r, k, m.uses[(r, k)])
            add_resource_no_overlap(m, k, lo, hi)
            continue
        fixed = [
            m.model.new_fixed_size_interval_var(s, e - s, f"busy[class{c},{s}]")
            for s, e in busy_runs(m.scope.busy[members[0]], lo, hi)
        ]
        demands: list[cp_model.LinearExprT] = [m.load[(r, c)] for r in rs]
        demands += [len(members)] * len(fixed)
        m.model.add_cumulative([m.interval[r] for r in rs] + fixed, demands, len(members))


def add_pooled_budgets(m: PooledModel) -> None:
    """A project's total price stays within its available budget."""
    inst = m.prep.instance
    by_project: dict[str, list[cp_model.LinearExprT]] = {}
    for (r, c), load in m.load.items():
        # Members of a class cost the same for each request (see resource_classes).
        price = m.prep.price(r, m.classes[c][0])
        if price:
            by_project.setdefault(inst.requests[r].project, []).append(price * load)
    for project, prices in by_project.items():
        budget = inst.budgets.get(project)
        if budget is not None:
            m.model.add(sum(prices) <= budget - m.scope.spent.get(project, 0))


def _roles(prep: Prepared, r: int, ks: Sequence[int]) -> dict[int, int]:
    """Resource -> requirement index it serves in request r (a full matching)."""
    quantities = [q.quantity for q in prep.instance.requests[r].requirements]
    groups = [set(g) for g in prep.eligible[r]]
    slots = [i for i, q in enumerate(quantities) for _ in range(q)]
    owner: dict[int, int] = {}  # slot -> resource

    def augment(k: int, seen: set[int]) -> bool:
        for s, i in enumerate(slots):
            if k in groups[i] and s not in seen:
                seen.add(s)
                if s not in owner or augment(owner[s], seen):
                    owner[s] = k
                    return True
        return False

    for k in ks:
        augment(k, set())
    return {k: slots[s] for s, k in owner.items()}
