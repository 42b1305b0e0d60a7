"""Reasons for every request a plan leaves out, computed against that plan.

The checks run from the most basic (nobody has the skill) to the most circumstantial
(somebody else took the time), and stop at the first level that explains the refusal.
"""

from __future__ import annotations

from scheduling.eligibility import Prepared
from scheduling.greedy import Occupancy
from scheduling.schemas import Assignment, Reason, ReasonCode, Unallocated


def explain(prep: Prepared, assignments: list[Assignment]) -> list[Unallocated]:
    """One `Unallocated` with at least one reason for each request not in `assignments`."""
    inst = prep.instance
    occ = Occupancy(prep)
    occ.load(assignments)
    by_request = {a.request_id: a for a in assignments}
    out = []
    for r, request in enumerate(inst.requests):
        if request.id in by_request:
            continue
        reasons = _static_reasons(prep, r, by_request)
        if not reasons:
            reasons = _budget_reasons(prep, occ, r)
        if not reasons:
            reasons = _capacity_reasons(prep, occ, r, assignments)
        out.append(Unallocated(request_id=request.id, reasons=reasons))
    return out


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
                    message=f"no resource in the pool has {requirement.describe()}",
                )
            )
        elif len(prep.eligible[r][i]) < requirement.quantity:
            holders = sorted(
                {
                    inst.resources[k].home_unit
                    for k in prep.matching[r][i]
                    if k not in prep.eligible[r][i]
                }
            )
            reasons.append(
                Reason(
                    code=ReasonCode.NO_AGREEMENT,
                    requirement=i,
                    units=holders,
                    resource_ids=[inst.resources[k].id for k in prep.matching[r][i]],
                    message=(
                        f"{request.unit} has no agreement to borrow {requirement.describe()} "
                        f"from {', '.join(holders)}"
                    ),
                )
            )
    lo, hi = prep.windows[r]
    if hi - lo < request.duration:
        reasons.append(
            Reason(
                code=ReasonCode.WINDOW_TOO_SHORT,
                amount=max(hi - lo, 0),
                message=f"window [{lo}, {hi}) is shorter than the duration {request.duration}",
            )
        )
    for dep in request.after:
        if dep not in prep.request_index:
            continue  # pinned: already part of the window
        done = by_request.get(dep)
        if done is None:
            reasons.append(
                Reason(
                    code=ReasonCode.DEPENDENCY_UNMET,
                    request_ids=[dep],
                    message=f"it must follow {dep}, which is not allocated",
                )
            )
        elif done.end + request.duration > hi:
            reasons.append(
                Reason(
                    code=ReasonCode.DEPENDENCY_UNMET,
                    request_ids=[dep],
                    amount=done.end,
                    message=f"it must follow {dep}, which ends at {done.end}: too late to fit",
                )
            )
    return reasons


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
            message=(
                f"project {request.project} has {remaining} left; the cheapest booking "
                f"costs {cheapest} (short by {cheapest - remaining})"
            ),
        )
    ]


def _capacity_reasons(
    prep: Prepared, occ: Occupancy, r: int, assignments: list[Assignment]
) -> list[Reason]:
    inst = prep.instance
    request = inst.requests[r]
    lo_opt, hi = occ.window(r)
    lo = prep.windows[r][0] if lo_opt is None else lo_opt
    free_any = occ.find(r, lambda _r, _i, k: (k,))
    if free_any is not None:
        return [
            Reason(
                code=ReasonCode.NOT_SELECTED,
                message=(
                    "it fits on its own, but the search kept requests the objective preferred "
                    "or ended before placing it"
                ),
            )
        ]
    reasons: list[Reason] = []
    window = (lo, hi)
    for i, requirement in enumerate(request.requirements):
        group = prep.eligible[r][i]
        with_caps = 0
        capped = []
        for k in group:
            mask = occ.start_mask(r, k, lo, hi)
            with_caps |= mask
            if not mask and occ.start_mask(r, k, lo, hi, caps=False):
                capped.append(inst.resources[k].id)
        if with_caps and requirement.quantity == 1:
            continue
        if capped:
            reasons.append(
                Reason(
                    code=ReasonCode.LENDING_CAP,
                    requirement=i,
                    resource_ids=capped,
                    message=f"{', '.join(capped)} reached their lending cap",
                )
            )
        reasons.append(_taken_by(prep, r, i, group, window, assignments))
    if not reasons:
        # Each requirement fits alone; together they do not.
        group = prep.candidates(r)
        reasons.append(_taken_by(prep, r, None, group, window, assignments))
    return reasons


def _taken_by(
    prep: Prepared,
    r: int,
    requirement: int | None,
    group: list[int],
    window: tuple[int, int],
    assignments: list[Assignment],
) -> Reason:
    inst = prep.instance
    lo, hi = window
    ids = {inst.resources[k].id for k in group}
    takers = sorted(
        {
            a.request_id
            for a in assignments
            if a.start < hi and a.end > lo and ids.intersection(a.resource_ids)
        },
        key=lambda rid: prep.request_index[rid],
    )
    bookings = sorted(
        p.id for p in inst.pinned if p.resource_id in ids and p.start < hi and p.end > lo
    )
    what = (
        "its requirements together"
        if requirement is None
        else inst.requests[r].requirements[requirement].describe()
    )
    return Reason(
        code=ReasonCode.NO_CAPACITY,
        requirement=requirement,
        request_ids=takers,
        booking_ids=bookings,
        resource_ids=sorted(ids),
        message=(
            f"no capacity for {what} in [{lo}, {hi}): taken by "
            f"{len(takers)} requests and {len(bookings)} pinned bookings"
            " (or the resources are unavailable)"
        ),
    )
