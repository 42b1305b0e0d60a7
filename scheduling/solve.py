"""`solve()`: validate, warm-start with the greedy, optimise with CP-SAT, check, explain.

Allocation mode optimises lexicographically by sequential solves, each fixing the
earlier terms at the values found: (1) priority-weighted fulfilment, (2) fairness (see
`report.fairness_of`), (3) fewest moves of the published plan, (4) completion x weight +
cost. Small instances get one monolithic model; large ones (see `MONOLITHIC_PAIRS`) a
large-neighbourhood search over the greedy plan, because presolving the monolithic model
alone can eat the whole time limit. Whatever happens, a checked plan comes back: the
greedy plan is the fallback.

Makespan mode (benchmarks) makes every request mandatory and minimises the latest end.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Literal

from ortools.sat.python import cp_model

from scheduling.baselines import best_fit_occupancy, first_come_first_served_occupancy, run_list
from scheduling.eligibility import Prepared, prepare, span_mask
from scheduling.errors import InvalidPlan, NoFeasiblePlan
from scheduling.greedy import Occupancy, Placement
from scheduling.model import (
    AllocationModel,
    Scope,
    add_fairness,
    add_makespan,
    add_moves,
    add_workforce_cumulatives,
    build_model,
)
from scheduling.pooled import build_pooled_model
from scheduling.pools import merge, pairs_of, sub_instance, work_units
from scheduling.report import build_plan, objective_of, with_bound
from scheduling.schemas import Instance, Objective, Plan, Progress, SolveStatus
from scheduling.validate import validate_instance

ProgressCallback = Callable[[Progress], None]
Mode = Literal["allocate", "makespan"]
Strategy = Literal["auto", "monolithic", "lns"]

MONOLITHIC_PAIRS = 6000
"""Above this many (request, eligible resource) pairs, use the neighbourhood search."""
FINISH_SECONDS = 0.4
RESERVE_SHARE = 0.4
"""At most this share of the limit is kept back for the final plan."""
"""Reserve for the final plan on top of the measured build time (repair, bookkeeping)."""
WARM_SHARE = 0.3
"""The warm start's candidates after the first run only while within this share of the limit."""
MERGE_SHARE = 0.05
"""Share of the limit kept back for merging and checking the plans of units of work."""
MAKESPAN_NO_LP_UP_TO = 4
"""Makespan mode with this many workers or fewer: the one full-problem worker has no LP."""


class SolveOptions:
    """Solver parameters shared by the stages."""

    def __init__(
        self,
        time_limit_s: float,
        relative_gap_limit: float,
        num_workers: int,
        seed: int,
        on_progress: ProgressCallback | None,
    ) -> None:
        self.time_limit_s = time_limit_s
        self.relative_gap_limit = relative_gap_limit
        self.num_workers = num_workers
        self.seed = seed
        self.on_progress = on_progress
        self.started = time.monotonic()
        self.reserve = 0.0
        """Seconds kept back at the end for turning the result into a checked Plan."""
        self.stages: dict[str, float] = {}
        """Seconds spent per stage (prepare, greedy, solve, explain, check)."""

    def elapsed(self) -> float:
        """Seconds since solve() began."""
        return time.monotonic() - self.started

    def remaining(self) -> float:
        """Seconds left before the time limit, less the reserve for building the plan."""
        return max(0.0, self.time_limit_s - self.reserve - self.elapsed())

    def report(
        self,
        stage: str,
        objective: float,
        bound: float,
        *,
        placed: int | None = None,
        weight: int | None = None,
    ) -> None:
        """Forward an improving solution to the progress callback, if any (with the requests
        it places and its fulfilled weight where the caller knows them)."""
        if self.on_progress is not None:
            self.on_progress(
                Progress(
                    stage=stage,
                    objective=objective,
                    bound=bound,
                    elapsed_s=self.elapsed(),
                    placed=placed,
                    fulfilled_weight=weight,
                )
            )

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Add the time spent inside the block to stage `name`."""
        began = time.monotonic()
        try:
            yield
        finally:
            self.stages[name] = self.stages.get(name, 0.0) + time.monotonic() - began

    def part(
        self, seconds: float, label: str, done: float, done_placed: int = 0
    ) -> SolveOptions:
        """Options for one unit of work given `seconds`; its progress is reported here as
        `label`, on top of `done` (the weight the units before it fulfilled) and
        `done_placed` (the requests they placed)."""

        def forward(p: Progress) -> None:
            weight = p.fulfilled_weight
            self.report(
                f"{label} {p.stage}",
                done + (p.objective if weight is None else weight),
                float("nan"),
                placed=None if p.placed is None else done_placed + p.placed,
                weight=None if weight is None else int(done) + weight,
            )

        return SolveOptions(
            seconds,
            self.relative_gap_limit,
            self.num_workers,
            self.seed,
            forward if self.on_progress is not None else None,
        )

    def absorb(self, part: SolveOptions) -> None:
        """Add a unit of work's stage times to this run's."""
        for name, seconds in part.stages.items():
            self.stages[name] = self.stages.get(name, 0.0) + seconds

    def finish(self, plan: Plan) -> Plan:
        """`plan` with this run's elapsed time and stage times."""
        stages = {name: round(seconds, 3) for name, seconds in self.stages.items()}
        return plan.model_copy(update={"solve_seconds": round(self.elapsed(), 3), "stages": stages})


class _Reporter(cp_model.CpSolverSolutionCallback):
    def __init__(
        self, options: SolveOptions, stage: str, model: AllocationModel | None = None
    ) -> None:
        super().__init__()
        self._options = options
        self._stage = stage
        self._model = model

    def on_solution_callback(self) -> None:
        placed = weight = None
        if self._model is not None and self._options.on_progress is not None:
            requests = self._model.prep.instance.requests
            served = [r for r, p in self._model.present.items() if self.boolean_value(p)]
            placed, weight = len(served), sum(requests[r].weight for r in served)
        self._options.report(
            self._stage,
            self.objective_value,
            self.best_objective_bound,
            placed=placed,
            weight=weight,
        )


def solve(
    instance: Instance,
    *,
    time_limit_s: float = 10.0,
    relative_gap_limit: float = 0.0,
    num_workers: int = 2,
    seed: int = 0,
    mode: Mode = "allocate",
    on_progress: ProgressCallback | None = None,
    completion_weight: int = 1,
    strategy: Strategy = "auto",
) -> Plan:
    """Allocate the instance's requests (or, in makespan mode, schedule them all) as a Plan.

    Raises InvalidInstance on bad input, NoFeasiblePlan in makespan mode when the
    horizon cannot hold every request, InvalidPlan only on an internal bug.
    """
    validate_instance(instance)
    options = SolveOptions(time_limit_s, relative_gap_limit, num_workers, seed, on_progress)
    if mode == "makespan":
        return _solve_makespan(instance, options)
    return _solve_allocation(instance, options, completion_weight, strategy)


# ---- allocation ------------------------------------------------------------------------


def lexicographic_key(objective: Objective, completion_weight: int) -> tuple[int, int, int, int]:
    """Bigger is better: the objective terms in their lexicographic order."""
    return (
        objective.fulfilled_weight,
        objective.fairness,
        -objective.moves,
        -(completion_weight * objective.completion + objective.cost),
    )


def warm_start(
    prep: Prepared, completion_weight: int = 1, options: SolveOptions | None = None
) -> Occupancy:
    """The best of: best-fit greedy, first-come-first-served, and published-plan-kept + greedy.

    With `options`, the first candidate (the published plan kept, else best-fit) always
    runs; the others only while they fit in `WARM_SHARE` of the time limit, judged by what
    the first took.
    """
    runs = warm_runs(prep)
    began = time.monotonic()
    first = runs[0]()
    return better_start(prep, first, runs[1:], time.monotonic() - began, options, completion_weight)


def warm_runs(prep: Prepared) -> list[Callable[[], Occupancy]]:
    """The warm start's candidates, the likeliest best first (the published plan kept)."""
    runs = [lambda: best_fit_occupancy(prep), lambda: first_come_first_served_occupancy(prep)]
    if prep.instance.published:
        runs.insert(0, lambda: best_fit_occupancy(prep, _kept(prep)))
    return runs


def better_start(
    prep: Prepared,
    first: Occupancy,
    runs: list[Callable[[], Occupancy]],
    took: float,
    options: SolveOptions | None,
    completion_weight: int,
) -> Occupancy:
    """The best of `first` and what `runs` give, each run only while the time it is likely
    to take (`took`, what the first took) fits in `WARM_SHARE` of the limit."""
    candidates = [first]
    for run in runs:
        if options is not None and (options.elapsed() + took > WARM_SHARE * options.time_limit_s):
            break
        candidates.append(run())

    def key(occ: Occupancy) -> tuple[int, int, int, int]:
        return lexicographic_key(objective_of(prep.instance, occ.assignments()), completion_weight)

    return max(candidates, key=key)


def _kept(prep: Prepared) -> Occupancy:
    """The published plan, as far as it still fits."""
    kept = Occupancy(prep)
    kept.load(prep.instance.published)
    return kept


def _solve_allocation(
    instance: Instance,
    options: SolveOptions,
    completion_weight: int,
    strategy: Strategy,
    split: bool = True,
) -> Plan:
    with options.stage("prepare"):
        prep = prepare(instance)
        units = work_units(prep) if split and strategy == "auto" else []
    if len(units) > 1:
        pooled = _solve_units(instance, prep, units, options, completion_weight)
        if pooled is not None:
            return pooled
    # The first candidate becomes a checked plan at once (the first plan a caller sees);
    # the other candidates run after it, and replace it only when better.
    runs = warm_runs(prep)
    with options.stage("greedy"):
        began = time.monotonic()
        warm = runs[0]()
        took = time.monotonic() - began
    building = time.monotonic()
    fallback = _fallback(prep, warm, options)
    # The final plan is repaired (a greedy pass over the left-out), explained and checked
    # after the search stops: keep back twice what building this one took and half what
    # the greedy took, so the whole solve ends within the limit.
    options.reserve = min(
        RESERVE_SHARE * options.time_limit_s,
        2.0 * (time.monotonic() - building) + 0.5 * took + FINISH_SECONDS,
    )
    weight = fallback.objective.fulfilled_weight
    placed = len({a.request_id for a in fallback.assignments})
    options.report("greedy", weight, float("nan"), placed=placed, weight=weight)
    with options.stage("greedy"):
        better = better_start(prep, warm, runs[1:], took, options, completion_weight)
    if better is not warm:
        warm, fallback = better, _fallback(prep, better, options)
    if not instance.requests or options.remaining() < 0.05:
        return options.finish(fallback)
    with options.stage("solve"):
        occ, bound, method, status = _search(prep, warm, options, completion_weight, strategy)
        if occ is not None:
            # Repair: anything that still fits on top of the plan goes in (never lowers term 1).
            best_fit_occupancy(prep, occ)
    if occ is None:
        return options.finish(fallback)
    plan = build_plan(
        prep,
        occ.assignments(),
        status=status,
        method=method,
        bound=bound,
        seconds=options.elapsed(),
        stages=options.stages,
    )
    if not plan.checked or lexicographic_key(plan.objective, completion_weight) < (
        lexicographic_key(fallback.objective, completion_weight)
    ):
        return options.finish(with_bound(fallback, bound))
    return options.finish(plan)


def _fallback(prep: Prepared, occ: Occupancy, options: SolveOptions) -> Plan:
    """The greedy plan `occ`, explained and checked (it must pass: else a bug)."""
    plan = build_plan(
        prep,
        occ.assignments(),
        status="fallback",
        method="best_fit",
        seconds=options.elapsed(),
        stages=options.stages,
    )
    if not plan.checked:
        from scheduling.check import check_plan

        raise InvalidPlan(check_plan(prep.instance, plan))
    return plan


def _search(
    prep: Prepared,
    warm: Occupancy,
    options: SolveOptions,
    completion_weight: int,
    strategy: Strategy,
) -> tuple[Occupancy | None, int | None, str, SolveStatus]:
    """Improve the warm start: the monolithic model when small, else neighbourhoods."""
    pairs = sum(len(g) for groups in prep.eligible for g in groups)
    if strategy == "lns" or (strategy == "auto" and pairs > MONOLITHIC_PAIRS):
        from scheduling.lns import improve

        improved, bound = improve(prep, warm, options)
        return improved, bound, "lns", "feasible"
    occ, bound, optimal = _monolithic(prep, warm, options, completion_weight)
    return occ, bound, "cp-sat", ("optimal" if optimal else "feasible")


def _solve_units(
    instance: Instance,
    prep: Prepared,
    units: list[list[int]],
    options: SolveOptions,
    completion_weight: int,
) -> Plan | None:
    """Solve each unit of work as an instance of its own, largest first, each with its
    share of the time left (by pairs; what a unit leaves unused goes to the next), and
    merge. None if the merged plan fails the check (a bug: the caller solves it whole)."""
    from scheduling.check import check_plan

    sizes = [max(1, sum(pairs_of(prep, r) for r in unit)) for unit in units]
    left = sum(sizes)
    plans: list[tuple[Instance, Plan]] = []
    done = done_placed = 0
    for n, (unit, size) in enumerate(zip(units, sizes, strict=True)):
        part = sub_instance(instance, prep, unit)
        seconds = max(0.0, options.remaining() - options.time_limit_s * MERGE_SHARE)
        sub = options.part(seconds * size / left, f"pool {n + 1}/{len(units)}", done, done_placed)
        plan = _solve_allocation(part, sub, completion_weight, "auto", split=False)
        options.absorb(sub)
        plans.append((part, plan))
        done += plan.objective.fulfilled_weight
        done_placed += len({a.request_id for a in plan.assignments})
        left -= size
    merged = merge(instance, prep, plans)
    with options.stage("check"):
        problems = check_plan(instance, merged)
    if problems:
        return None
    return options.finish(merged.model_copy(update={"checked": True}))


def full_scope(prep: Prepared) -> Scope:
    """A scope holding every request, with only unavailability and pins fixed."""
    return scope_for(prep, Occupancy(prep), set(range(len(prep.instance.requests))))


def scope_for(prep: Prepared, occ: Occupancy, free: set[int]) -> Scope:
    """The requests `free` as a model scope, the rest of `occ`'s plan held fixed around them."""
    inst = prep.instance
    busy = list(occ.busy)
    blocks = list(occ.blocks)
    used = [list(row) for row in occ.used]
    spent = dict(occ.spent)
    for r in free:
        p = occ.placed.get(r)
        if p is None:
            continue
        mask = span_mask(p.start, p.end)
        for k in p.resources:
            busy[k] &= ~mask
            blocks[k] &= ~span_mask(*prep.block(k, p.start, p.end))
            for w in prep.caps_of(r, k):
                used[k][w] -= prep.caps[k][w].overlap(p.start, p.end)
        project = inst.requests[r].project
        spent[project] -= p.cost
    windows = {}
    forced = {r for r in free if inst.requests[r].mandatory}
    for r in free:
        lo, hi = prep.windows[r]
        for dep in inst.requests[r].after:
            d = prep.request_index.get(dep)
            if d is None or d in free:
                continue
            if d in occ.placed:
                lo = max(lo, occ.placed[d].end)
            else:
                hi = lo  # its dependency is out and stays out: so does it
        windows[r] = (lo, hi)
    for f, p in occ.placed.items():
        if f in free:
            continue
        for dep in inst.requests[f].after:
            d = prep.request_index.get(dep)
            if d is not None and d in free:
                # A fixed request follows it: it stays in, and ends before that one starts.
                forced.add(d)
                lo, hi = windows[d]
                windows[d] = (lo, min(hi, p.start))
    # A displaceable pin that only free requests displace is the neighbourhood's to keep.
    open_pins = {
        pin for pins in prep.displaceable for pin in pins if occ.displaced.get(pin, set()) <= free
    }
    return Scope(
        requests=sorted(free),
        open_pins=open_pins,
        busy=busy,
        blocks=blocks,
        used=used,
        spent=spent,
        windows=windows,
        forced=forced,
    )


def _solver(options: SolveOptions, seconds: float, *, large: bool = False) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(seconds, 0.01)
    solver.parameters.num_workers = options.num_workers
    solver.parameters.random_seed = options.seed
    if large:
        # Probing on tens of thousands of optional intervals can take the whole limit.
        solver.parameters.cp_model_probing_level = 0
    return solver


def _run_stage(
    m: AllocationModel,
    options: SolveOptions,
    stage: str,
    seconds: float,
    gap: float = 0.0,
) -> tuple[cp_model.CpSolver, bool, bool]:
    """Solve m's current objective; returns (solver, found a solution, proved optimal)."""
    solver = _solver(options, seconds, large=len(m.uses) > MONOLITHIC_PAIRS)
    if gap:
        solver.parameters.relative_gap_limit = gap
    status = solver.solve(m.model, _Reporter(options, stage, m))
    found = status in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    return solver, found, status == cp_model.OPTIMAL


def _monolithic(
    prep: Prepared, warm: Occupancy, options: SolveOptions, completion_weight: int
) -> tuple[Occupancy | None, int | None, bool]:
    """Sequential lexicographic solves of the full model; (plan, bound on term 1, optimal)."""
    m = build_model(prep, full_scope(prep))
    fulfilment = m.fulfilment()
    fairness = add_fairness(m)
    moves = add_moves(m)
    finish = m.completion_and_cost(completion_weight)
    best = list(warm.placed.values())
    m.hint(best)
    stages: list[tuple[str, cp_model.LinearExprT, bool, float]] = [
        ("fulfilment", fulfilment, True, 0.5),
        ("fairness", fairness, True, 0.4),
    ]
    if prep.instance.published or m.kept:
        stages.append(("moves", moves, False, 0.5))
    stages.append(("completion", finish, False, 1.0))
    bound: int | None = None
    all_optimal = True
    found_any = False
    for name, expr, maximise, share in stages:
        seconds = options.remaining() * share - 0.05
        if seconds <= 0.02:
            all_optimal = False
            break
        if maximise:
            m.model.maximize(expr)
        else:
            m.model.minimize(expr)
        gap = options.relative_gap_limit if name == "fulfilment" else 0.0
        solver, found, optimal = _run_stage(m, options, name, seconds, gap)
        if name == "fulfilment":
            bound = int(solver.best_objective_bound + 1e-6) if found or optimal else None
        if not found:
            all_optimal = False
            break
        found_any = True
        all_optimal = all_optimal and optimal
        value = round(solver.objective_value)
        best = m.placements(solver)
        # Later stages may not give back what this stage won.
        if maximise:
            m.model.add(expr >= value)
        else:
            m.model.add(expr <= value)
        m.hint(best)
    if not found_any:
        return None, bound, False
    occ = Occupancy(prep)
    for p in best:
        occ.place(p)
    return occ, bound, all_optimal


# ---- makespan mode ---------------------------------------------------------------------


def mandatory(instance: Instance) -> Instance:
    """The instance with every request mandatory (benchmark makespan mode)."""
    return instance.model_copy(
        update={"requests": [r.model_copy(update={"mandatory": True}) for r in instance.requests]}
    )


def list_schedules(
    prep: Prepared, tries: int, seed: int, seconds: float | None = None
) -> Occupancy | None:
    """The shortest of several serial list schedules (latest-finish-time order, then noise).

    With `seconds`, keeps drawing noisy orders past `tries` until that much time is spent.
    """
    inst = prep.instance
    n = len(inst.requests)
    successors: dict[int, list[int]] = {r: [] for r in range(n)}
    for r, request in enumerate(inst.requests):
        for dep in request.after:
            d = prep.request_index.get(dep)
            if d is not None:
                successors[d].append(r)
    # Latest finish times by a backward pass from a common horizon (bigger tail = sooner).
    tail: dict[int, int] = {}
    for r in reversed(_topological(prep)):
        tail[r] = inst.requests[r].duration + max((tail[s] for s in successors[r]), default=0)
    rng = random.Random(seed)
    best: Occupancy | None = None
    from scheduling.baselines import best_fit_key

    key = best_fit_key(prep)
    deadline = time.monotonic() + (seconds or 0.0)
    attempt = 0
    while attempt < tries or time.monotonic() < deadline:
        attempt += 1
        noise = 0.0 if attempt == 1 else 0.3
        order = sorted(range(n), key=lambda r: -tail[r] * (1 + noise * rng.random()))
        occ = run_list(prep, order, key, Occupancy(prep))
        if len(occ.placed) < n:
            continue
        if best is None or _makespan(occ) < _makespan(best):
            best = occ
    return best


def _makespan(occ: Occupancy) -> int:
    return max((p.end for p in occ.placed.values()), default=0)


def _topological(prep: Prepared) -> list[int]:
    inst = prep.instance
    order: list[int] = []
    seen: set[int] = set()
    for root in range(len(inst.requests)):
        stack: list[tuple[int, bool]] = [(root, False)]
        while stack:
            r, expanded = stack.pop()
            if r in seen and not expanded:
                continue
            if expanded:
                order.append(r)
                continue
            seen.add(r)
            stack.append((r, True))
            for dep in inst.requests[r].after:
                d = prep.request_index.get(dep)
                if d is not None and d not in seen:
                    stack.append((d, False))
    return order


def _solve_makespan(instance: Instance, options: SolveOptions) -> Plan:
    instance = mandatory(instance)
    prep = prepare(instance)
    # A small share of the limit on more list schedules gives the solver a better start.
    warm = list_schedules(prep, tries=30, seed=options.seed, seconds=0.02 * options.time_limit_s)
    if warm is None:
        raise NoFeasiblePlan("the list schedule cannot fit every request within the horizon")
    upper = _makespan(warm)
    options.report("greedy", upper, 0)
    scope = full_scope(prep)
    # The list schedule ends by `upper`: no need to look further.
    scope.windows = {r: (lo, min(hi, upper)) for r, (lo, hi) in scope.windows.items()}
    # Identical resources pooled into classes: no search over their permutations.
    m = build_pooled_model(prep, scope)
    add_workforce_cumulatives(m)
    makespan = add_makespan(m, upper)
    m.model.minimize(makespan)
    m.hint(list(warm.placed.values()))
    solver = _solver(options, options.remaining() - 0.1)
    if 2 <= options.num_workers <= MAKESPAN_NO_LP_UP_TO:
        # Few workers: the full-problem worker searches without LP (fast propagation finds
        # shorter schedules; measured on MSPSP-InstLib), the others run neighbourhoods.
        solver.parameters.subsolvers.append("no_lp")
    if options.relative_gap_limit:
        solver.parameters.relative_gap_limit = options.relative_gap_limit
    status = solver.solve(m.model, _Reporter(options, "makespan"))
    occ = warm
    plan_status: Literal["optimal", "feasible", "fallback"] = "fallback"
    bound = 0
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        bound = math.ceil(solver.best_objective_bound - 1e-6)
        found = Occupancy(prep)
        try:
            placements = m.placements(solver)
        except AssertionError:  # a class over capacity: a bug, but the list schedule stands
            placements = []
        for p in placements:
            found.place(p)
        if placements and _makespan(found) <= upper:
            occ = found
            plan_status = "optimal" if status == cp_model.OPTIMAL else "feasible"
    plan = build_plan(
        prep,
        occ.assignments(),
        status=plan_status,
        method="cp-sat-makespan",
        bound=bound,
        seconds=options.elapsed(),
    )
    if not plan.checked:
        fallback = build_plan(
            prep, warm.assignments(), status="fallback", method="list", bound=bound
        )
        if not fallback.checked:
            from scheduling.check import check_plan

            raise InvalidPlan(check_plan(instance, fallback))
        return fallback
    return plan


__all__ = ["Placement", "lexicographic_key", "scope_for", "solve", "warm_start"]
