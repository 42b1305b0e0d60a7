"""Large instances: large-neighbourhood search over the greedy plan, and a capacity bound.

The monolithic model of a 2,000-request run does not pay off in a minute (presolve alone
can take the limit). Instead, repeatedly: pick a left-out request, free the placed requests
that hold its candidate resources inside its window (plus other left-out requests that want
them), and re-solve just that neighbourhood exactly with everything else fixed. A
neighbourhood's solution is kept when it serves at least as much weight, so the plan never
gets worse than the greedy it started from.

The bound comes from a relaxation (`scheduling.bound`): for each requirement kind and each
window, the work the requests inside that window ask of the kind's pool cannot exceed the
pool's free time there.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from ortools.sat.python import cp_model

from scheduling.bound import relaxation_bound
from scheduling.eligibility import Prepared
from scheduling.greedy import Occupancy
from scheduling.model import add_moves, build_model, busy_runs

if TYPE_CHECKING:
    from scheduling.solve import SolveOptions

NEIGHBOURHOOD = 40
"""Most requests re-solved at once."""
STEP_SECONDS = 0.3
"""Most time spent on one neighbourhood."""
BLOCK_SHARE = 0.5
"""Share of neighbourhoods confined to one working block (see `working_blocks`)."""
GUIDE = 3
"""Seeds served by the bound's relaxation are drawn this many times as often."""
BOUND_SHARE = 0.15
"""Share of the time limit spent proving the bound."""


def placeable(prep: Prepared) -> list[int]:
    """Requests that could be served on an empty calendar (enough eligible, window long enough)."""
    inst = prep.instance
    out = []
    for r, request in enumerate(inst.requests):
        lo, hi = prep.windows[r]
        if hi - lo < request.duration:
            continue
        if all(
            len(group) >= q.quantity
            for group, q in zip(prep.eligible[r], request.requirements, strict=True)
        ):
            out.append(r)
    return out


def working_blocks(prep: Prepared) -> list[tuple[int, int]]:
    """Maximal spans in which some resource is available (working days, in practice).

    No request with a requirement can straddle two blocks: between them nobody is free.
    """
    anyone = 0
    for busy in prep.fixed_busy:
        anyone |= ~busy & prep.horizon_mask
    return busy_runs(anyone, 0, prep.instance.horizon)


def improve(prep: Prepared, occ: Occupancy, options: SolveOptions) -> tuple[Occupancy, int | None]:
    """Improve `occ` in place until the time limit; returns it and a bound on term 1."""
    inst = prep.instance
    search = _Search(prep, occ, options)
    # The bound first: its relaxation is often solved well before its share runs out.
    bound, chosen = capacity_bound(
        prep,
        options,
        min(options.remaining(), options.time_limit_s * BOUND_SHARE),
        set(occ.placed),
    )
    # Requests the relaxation serves are the likelier ones to fit: seed from them more often.
    search.weights = {r: w * (GUIDE if r in chosen else 1) for r, w in search.weights.items()}
    weight = sum(inst.requests[r].weight for r in occ.placed)
    options.report("bound", weight, bound, placed=len(occ.placed), weight=weight)
    while options.remaining() > 0.05:
        left = [r for r in search.candidates if r not in occ.placed]
        if not left:
            break
        free, core, block = search.neighbourhood(left)
        if search.resolve(free, core, block):
            weight = sum(inst.requests[r].weight for r in occ.placed)
            options.report("lns", weight, bound, placed=len(occ.placed), weight=weight)
    return occ, bound


class _Search:
    """The neighbourhood search's state: the plan, who holds each resource, the links."""

    def __init__(self, prep: Prepared, occ: Occupancy, options: SolveOptions) -> None:
        inst = prep.instance
        self.prep, self.occ, self.options = prep, occ, options
        self.rng = random.Random(options.seed)
        self.candidates = placeable(prep)
        self.cand_sets = {r: set(prep.candidates(r)) for r in self.candidates}
        self.weights = {r: inst.requests[r].weight for r in self.candidates}
        self.blocks = working_blocks(prep)
        self.depends_on: dict[int, list[int]] = {r: [] for r in range(len(inst.requests))}
        self.dependants: dict[int, list[int]] = {r: [] for r in range(len(inst.requests))}
        for r, request in enumerate(inst.requests):
            for dep in request.after:
                d = prep.request_index.get(dep)
                if d is not None:
                    self.depends_on[r].append(d)
                    self.dependants[d].append(r)
        self.holding: dict[int, set[int]] = {}
        """Resource -> placed requests it serves (so a neighbourhood never scans the plan)."""
        for r, p in occ.placed.items():
            for k in p.resources:
                self.holding.setdefault(k, set()).add(r)

    def neighbourhood(self, left: list[int]) -> tuple[set[int], set[int], tuple[int, int] | None]:
        """(free, core, block): a left-out seed, placed requests holding its resources in its
        window (or one working block of it), rivals for them, and their dependency chains."""
        prep, occ, rng = self.prep, self.occ, self.rng
        seed_r = rng.choices(left, weights=[self.weights[r] for r in left])[0]
        lo, hi = prep.windows[seed_r]
        duration = prep.instance.requests[seed_r].duration
        inside = [(s, e) for s, e in self.blocks if min(e, hi) - max(s, lo) >= duration]
        block: tuple[int, int] | None = None
        if inside and rng.random() < BLOCK_SHARE:
            # Repack one working block (a day) around the seed: small domains, quick solves.
            block = rng.choice(inside)
            lo, hi = max(lo, block[0]), min(hi, block[1])
        pool = self.cand_sets[seed_r]
        held = sorted(
            {
                f
                for k in pool
                for f in self.holding.get(k, ())
                if occ.placed[f].start < hi and occ.placed[f].end > lo
            }
        )
        rivals = [
            u
            for u in left
            if u != seed_r
            and prep.windows[u][0] < hi
            and prep.windows[u][1] > lo
            and not pool.isdisjoint(self.cand_sets[u])
        ]
        rng.shuffle(held)
        rng.shuffle(rivals)
        free = {seed_r, *held[: NEIGHBOURHOOD * 2 // 3]}
        free.update(rivals[: NEIGHBOURHOOD - len(free)])
        core = set(free)
        # A left-out request comes in only with its left-out dependencies, and may bring its
        # left-out dependants with it: free those chains too.
        todo = list(free)
        while todo:
            r = todo.pop()
            for d in (*self.depends_on[r], *self.dependants[r]):
                if d not in free and d not in occ.placed and d in self.cand_sets:
                    free.add(d)
                    todo.append(d)
        # A placed dependency of a left-out request may have to move earlier to let it in.
        for r in list(free):
            if r not in occ.placed:
                free.update(d for d in self.depends_on[r] if d in occ.placed)
        return free, core, block

    def resolve(self, free: set[int], core: set[int], block: tuple[int, int] | None) -> bool:
        """Re-solve the neighbourhood exactly, the rest fixed; keep the answer when it serves
        at least as much. Whether it served more."""
        from scheduling.solve import scope_for

        prep, occ, options = self.prep, self.occ, self.options
        inst = prep.instance
        scope = scope_for(prep, occ, free)
        if block is not None:
            # The neighbourhood stays inside the block (where its placed requests already are);
            # dependency chains keep their own windows.
            for r in core:
                w_lo, w_hi = scope.windows[r]
                scope.windows[r] = (max(w_lo, block[0]), min(w_hi, block[1]))
        before = sum(inst.requests[r].weight for r in free if r in occ.placed)
        m = build_model(prep, scope)
        m.hint([occ.placed[r] for r in free if r in occ.placed])
        if inst.published or m.kept:
            # Fulfilment first, then fewest moves of the published plan and displaced pins
            # (weights equivalent to the lexicographic order: one unit of weight outweighs
            # every move here).
            scale = len(free) + len(m.kept) + 1
            moves = add_moves(m)
            displaced = sum(1 for pin in m.kept if pin in occ.displaced)
            before = scale * before - _moves(prep, occ, free) - displaced
            m.model.maximize(cp_model.LinearExpr.sum([scale * m.fulfilment(), -1 * moves]))
        else:
            m.model.maximize(m.fulfilment())
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = min(STEP_SECONDS, options.remaining())
        solver.parameters.num_workers = options.num_workers
        solver.parameters.random_seed = self.rng.randrange(1 << 30)
        status = solver.solve(m.model)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return False
        after = round(solver.objective_value)
        if after < before:
            return False
        for r in free:
            if r in occ.placed:
                for k in occ.remove(r).resources:
                    self.holding[k].discard(r)
        for p in m.placements(solver):
            occ.place(p)
            for k in p.resources:
                self.holding.setdefault(k, set()).add(p.request)
        return after > before


def capacity_bound(
    prep: Prepared, options: SolveOptions, seconds: float, hint: set[int] | None = None
) -> tuple[int, set[int]]:
    """An upper bound on priority-weighted fulfilment from a pool-capacity relaxation
    (see `scheduling.bound`), within `seconds` (building included).

    Also returns the requests the relaxation's best solution serves. `hint`: requests a
    real plan serves (a feasible start for the relaxation).
    """
    inst = prep.instance
    windows = chained_windows(prep)
    rs = [r for r in placeable(prep) if windows[r][1] - windows[r][0] >= inst.requests[r].duration]
    return relaxation_bound(prep, options, seconds, windows, rs, hint or set())


def chained_windows(prep: Prepared) -> list[tuple[int, int]]:
    """Request windows tightened along dependency chains (earliest start after the earliest
    end of each dependency), so a request whose chain cannot fit shows an empty window."""
    inst = prep.instance
    lo = [w[0] for w in prep.windows]
    hi = [w[1] for w in prep.windows]
    done: set[int] = set()
    for root in range(len(inst.requests)):
        stack = [(root, False)]
        while stack:
            r, expanded = stack.pop()
            if r in done:
                continue
            deps = [prep.request_index.get(dep) for dep in inst.requests[r].after]
            known = [d for d in deps if d is not None]
            if not expanded:
                stack.append((r, True))
                stack.extend((d, False) for d in known if d not in done)
                continue
            done.add(r)
            for d in known:
                lo[r] = max(lo[r], lo[d] + inst.requests[d].duration)
    return list(zip(lo, hi, strict=True))


def _moves(prep: Prepared, occ: Occupancy, free: set[int]) -> int:
    """Published assignments of requests in `free` that the current plan does not keep."""
    inst = prep.instance
    current = {inst.requests[r].id: p for r, p in occ.placed.items() if r in free}
    count = 0
    for a in inst.published:
        r = prep.request_index.get(a.request_id)
        if r is None or r not in free:
            continue
        p = current.get(a.request_id)
        kept = (
            p is not None
            and p.start == a.start
            and sorted(inst.resources[k].id for k in p.resources) == sorted(a.resource_ids)
        )
        count += not kept
    return count
