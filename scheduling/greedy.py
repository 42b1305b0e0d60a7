"""A list scheduler over bit-set calendars: the engine of both baselines and of repairs.

`Occupancy` holds a partial plan (who is busy when, lending used, budget spent) and places
one request at a time at its earliest feasible start, choosing resources by a policy.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from scheduling.eligibility import Prepared, span_mask
from scheduling.schemas import Assignment

DISPLACE_TRIES = 200
"""Feasible starts compared, at most, for the fewest displaced pinned bookings."""

ResourceKey = Callable[[int, int, int], tuple[int, ...]]
"""(request, requirement index, resource) -> sort key; smaller is chosen first."""


@dataclass
class Placement:
    """Where and with what a request is placed."""

    request: int
    start: int
    end: int
    resources: list[int]
    cost: int


class Occupancy:
    """A partial plan over the prepared instance, with fast feasibility queries."""

    def __init__(self, prep: Prepared) -> None:
        self.prep = prep
        self.busy = list(prep.fixed_busy)
        """Per resource: where an assignment's own span may not be (bit set)."""
        self.blocks = list(prep.pinned_busy)
        """Per resource: pinned bookings and placed blocks (set-up and tear-down included)."""
        self.used = [[0] * len(caps) for caps in prep.caps]
        """Per resource and capacity window: time units the placements use inside it."""
        self.spent: dict[str, int] = {}
        self.placed: dict[int, Placement] = {}
        self.displaced: dict[int, set[int]] = {}
        """Displaceable pin (index into `instance.pinned`) -> placed requests whose block
        overlaps it (an entry only while some do)."""
        self._may_displace = any(prep.displaceable)
        self._version = [0] * len(prep.buffers)
        """Per resource: bumped whenever its calendar or capacity use changes."""
        self._starts: dict[tuple[int, int], tuple[int, int]] = {}
        """(resource, duration) -> (version, free starts): many requests ask the same."""
        self._forbidden: dict[tuple[int, str, int], tuple[int, int]] = {}
        """(resource, borrowing unit, duration) -> (version, starts over a capacity window)."""

    # -- bookkeeping -------------------------------------------------------------------
    def place(self, p: Placement) -> None:
        """Record placement `p` (assumed feasible)."""
        inst = self.prep.instance
        mask = span_mask(p.start, p.end)
        for k in p.resources:
            self._version[k] += 1
            self.busy[k] |= mask
            self.blocks[k] |= span_mask(*self.prep.block(k, p.start, p.end))
            for w in self.prep.caps_of(p.request, k):
                self.used[k][w] += self.prep.caps[k][w].overlap(p.start, p.end)
            for pin in self._pins_met(k, p):
                self.displaced.setdefault(pin, set()).add(p.request)
        project = inst.requests[p.request].project
        self.spent[project] = self.spent.get(project, 0) + p.cost
        self.placed[p.request] = p

    def remove(self, request: int) -> Placement:
        """Take `request` out of the partial plan and return its placement."""
        inst = self.prep.instance
        p = self.placed.pop(request)
        mask = span_mask(p.start, p.end)
        for k in p.resources:
            self._version[k] += 1
            self.busy[k] &= ~mask
            self.blocks[k] &= ~span_mask(*self.prep.block(k, p.start, p.end))
            for w in self.prep.caps_of(p.request, k):
                self.used[k][w] -= self.prep.caps[k][w].overlap(p.start, p.end)
            for pin in self._pins_met(k, p):
                self.displaced[pin].discard(p.request)
                if not self.displaced[pin]:
                    del self.displaced[pin]
        project = inst.requests[p.request].project
        self.spent[project] -= p.cost
        return p

    def fits(self, p: Placement) -> bool:
        """Whether placement `p` is still feasible against the current partial plan."""
        inst = self.prep.instance
        request = inst.requests[p.request]
        lo, hi = self.window(p.request)
        if lo is None or p.start < lo or p.end > hi or p.end - p.start != request.duration:
            return False
        mask = span_mask(p.start, p.end)
        for k in p.resources:
            if self.busy[k] & mask:
                return False
            if self.prep.buffered(k) and self.blocks[k] & span_mask(
                *self.prep.block(k, p.start, p.end)
            ):
                return False
            if (1 << p.start) & self.cap_forbidden(p.request, k):
                return False
        return self._budget_ok(p.request, p.cost)

    def _pins_met(self, k: int, p: Placement) -> list[int]:
        """Displaceable pins of resource k that placement p's block overlaps."""
        if not self.prep.displaceable[k]:
            return []
        block = span_mask(*self.prep.block(k, p.start, p.end))
        return [pin for pin in self.prep.displaceable[k] if self.prep.pin_mask(pin) & block]

    def guard(self, k: int) -> int:
        """Displaceable pins of resource k that nothing displaces yet (bit set)."""
        mask = 0
        for pin in self.prep.displaceable[k]:
            if pin not in self.displaced:
                mask |= self.prep.pin_mask(pin)
        return mask

    # -- queries -------------------------------------------------------------------------
    def window(self, r: int) -> tuple[int | None, int]:
        """(earliest start, latest end) of request r now; None if a dependency is missing."""
        prep = self.prep
        request = prep.instance.requests[r]
        lo, hi = prep.windows[r]
        for dep in request.after:
            d = prep.request_index.get(dep)
            if d is None:
                continue  # a pinned dependency, already in prep.windows
            if d not in self.placed:
                return None, hi
            lo = max(lo, self.placed[d].end)
        return lo, hi

    def cap_forbidden(self, r: int, k: int) -> int:
        """Starts (bit set) at which request r would overrun a capacity window of k."""
        if not self.prep.caps[k]:
            return 0
        request = self.prep.instance.requests[r]
        key = (k, request.unit, request.duration)
        known = self._forbidden.get(key)
        if known is not None and known[0] == self._version[k]:
            return known[1]
        forbidden = 0
        for w in self.prep.caps_of(r, k):
            cap = self.prep.caps[k][w]
            forbidden |= cap.forbidden_starts(request.duration, cap.limit - self.used[k][w])
        self._forbidden[key] = (self._version[k], forbidden)
        return forbidden

    def _budget_ok(self, r: int, cost: int) -> bool:
        inst = self.prep.instance
        project = inst.requests[r].project
        budget = inst.budgets.get(project)
        return budget is None or self.spent.get(project, 0) + cost <= budget

    def start_mask(
        self, r: int, k: int, lo: int, hi: int, caps: bool = True, displace: bool = True
    ) -> int:
        """Start times in [lo, hi - duration] at which resource k is free for request r
        (with `caps`, within its capacity windows; without `displace`, clear of the
        displaceable pins nothing displaces yet)."""
        duration = self.prep.instance.requests[r].duration
        if hi - lo < duration:
            return 0
        guard = 0 if displace else self.guard(k)
        starts = (
            self.free_starts(k, duration)
            if not guard
            else (self.prep.starts(k, duration, self.busy[k] | guard, self.blocks[k] | guard))
        )
        starts &= span_mask(lo, hi - duration + 1)
        return starts & ~self.cap_forbidden(r, k) if caps else starts

    def start_masks(self, r: int, lo: int, hi: int, displace: bool = True) -> dict[int, int]:
        """`start_mask` of every eligible resource of request r, with caps (the greedy's
        inner loop: one call per request instead of one per resource)."""
        request = self.prep.instance.requests[r]
        duration = request.duration
        window = span_mask(lo, hi - duration + 1)
        caps = self.prep.caps
        masks: dict[int, int] = {}
        for group in self.prep.eligible[r]:
            for k in group:
                if k in masks:
                    continue
                if not displace and self.prep.displaceable[k]:
                    masks[k] = self.start_mask(r, k, lo, hi, displace=False)
                    continue
                starts = self.free_starts(k, duration) & window
                if starts and caps[k]:
                    starts &= ~self.cap_forbidden(r, k)
                masks[k] = starts
        return masks

    def free_starts(self, k: int, duration: int) -> int:
        """Starts at which resource k can take `duration` units now (memoised until its
        calendar changes: thousands of requests ask about the same resource)."""
        known = self._starts.get((k, duration))
        if known is not None and known[0] == self._version[k]:
            return known[1]
        starts = self.prep.starts(k, duration, self.busy[k], self.blocks[k])
        self._starts[(k, duration)] = (self._version[k], starts)
        return starts

    def find(self, r: int, key: ResourceKey, latest_first: bool = False) -> Placement | None:
        """The earliest feasible placement of request r choosing resources by `key`;
        displacing displaceable pinned bookings only if nothing fits without, and then
        as few as the first `DISPLACE_TRIES` feasible starts allow."""
        found = next(self._placements(r, key, latest_first, displace=False), None)
        if found is not None or not self._may_displace:
            return found
        if not any(self.prep.displaceable[k] for k in self.prep.candidates(r)):
            return None
        best: tuple[int, int] | None = None
        for n, p in enumerate(self._placements(r, key, latest_first, displace=True)):
            count = self.newly_displaced(p)
            if best is None or count < best[0]:
                best, found = (count, n), p
            if count <= 1 or n >= DISPLACE_TRIES:
                break  # one is the fewest possible: nothing fitted without displacing
        return found

    def newly_displaced(self, p: Placement) -> int:
        """Displaceable pins placement p would displace that nothing displaces yet."""
        return sum(
            1 for k in p.resources for pin in self._pins_met(k, p) if pin not in self.displaced
        )

    def _placements(
        self, r: int, key: ResourceKey, latest_first: bool, displace: bool
    ) -> Iterator[Placement]:
        """Feasible placements of request r, earliest start first (or latest), one per start."""
        request = self.prep.instance.requests[r]
        lo, hi = self.window(r)
        if lo is None or hi - lo < request.duration:
            return
        groups = self.prep.eligible[r]
        masks = self.start_masks(r, lo, hi, displace=displace)
        feasible = span_mask(lo, hi - request.duration + 1)
        for group in groups:
            union = 0
            for k in group:
                union |= masks[k]
            feasible &= union
        # Scarce requirements choose first so a shared resource goes where it is needed.
        order = sorted(range(len(groups)), key=lambda i: len(groups[i]))
        price = self.prep.prices[r]
        cheap: ResourceKey = lambda _r, _i, k: (price[k], k)  # noqa: E731
        while feasible:
            t = (
                feasible.bit_length() - 1
                if latest_first
                else (feasible & -feasible).bit_length() - 1
            )
            feasible &= ~(1 << t)
            chosen = self._choose(r, t, order, masks, key)
            if chosen is None:
                continue
            if not self._budget_ok(r, sum(price[k] for k in chosen)):
                chosen = self._choose(r, t, order, masks, cheap)
                if chosen is None:
                    continue
                if not self._budget_ok(r, sum(price[k] for k in chosen)):
                    return  # the cheapest choice is too dear at any time
            yield Placement(r, t, t + request.duration, chosen, sum(price[k] for k in chosen))

    def serves_somewhere(self, r: int, masks: dict[int, int]) -> bool:
        """Whether at some start every requirement of r gets its quantity of resources
        whose start mask (`masks`, per eligible resource) allows it, one role each."""
        groups = self.prep.eligible[r]
        if not groups:
            return True  # time alone (benchmark files): the window was checked before
        feasible = ~0
        for group in groups:
            union = 0
            for k in group:
                union |= masks[k]
            feasible &= union
        order = sorted(range(len(groups)), key=lambda i: len(groups[i]))
        while feasible > 0:
            t = (feasible & -feasible).bit_length() - 1
            feasible &= feasible - 1
            if self._choose(r, t, order, masks, lambda _r, _i, k: (k,)) is not None:
                return True
        return False

    def _choose(
        self, r: int, t: int, order: list[int], masks: dict[int, int], key: ResourceKey
    ) -> list[int] | None:
        groups = self.prep.eligible[r]
        requirements = self.prep.instance.requests[r].requirements
        taken: set[int] = set()
        chosen: list[int] = []
        free_by: dict[int, list[int]] = {}
        for i in order:
            free = [k for k in groups[i] if (masks[k] >> t) & 1]
            if len(free) < requirements[i].quantity:
                return None
            free.sort(key=lambda k, i=i: key(r, i, k))  # type: ignore[misc]
            free_by[i] = free
        for i in order:
            need = requirements[i].quantity
            picked = [k for k in free_by[i] if k not in taken][:need]
            taken.update(picked)
            chosen.extend(picked)
            if len(picked) < need:
                break
        else:
            return chosen
        # The greedy split failed: a resource fits several requirements; match properly.
        slots = [i for i in order for _ in range(requirements[i].quantity)]
        owner: dict[int, int] = {}  # resource -> slot

        def augment(slot: int, seen: set[int]) -> bool:
            for k in free_by[slots[slot]]:
                if k in seen:
                    continue
                seen.add(k)
                if k not in owner or augment(owner[k], seen):
                    owner[k] = slot
                    return True
            return False

        if all(augment(slot, set()) for slot in range(len(slots))):
            return sorted(owner, key=lambda k: owner[k])
        return None

    # -- results -------------------------------------------------------------------------
    def assignments(self) -> list[Assignment]:
        """The partial plan as assignments, in request order."""
        inst = self.prep.instance
        out = []
        for r in sorted(self.placed):
            p = self.placed[r]
            out.append(
                Assignment(
                    request_id=inst.requests[r].id,
                    resource_ids=[inst.resources[k].id for k in p.resources],
                    start=p.start,
                    end=p.end,
                    needs_approval=any((r, k) in self.prep.approval for k in p.resources),
                    cost=p.cost,
                )
            )
        return out

    def load(self, assignments: Iterable[Assignment]) -> None:
        """Place given assignments (of requests of this instance) that are still feasible."""
        prep = self.prep
        pending = []
        for a in assignments:
            r = prep.request_index.get(a.request_id)
            if r is None or r in self.placed:
                continue
            if any(k not in prep.resource_index for k in a.resource_ids):
                continue
            ks = [prep.resource_index[k] for k in a.resource_ids]
            if not _serves(prep, r, ks):
                continue
            cost = sum(prep.price(r, k) for k in ks)
            pending.append(Placement(r, a.start, a.end, ks, cost))
        # Dependencies first: retry until no progress.
        while pending:
            rest = []
            for p in pending:
                if self.fits(p):
                    self.place(p)
                else:
                    rest.append(p)
            if len(rest) == len(pending):
                break
            pending = rest


def _serves(prep: Prepared, r: int, ks: list[int]) -> bool:
    """Whether resources `ks` can cover every requirement of request r (one role each)."""
    groups = prep.eligible[r]
    quantities = [q.quantity for q in prep.instance.requests[r].requirements]
    if len(ks) != len(set(ks)) or len(ks) != sum(quantities):
        return False
    return has_matching(ks, groups, quantities)


def has_matching(ks: list[int], groups: list[list[int]], quantities: list[int]) -> bool:
    """Whether resources ks can be split among requirement groups, `quantities[i]` each."""
    slots = [i for i, q in enumerate(quantities) for _ in range(q)]
    sets = [set(g) for g in groups]
    owner: dict[int, int] = {}  # slot -> resource position

    def augment(pos: int, seen: set[int]) -> bool:
        for s, i in enumerate(slots):
            if ks[pos] in sets[i] and s not in seen:
                seen.add(s)
                if s not in owner or augment(owner[s], seen):
                    owner[s] = pos
                    return True
        return False

    return all(augment(pos, set()) for pos in range(len(ks)))
