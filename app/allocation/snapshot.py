"""From the database to the optimizer's `Instance`, and from its `Plan` back to UTC terms.

Time: integer slots of ``slot_minutes`` from the horizon start. Unavailability is rounded
outward to whole slots (a resource is never offered a slot it cannot fully serve);
windows inward. What goes in:

- resources: every active expert and device (eligibility by agreement is the instance's
  ``agreements``); off-hours, leave, maintenance and imported busy time become
  ``unavailable``; the lending cap becomes a number of slots over the horizon
  (``lending_cap_bp`` of the working time in it — the monthly cap is re-checked on apply);
  ``cost_rate`` is the hourly rate per slot, in minor units;
- requests: open requests in scope whose window meets the horizon, plus requests already
  allocated by an earlier plan (their tentative bookings are the *published* plan, which
  the optimizer moves as little as it can);
- pinned: every other live booking (pending, confirmed, completed) — fixed; except in an
  *emergency* run, which plans only emergency requests and may take the place of any live
  booking not made for an emergency request (``apply`` cancels and lists each one);
- budgets: each project's available funds from its ledger (no ledger: no limit);
- reciprocity: per unit, 1 + hours it lent to other units in the last 90 days divided by
  the hours it borrowed (at least 1 hour), capped at 10 — a unit that lends much gets its
  share of fulfilment weighted up in the fairness term;
- agreements: for each active agreement, the exact resources it covers.
"""

from __future__ import annotations

import math
import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

import scheduling
from app.agreements.models import SharingAgreement
from app.agreements.services import active_on, covers
from app.allocation.models import AllocationRun
from app.bookings.availability import Interval, merge, subtract, working_intervals
from app.bookings.models import (
    LIVE_STATUSES,
    Booking,
    BookingStatus,
    Request,
    RequestStatus,
    RequirementKind,
)
from app.bookings.rules import unavailable_periods
from app.catalog.models import Resource, ResourceKind
from ledger import available_funds_many

RECIPROCITY_LOOKBACK = timedelta(days=90)
RECIPROCITY_CAP = 10


class Clock:
    """Slot arithmetic for one run."""

    def __init__(self, start: datetime, slot_minutes: int) -> None:
        self.start = start
        self.slot = timedelta(minutes=slot_minutes)

    def floor(self, instant: datetime) -> int:
        """The slot containing ``instant``."""
        return max(0, math.floor((instant - self.start) / self.slot))

    def ceil(self, instant: datetime) -> int:
        """The first slot boundary at or after ``instant``."""
        return max(0, math.ceil((instant - self.start) / self.slot))

    def instant(self, slot: int) -> datetime:
        """The UTC instant at which ``slot`` begins."""
        return self.start + slot * self.slot


def _spans(clock: Clock, intervals: list[Interval], horizon: int) -> list[scheduling.TimeSpan]:
    spans = []
    for s, e in merge(intervals):
        a, b = clock.floor(s), min(horizon, clock.ceil(e))
        if a < b:
            spans.append(scheduling.TimeSpan(start=a, end=b))
    return spans


def _reciprocity(session: Session, since: datetime) -> dict[str, int]:
    lent: dict[uuid.UUID, float] = defaultdict(float)
    borrowed: dict[uuid.UUID, float] = defaultdict(float)
    rows = session.execute(
        select(Booking.lender_unit_id, Booking.borrower_unit_id, Booking.start, Booking.end).where(
            Booking.status.in_(LIVE_STATUSES),
            Booking.end > since,
            Booking.lender_unit_id != Booking.borrower_unit_id,
        )
    )
    for lender, borrower, s, e in rows:
        hours = (e - s).total_seconds() / 3600
        lent[lender] += hours
        borrowed[borrower] += hours
    return {
        str(u): max(1, min(RECIPROCITY_CAP, 1 + round(lent[u] / max(borrowed[u], 1.0))))
        for u in set(lent) | set(borrowed)
    }


def build_instance(
    session: Session, run: AllocationRun
) -> tuple[scheduling.Instance, dict[str, Any]]:
    """The run's instance, and what is needed to map the plan back (``snapshot`` extras)."""
    clock = Clock(run.horizon_start, run.slot_minutes)
    horizon = clock.floor(run.horizon_end)
    start, end = run.horizon_start, clock.instant(horizon)

    resources = list(
        session.scalars(
            select(Resource)
            .options(selectinload(Resource.skills))
            .where(Resource.retired_at.is_(None))
            .order_by(Resource.id)
        )
    )
    off = unavailable_periods(session, [r.id for r in resources], start, end)
    instance_resources = []
    for r in resources:
        work = working_intervals(r.working_hours, r.time_zone, start, end)
        closed = subtract([(start, end)], work)
        cap = None
        if r.kind == ResourceKind.EXPERT.value and r.lending_cap_bp < 10_000:
            working_slots = sum((e - s) / clock.slot for s, e in work)
            cap = int(working_slots * r.lending_cap_bp // 10_000)
        instance_resources.append(
            scheduling.Resource(
                id=str(r.id),
                kind="expert" if r.kind == ResourceKind.EXPERT.value else "device",
                home_unit=str(r.unit_id),
                skills={str(s.skill_id): s.level for s in r.skills},
                device_type=str(r.device_type_id) if r.device_type_id else None,
                unavailable=_spans(clock, [*closed, *off.get(r.id, [])], horizon),
                lending_cap=cap,
                cost_rate=r.hourly_rate * run.slot_minutes // 60,
            )
        )

    scope = (
        select(Request)
        .options(selectinload(Request.requirements))
        .where(
            Request.status.in_([RequestStatus.OPEN.value, RequestStatus.ALLOCATED.value]),
            Request.window_end > start,
            Request.window_start < end,
        )
    )
    if run.project_ids:
        scope = scope.where(Request.project_id.in_([uuid.UUID(p) for p in run.project_ids]))
    if run.unit_ids:
        scope = scope.where(Request.unit_id.in_([uuid.UUID(u) for u in run.unit_ids]))
    if run.emergency:
        scope = scope.where(Request.emergency.is_(True))
    requests = list(session.scalars(scope.order_by(Request.created_at, Request.id)))
    in_scope = {r.id for r in requests}

    live = list(
        session.scalars(
            select(Booking).where(
                Booking.status.in_(LIVE_STATUSES),
                Booking.block_end > start,
                Booking.block_start < end,
            )
        )
    )
    pinned, published_by_request = [], defaultdict(list)
    displaceable = _displaceable(session, live) if run.emergency else set()
    for b in live:
        replannable = b.status == BookingStatus.TENTATIVE.value and b.request_id in in_scope
        if replannable:
            published_by_request[b.request_id].append(b)
            continue
        if b.id in displaceable:
            continue
        a, z = clock.floor(b.block_start), min(horizon, clock.ceil(b.block_end))
        if a < z:
            pinned.append(
                scheduling.PinnedBooking(
                    id=str(b.id),
                    resource_id=str(b.resource_id),
                    start=a,
                    end=z,
                    unit=str(b.borrower_unit_id),
                    request_id=str(b.request_id) if b.request_id else None,
                )
            )

    # A dependency outside the scope counts only through its pinned bookings.
    known = in_scope | {uuid.UUID(p.request_id) for p in pinned if p.request_id}
    instance_requests = []
    unmet: list[str] = []
    for arrival, q in enumerate(requests):
        if q.depends_on_id is not None and q.depends_on_id not in known:
            unmet.append(str(q.id))
            continue
        w_start = clock.ceil(max(q.window_start, start))
        w_end = clock.floor(min(q.window_end, end))
        after = [str(q.depends_on_id)] if q.depends_on_id else []
        instance_requests.append(
            scheduling.Request(
                id=str(q.id),
                project=str(q.project_id),
                unit=str(q.unit_id),
                requirements=[_requirement(x) for x in q.requirements],
                duration=max(1, math.ceil(q.duration_minutes / run.slot_minutes)),
                window_start=min(w_start, horizon),
                window_end=max(min(w_end, horizon), 0),
                priority=q.priority,
                emergency=q.emergency,
                after=after,
                arrival=arrival,
            )
        )
    published = []
    for request_id, bookings in published_by_request.items():
        first = min(b.start for b in bookings)
        last = max(b.end for b in bookings)
        published.append(
            scheduling.Assignment(
                request_id=str(request_id),
                resource_ids=sorted(str(b.resource_id) for b in bookings),
                start=clock.floor(first),
                end=clock.ceil(last),
            )
        )

    projects = {r.project_id for r in requests}
    funds = available_funds_many(session, list(projects)) if projects else {}
    budgets = {str(p): money.amount for p, money in funds.items()}

    agreements = []
    today = start.date()
    for agreement in session.scalars(select(SharingAgreement).where(active_on(today))):
        covered = session.scalars(
            select(Resource.id).where(
                Resource.unit_id == agreement.lender_unit_id,
                Resource.retired_at.is_(None),
                select(SharingAgreement.id)
                .where(SharingAgreement.id == agreement.id, covers())
                .exists(),
            )
        ).all()
        agreements.append(
            scheduling.Agreement(
                lender=str(agreement.lender_unit_id),
                borrower=str(agreement.borrower_unit_id),
                resource_ids=sorted(str(c) for c in covered),
                needs_approval=agreement.requires_approval,
            )
        )

    instance = scheduling.Instance(
        horizon=max(horizon, 1),
        slot_minutes=run.slot_minutes,
        resources=instance_resources,
        requests=instance_requests,
        pinned=pinned,
        published=published,
        budgets=budgets,
        reciprocity=_reciprocity(session, start - RECIPROCITY_LOOKBACK),
        agreements=agreements,
        name=f"run {run.id}",
    )
    extras = {
        "tentative": {str(k): [str(b.id) for b in v] for k, v in published_by_request.items()},
        "dependency_unmet": unmet,
    }
    return instance, extras


def _displaceable(session: Session, live: list[Booking]) -> set[uuid.UUID]:
    """Bookings an emergency run may take the place of: live, not completed, and not made
    for an emergency request (direct bookings count as ordinary ones)."""
    emergency = set(session.scalars(select(Request.id).where(Request.emergency.is_(True))))
    return {
        b.id
        for b in live
        if b.status != BookingStatus.COMPLETED.value and b.request_id not in emergency
    }


def _requirement(q: Any) -> scheduling.Requirement:
    if q.kind == RequirementKind.SKILL.value:
        return scheduling.Requirement(
            skill=str(q.skill_id), min_level=q.min_level, quantity=q.quantity
        )
    if q.kind == RequirementKind.DEVICE_TYPE.value:
        return scheduling.Requirement(device_type=str(q.device_type_id), quantity=q.quantity)
    return scheduling.Requirement(resource_id=str(q.resource_id), quantity=1)


def plan_to_result(clock: Clock, plan: scheduling.Plan) -> dict[str, Any]:
    """The plan as JSON with UTC instants (what the API shows and apply consumes)."""
    return {
        "status": plan.status,
        "method": plan.method,
        "checked": plan.checked,
        "bound": plan.bound,
        "gap": plan.gap if plan.gap is not None and math.isfinite(plan.gap) else None,
        "solve_seconds": plan.solve_seconds,
        "objective": plan.objective.model_dump(),
        "assignments": [
            {
                "request_id": a.request_id,
                "resource_ids": a.resource_ids,
                "start": clock.instant(a.start).isoformat(),
                "end": clock.instant(a.end).isoformat(),
                "needs_approval": a.needs_approval,
                "cost": a.cost,
            }
            for a in plan.assignments
        ],
        "unallocated": [
            {"request_id": u.request_id, "reasons": [r.model_dump(mode="json") for r in u.reasons]}
            for u in plan.unallocated
        ],
    }
