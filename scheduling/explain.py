"""Reasons for every request a plan leaves out, computed against that plan.

The checks run from the most basic (nobody has the skill) to the most circumstantial
(somebody else took the time), and stop at the first level that explains the refusal.
Messages are plain words with no ids, times or amounts: those are in the reason's fields
(the app renders names and local times from them).
"""

from __future__ import annotations

from bisect import bisect_left

from scheduling.eligibility import Prepared, span_mask
from scheduling.greedy import Occupancy
from scheduling.schemas import Assignment, Reason, ReasonCode, Requirement, TimeSpan, Unallocated

Spans = list[tuple[int, int, str]]
"""(start, end, id) of what holds one resource, sorted by start."""


class Holders:
    """What holds each resource when: planned blocks and pinned bookings (not displaceable),
    sorted by start, so naming who took a window never scans the whole plan."""

    def __init__(self, prep: Prepared, assignments: list[Assignment]) -> None:
        self.planned: dict[int, Spans] = {}
        self.pinned: dict[int, Spans] = {}
        for a in assignments:
            for resource_id in a.resource_ids:
                k = prep.resource_index[resource_id]
                lo, hi = prep.block(k, a.start, a.end)
                self.planned.setdefault(k, []).append((lo, hi, a.request_id))
        for pin in prep.instance.pinned:
            if not pin.displaceable:
                k = prep.resource_index[pin.resource_id]
                self.pinned.setdefault(k, []).append((pin.start, pin.end, pin.id))
        self._longest: dict[tuple[int, int], int] = {}
        for which, index in enumerate((self.planned, self.pinned)):
            for k, spans in index.items():
                spans.sort()
                self._longest[(which, k)] = max(e - s for s, e, _ in spans)

    def planned_in(self, k: int, lo: int, hi: int) -> list[str]:
        """Requests whose planned block of resource k meets [lo, hi)."""
        return _meeting(self.planned.get(k, []), self._longest.get((0, k), 0), lo, hi)

    def pinned_in(self, k: int, lo: int, hi: int) -> list[str]:
        """Pinned bookings (not displaceable) of resource k that meet [lo, hi)."""
        return _meeting(self.pinned.get(k, []), self._longest.get((1, k), 0), lo, hi)


def _meeting(spans: Spans, longest: int, lo: int, hi: int) -> list[str]:
    """Ids of `spans` (sorted by start, none longer than `longest`) that meet [lo, hi)."""
    out = []
    # Nothing that starts before lo - longest can reach lo.
    for s, e, ident in spans[bisect_left(spans, (lo - longest,)) :]:
        if s >= hi:
            break
        if e > lo:
            out.append(ident)
    return out


def explain(prep: Prepared, assignments: list[Assignment]) -> list[Unallocated]:
    """One `Unallocated` with at least one reason for each request not in `assignments`."""
    inst = prep.instance
    occ = Occupancy(prep)
    occ.load(assignments)
    holders = Holders(prep, assignments)
    by_request = {a.request_id: a for a in assignments}
    out = []
    for r, request in enumerate(inst.requests):
        if request.id in by_request:
            continue
        reasons = _static_reasons(prep, r, by_request)
        if not reasons:
            reasons = _working_hours_reasons(prep, occ, r)
        if not reasons:
            reasons = _budget_reasons(prep, occ, r)
        if not reasons:
            reasons = _capacity_reasons(prep, occ, r, holders)
        out.append(Unallocated(request_id=request.id, reasons=reasons))
    return out


def _what(requirement: Requirement) -> str:
    """The requirement in words, without ids."""
    if requirement.skill is not None:
        return "an expert with the skill at the level asked for"
    if requirement.device_type is not None:
        return "a device of the type asked for"
    return "the resource asked for"


def _static_reasons(prep: Prepared, r: int, by_request: dict[str, Assignment]) -> list[Reason]:
    inst = prep.instance
    request = inst.requests[r]
    reasons: list[Reason] = []
    for i, requirement in enumerate(request.requirements):
        if not prep.matching[r][i]:
            reasons.append(
                Reason(
                    code=ReasonCode.NO_ELIGIBLE_RESOURCE,
                    requirement=i,
                    message=f"nothing in the pool is {_what(requirement)}",
                )
            )
        elif len(prep.eligible[r][i]) < requirement.quantity:
            holders = {
                inst.resources[k].home_unit
                for k in prep.matching[r][i]
                if k not in prep.eligible[r][i]
            }
            reasons.append(
                Reason(
                    code=ReasonCode.NO_AGREEMENT,
                    requirement=i,
                    units=sorted(holders),
                    resource_ids=[inst.resources[k].id for k in prep.matching[r][i]],
                    message=(
                        f"not enough of {_what(requirement)}: the units that hold the rest "
                        "have no agreement lending it to the requesting unit"
                    ),
                )
            )
    lo, hi = prep.windows[r]
    if hi - lo < request.duration:
        reasons.append(
            Reason(
                code=ReasonCode.WINDOW_TOO_SHORT,
                amount=max(hi - lo, 0),
                span=TimeSpan(start=lo, end=max(lo, hi)),
                message="its window is shorter than its duration",
            )
        )
    reasons += _dependency_reasons(prep, r, by_request, hi)
    return reasons


def _dependency_reasons(
    prep: Prepared, r: int, by_request: dict[str, Assignment], hi: int
) -> list[Reason]:
    request = prep.instance.requests[r]
    reasons = []
    for dep in request.after:
        if dep not in prep.request_index:
            continue  # pinned: already part of the window
        done = by_request.get(dep)
        if done is None:
            reasons.append(
                Reason(
                    code=ReasonCode.DEPENDENCY_UNMET,
                    request_ids=[dep],
                    message="a request it must follow is not allocated",
                )
            )
        elif done.end + request.duration > hi:
            reasons.append(
                Reason(
                    code=ReasonCode.DEPENDENCY_UNMET,
                    request_ids=[dep],
                    amount=done.end,
                    message="a request it must follow ends too late for it to fit",
                )
            )
    return reasons


def _working_hours_reasons(prep: Prepared, occ: Occupancy, r: int) -> list[Reason]:
    """Whatever else is planned or booked, too few eligible resources are available (by
    their unavailability alone) for a span of the duration in the window."""
    inst = prep.instance
    request = inst.requests[r]
    lo, hi = _window(prep, occ, r)
    window = span_mask(lo, hi - request.duration + 1)
    masks = {
        k: prep.starts(k, request.duration, prep.unavailable[k], 0) & window
        for k in prep.candidates(r)
    }
    span = TimeSpan(start=lo, end=hi)
    reasons = []
    for i, requirement in enumerate(request.requirements):
        idle = [k for k in prep.eligible[r][i] if not masks[k]]
        if len(prep.eligible[r][i]) - len(idle) < requirement.quantity:
            reasons.append(
                Reason(
                    code=ReasonCode.OUTSIDE_WORKING_HOURS,
                    requirement=i,
                    resource_ids=[inst.resources[k].id for k in idle],
                    span=span,
                    message=(
                        f"too few of {_what(requirement)} are available long enough in its "
                        "window (working hours, leave or maintenance)"
                    ),
                )
            )
    if not reasons and not occ.serves_somewhere(r, masks):
        reasons.append(
            Reason(
                code=ReasonCode.OUTSIDE_WORKING_HOURS,
                resource_ids=[inst.resources[k].id for k in masks],
                span=span,
                message=(
                    "the resources its requirements need are never available together "
                    "long enough in its window (working hours, leave or maintenance)"
                ),
            )
        )
    return reasons


def _window(prep: Prepared, occ: Occupancy, r: int) -> tuple[int, int]:
    """The request's window after the horizon, pinned and planned dependencies."""
    lo, hi = occ.window(r)
    return (prep.windows[r][0] if lo is None else lo), hi


def _budget_reasons(prep: Prepared, occ: Occupancy, r: int) -> list[Reason]:
    inst = prep.instance
    request = inst.requests[r]
    budget = inst.budgets.get(request.project)
    if budget is None:
        return []
    cheapest = 0
    for i, requirement in enumerate(request.requirements):
        prices = sorted(prep.price(r, k) for k in prep.eligible[r][i])
        cheapest += sum(prices[: requirement.quantity])
    remaining = budget - occ.spent.get(request.project, 0)
    if cheapest <= remaining:
        return []
    return [
        Reason(
            code=ReasonCode.BUDGET_SHORT,
            amount=cheapest - remaining,
            message="the project's remaining budget does not cover its cheapest booking",
        )
    ]


def _capacity_reasons(prep: Prepared, occ: Occupancy, r: int, holders: Holders) -> list[Reason]:
    if occ.find(r, lambda _r, _i, k: (k,)) is not None:
        return [
            Reason(
                code=ReasonCode.NOT_SELECTED,
                message=(
                    "it fits on its own, but the search kept requests the objective preferred "
                    "or ended before placing it"
                ),
            )
        ]
    lo, hi = _window(prep, occ, r)
    uncapped = {k: occ.start_mask(r, k, lo, hi, caps=False) for k in prep.candidates(r)}
    if occ.serves_somewhere(r, uncapped):
        capped = _cap_reasons(prep, occ, r, uncapped)
        if capped:
            return capped
    reasons = []
    request = prep.instance.requests[r]
    for i, requirement in enumerate(request.requirements):
        group = prep.eligible[r][i]
        if sum(1 for k in group if uncapped[k]) < requirement.quantity:
            reasons.append(_taken_by(prep, r, i, group, (lo, hi), holders))
    if not reasons:
        # Each requirement fits alone; together they do not.
        reasons.append(_taken_by(prep, r, None, prep.candidates(r), (lo, hi), holders))
    return [reason for reason in reasons if reason is not None] or [
        Reason(
            code=ReasonCode.NOT_SELECTED,
            message="no span in its window suits all its requirements at once",
        )
    ]


def _cap_reasons(prep: Prepared, occ: Occupancy, r: int, uncapped: dict[int, int]) -> list[Reason]:
    """One LENDING_CAP reason per requirement and capacity window that rules out starts
    at which its eligible resources are otherwise free."""
    inst = prep.instance
    duration = inst.requests[r].duration
    found: dict[tuple[int, int], list[str]] = {}
    for i, group in enumerate(prep.eligible[r]):
        for k in group:
            for w in prep.caps_of(r, k):
                cap = prep.caps[k][w]
                if cap.forbidden_starts(duration, cap.limit - occ.used[k][w]) & uncapped[k]:
                    found.setdefault((i, w), []).append(inst.resources[k].id)
    reasons = []
    for (i, w), ids in found.items():
        cap = prep.caps[prep.resource_index[ids[0]]][w]
        reasons.append(
            Reason(
                code=ReasonCode.LENDING_CAP,
                requirement=i,
                resource_ids=ids,
                span=TimeSpan(start=cap.start, end=cap.end),
                amount=cap.limit,
                message=(
                    f"the free resources that are {_what(inst.requests[r].requirements[i])} "
                    "have used up a lending or agreement cap"
                ),
            )
        )
    return reasons


def _taken_by(
    prep: Prepared,
    r: int,
    requirement: int | None,
    group: list[int],
    window: tuple[int, int],
    holders: Holders,
) -> Reason | None:
    """NO_CAPACITY naming the planned requests and pinned bookings that hold `group` in
    the window (blocks included), or None if nothing does."""
    inst = prep.instance
    lo, hi = window
    takers: set[str] = set()
    bookings: set[str] = set()
    for k in group:
        reach = prep.block(k, lo, hi)
        takers.update(holders.planned_in(k, *reach))
        bookings.update(holders.pinned_in(k, *reach))
    if not takers and not bookings:
        return None
    what = (
        "its requirements together"
        if requirement is None
        else _what(inst.requests[r].requirements[requirement])
    )
    return Reason(
        code=ReasonCode.NO_CAPACITY,
        requirement=requirement,
        request_ids=sorted(takers, key=lambda rid: prep.request_index[rid]),
        booking_ids=sorted(bookings),
        resource_ids=sorted(inst.resources[k].id for k in group),
        span=TimeSpan(start=lo, end=hi),
        message=(
            f"no capacity for {what} in its window: pinned bookings and other planned "
            "requests hold the resources"
        ),
    )
