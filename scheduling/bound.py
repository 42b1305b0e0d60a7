"""An upper bound on priority-weighted fulfilment: a pool-capacity relaxation.

For each requirement kind (and each skill over all its levels) and each window, the work
the requests inside that window ask of the kind's pool cannot exceed the pool's free time
there; dependencies and budgets (at each request's cheapest resources) hold too. Any plan
satisfies these rows, so the best selection of requests under them bounds every plan.

The rows are built by sweeping windows, not requests: requests are grouped by window, a
pool's free time comes from a per-time-unit profile (prefix sums), so building grows with
the distinct windows and the requests, not their product. The relaxation is solved twice:
as a linear programme (GLOP, fast even at 10,000 requests, always gives a bound) and as an
integer programme (CP-SAT, hinted with a real plan, tighter when it has the time). The
bound is the smaller of the two.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ortools.linear_solver import pywraplp
from ortools.sat.python import cp_model

from scheduling.eligibility import Prepared, span_mask
from scheduling.model import busy_runs

if TYPE_CHECKING:
    from scheduling.solve import SolveOptions

Row = tuple[list[tuple[int, int]], int]
"""sum(coefficient x take[request]) <= limit."""
LP_TOLERANCE = 1e-6
"""Relative margin added to the LP optimum before rounding down (floating point)."""


@dataclass
class Relaxation:
    """The relaxation's rows over the requests it may take."""

    requests: list[int]
    weights: dict[int, int]
    rows: list[Row] = field(default_factory=list)
    follows: list[tuple[int, int]] = field(default_factory=list)
    """(r, d): r only with its dependency d."""
    banned: list[int] = field(default_factory=list)
    """Requests whose dependency cannot be taken."""


def relaxation(prep: Prepared, windows: list[tuple[int, int]], rs: list[int]) -> Relaxation:
    """The rows of the relaxation over requests `rs` with (chained) `windows`."""
    inst = prep.instance
    rel = Relaxation(requests=rs, weights={r: inst.requests[r].weight for r in rs})
    taken = set(rs)
    for r in rs:
        for dep in inst.requests[r].after:
            d = prep.request_index.get(dep)
            if d is not None:
                if d in taken:
                    rel.follows.append((r, d))
                else:
                    rel.banned.append(r)
    rel.rows.extend(_budget_rows(prep, rs))
    rel.rows.extend(_capacity_rows(prep, windows, rs))
    return rel


def _budget_rows(prep: Prepared, rs: list[int]) -> list[Row]:
    """Each request costs at least its cheapest eligible resources."""
    inst = prep.instance
    spend: dict[str, list[tuple[int, int]]] = {}
    for r in rs:
        request = inst.requests[r]
        cheapest = 0
        for group, q in zip(prep.eligible[r], request.requirements, strict=True):
            prices = sorted(prep.price(r, k) for k in group)
            cheapest += sum(prices[: q.quantity])
        if cheapest:
            spend.setdefault(request.project, []).append((r, cheapest))
    return [(terms, inst.budgets[p]) for p, terms in spend.items() if p in inst.budgets]


def _capacity_rows(prep: Prepared, windows: list[tuple[int, int]], rs: list[int]) -> list[Row]:
    """Per requirement kind and window span: demand inside <= the pool's free time there."""
    inst = prep.instance
    pools: dict[tuple[object, ...], set[int]] = {}
    asks: dict[tuple[object, ...], dict[tuple[int, int], list[tuple[int, int]]]] = {}
    for r in rs:
        request = inst.requests[r]
        for group, q in zip(prep.eligible[r], request.requirements, strict=True):
            keys: list[tuple[object, ...]] = [(q.skill, q.min_level, q.device_type, q.resource_id)]
            if q.skill is not None:
                keys.append((q.skill, None, None, None))
            for key in keys:
                pools.setdefault(key, set()).update(group)
                by_window = asks.setdefault(key, {})
                by_window.setdefault(windows[r], []).append((r, q.quantity * request.duration))
    free_runs = _free_runs(prep)
    rows: list[Row] = []
    for key, pool in pools.items():
        by_window = asks[key]
        demand = {w: sum(need for _, need in items) for w, items in by_window.items()}
        free = _free_prefix(inst.horizon, (free_runs[k] for k in pool))
        for lo, hi in {*by_window, (0, inst.horizon)}:
            inside = [w for w in by_window if lo <= w[0] and w[1] <= hi]
            room = free[hi] - free[lo] if lo < hi else 0
            if sum(demand[w] for w in inside) > room:
                rows.append(([item for w in inside for item in by_window[w]], room))
    return rows


def _free_runs(prep: Prepared) -> list[list[tuple[int, int]]]:
    """Per resource: maximal runs of time units free of unavailability and pins."""
    horizon = prep.instance.horizon
    mask = span_mask(0, horizon)
    return [busy_runs(~busy & mask, 0, horizon) for busy in prep.fixed_busy]


def _free_prefix(horizon: int, runs_per_resource: Iterable[list[tuple[int, int]]]) -> list[int]:
    """free[t] = resource-time units free in [0, t) over the given resources' free runs."""
    change = [0] * (horizon + 1)
    for runs in runs_per_resource:
        for start, end in runs:
            change[start] += 1
            change[end] -= 1
    out = [0] * (horizon + 1)
    running = 0
    for t in range(horizon):
        running += change[t]
        out[t + 1] = out[t] + running
    return out


def lp_bound(rel: Relaxation) -> tuple[int, set[int]]:
    """The linear relaxation's optimum, rounded down with a margin; and the requests it
    takes at least half of."""
    solver = pywraplp.Solver.CreateSolver("GLOP")
    take = {r: solver.NumVar(0.0, 0.0 if r in rel.banned else 1.0, f"t{r}") for r in rel.requests}
    for r, d in rel.follows:
        solver.Add(take[r] <= take[d])
    for terms, limit in rel.rows:
        solver.Add(solver.Sum([c * take[r] for r, c in terms]) <= limit)
    solver.Maximize(solver.Sum([w * take[r] for r, w in rel.weights.items()]))
    if solver.Solve() != pywraplp.Solver.OPTIMAL:
        return sum(rel.weights.values()), set()
    value = solver.Objective().Value()
    chosen = {r for r in rel.requests if take[r].solution_value() >= 0.5}
    return math.floor(value + LP_TOLERANCE * max(1.0, abs(value))), chosen


def ip_bound(
    rel: Relaxation, options: SolveOptions, seconds: float, hint: set[int]
) -> tuple[int | None, set[int]]:
    """CP-SAT on the relaxation within `seconds`: its proven bound (None if it proved
    nothing) and the requests its best solution takes."""
    model = cp_model.CpModel()
    take = {r: model.new_bool_var(f"take[{r}]") for r in rel.requests}
    for r in rel.banned:
        model.add(take[r] == 0)
    for r, d in rel.follows:
        model.add_implication(take[r], take[d])
    for terms, limit in rel.rows:
        model.add(sum(c * take[r] for r, c in terms) <= limit)
    model.maximize(sum(w * take[r] for r, w in rel.weights.items()))
    for r, var in take.items():
        model.add_hint(var, r in hint)
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(seconds, 0.05)
    solver.parameters.num_workers = options.num_workers
    solver.parameters.random_seed = options.seed
    status = solver.solve(model)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None, set()
    chosen = {r for r in rel.requests if solver.boolean_value(take[r])}
    return int(solver.best_objective_bound + 1e-6), chosen


def relaxation_bound(
    prep: Prepared,
    options: SolveOptions,
    seconds: float,
    windows: list[tuple[int, int]],
    rs: list[int],
    hint: set[int],
) -> tuple[int, set[int]]:
    """The smaller of the LP and the IP bounds of the relaxation, within `seconds` (building
    included); and the requests the relaxation's solution takes."""
    started = time.monotonic()
    rel = relaxation(prep, windows, rs)
    bound, chosen = lp_bound(rel)
    left = seconds - (time.monotonic() - started)
    if left > 0.1:
        proven, taken = ip_bound(rel, options, left, hint & set(rs))
        if proven is not None:
            bound, chosen = min(bound, proven), taken
    return bound, chosen
