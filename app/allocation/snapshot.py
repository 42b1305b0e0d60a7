"""From the database to the optimizer's `Instance`, and from its `Plan` back to UTC terms.

Time: integer slots of ``slot_minutes`` from the horizon start. Unavailability is rounded
outward to whole slots (a resource is never offered a slot it cannot fully serve);
windows inward. Every term comes from the booking engine's own rules (``terms``):

- resources: every active expert and device (eligibility by agreement is the instance's
  ``agreements``); off-hours, leave, maintenance and imported busy time become
  ``unavailable``; a device type's set-up and tear-down become ``setup``/``teardown``;
  the expert's lending cap and each agreement's hours cap become one capacity window per
  calendar month (the expert's zone, resp. UTC), net of the bookings that stay;
- requests: open requests in scope whose window meets the horizon, plus requests already
  allocated by an earlier plan (their tentative bookings are the *published* plan, which
  the optimizer moves as little as it can); each carries the ledger's price of every
  resource that may serve it, and an operator requirement per device that needs one;
- pinned: every other live booking (pending, confirmed, completed) over its block
  (buffers included); in an *emergency* run, which plans only emergency requests, the
  bookings not made for an emergency request are *displaceable*: the optimizer takes their
  place only when nothing free fits, and ``apply`` reopens each displaced request;
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
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

import scheduling
from app.allocation import terms
from app.allocation.models import AllocationRun
from app.allocation.terms import Clock
from app.bookings.availability import Interval, merge, subtract, working_intervals
from app.bookings.models import (
    LIVE_STATUSES,
    Booking,
    BookingStatus,
    Request,
    RequestStatus,
)
from app.bookings.rules import unavailable_periods
from app.catalog.models import Resource, ResourceKind
from ledger import available_funds_many

RECIPROCITY_LOOKBACK = timedelta(days=90)
RECIPROCITY_CAP = 10


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


@dataclass
class Frame:
    """One run's time frame: the clock, the horizon in slots and its UTC ends."""

    clock: Clock
    horizon: int
    start: datetime
    end: datetime


def _frame(run: AllocationRun) -> Frame:
    clock = Clock(run.horizon_start, run.slot_minutes)
    horizon = clock.floor(run.horizon_end)
    return Frame(clock, horizon, run.horizon_start, clock.instant(horizon))


def _scope(session: Session, run: AllocationRun, frame: Frame) -> list[Request]:
    query = (
        select(Request)
        .options(selectinload(Request.requirements))
        .where(
            Request.status.in_([RequestStatus.OPEN.value, RequestStatus.ALLOCATED.value]),
            Request.window_end > frame.start,
            Request.window_start < frame.end,
        )
    )
    if run.project_ids:
        query = query.where(Request.project_id.in_([uuid.UUID(p) for p in run.project_ids]))
    if run.unit_ids:
        query = query.where(Request.unit_id.in_([uuid.UUID(u) for u in run.unit_ids]))
    if run.emergency:
        query = query.where(Request.emergency.is_(True))
    return list(session.scalars(query.order_by(Request.created_at, Request.id)))


def _buffers(resource: Resource, clock: Clock) -> tuple[int, int]:
    """A device type's set-up and tear-down, in whole slots (rounded up)."""
    kind = resource.device_type
    if resource.kind != ResourceKind.DEVICE.value or kind is None:
        return 0, 0
    return math.ceil(kind.setup_minutes / clock.minutes), math.ceil(
        kind.teardown_minutes / clock.minutes
    )


@dataclass
class Calendars:
    """Live bookings sorted into what the run may move, must keep, or may displace."""

    pinned: list[scheduling.PinnedBooking]
    edges: dict[uuid.UUID, list[scheduling.TimeSpan]]
    """Per resource: core spans a booking just outside the horizon rules out (its buffers)."""
    published: dict[uuid.UUID, list[Booking]]
    """Per in-scope request: its tentative bookings (the previous plan)."""


def _calendars(
    session: Session,
    run: AllocationRun,
    frame: Frame,
    buffers: dict[uuid.UUID, tuple[int, int]],
    in_scope: set[uuid.UUID],
) -> Calendars:
    clock, horizon = frame.clock, frame.horizon
    margin = max([max(b) for b in buffers.values()] + [0]) * clock.slot
    live = list(
        session.scalars(
            select(Booking).where(
                Booking.status.in_(LIVE_STATUSES),
                Booking.block_end > frame.start - margin,
                Booking.block_start < frame.end + margin,
            )
        )
    )
    displaceable = _displaceable(session, live) if run.emergency else set()
    out = Calendars([], defaultdict(list), defaultdict(list))
    for b in live:
        if b.status == BookingStatus.TENTATIVE.value and b.request_id in in_scope:
            out.published[b.request_id].append(b)
            continue
        if b.resource_id not in buffers:
            continue  # a retired resource is not offered: its bookings constrain nothing
        setup, teardown = buffers[b.resource_id]
        a, z = clock.floor(b.block_start), min(horizon, clock.ceil(b.block_end))
        if b.block_end <= frame.start:
            # Ends before the horizon: a core closer than the set-up would clash with it.
            edge = scheduling.TimeSpan(start=0, end=min(horizon, clock.ceil(b.block_end) + setup))
        elif b.block_start >= frame.end:
            edge = scheduling.TimeSpan(start=max(0, clock.floor(b.block_start) - teardown), end=horizon)
        else:
            out.pinned.append(
                scheduling.PinnedBooking(
                    id=str(b.id),
                    resource_id=str(b.resource_id),
                    start=a,
                    end=z,
                    unit=str(b.borrower_unit_id),
                    request_id=str(b.request_id) if b.request_id else None,
                    displaceable=b.id in displaceable,
                )
            )
            continue
        if edge.start < edge.end:
            out.edges[b.resource_id].append(edge)
    return out


def _resources(
    session: Session,
    frame: Frame,
    resources: list[Resource],
    calendars: Calendars,
    borrowers: set[uuid.UUID],
    agreements: dict[terms.Pair, Any],
) -> list[scheduling.Resource]:
    clock, horizon = frame.clock, frame.horizon
    off = unavailable_periods(session, [r.id for r in resources], frame.start, frame.end)
    replanned = [b.id for bs in calendars.published.values() for b in bs]
    out = []
    for r in resources:
        work = working_intervals(r.working_hours, r.time_zone, frame.start, frame.end)
        closed = subtract([(frame.start, frame.end)], work)
        setup, teardown = _buffers(r, clock)
        spans = _spans(clock, [*closed, *off.get(r.id, [])], horizon)
        out.append(
            scheduling.Resource(
                id=str(r.id),
                kind="expert" if r.kind == ResourceKind.EXPERT.value else "device",
                home_unit=str(r.unit_id),
                skills={str(s.skill_id): s.level for s in r.skills},
                device_type=str(r.device_type_id) if r.device_type_id else None,
                unavailable=[*spans, *calendars.edges.get(r.id, [])],
                setup=setup,
                teardown=teardown,
                caps=terms.cap_windows(
                    session, r, borrowers - {r.unit_id}, agreements, clock, horizon, replanned
                ),
                cost_rate=r.hourly_rate * clock.minutes // 60,
            )
        )
    return out


def _request(
    q: Request,
    arrival: int,
    frame: Frame,
    resources: list[Resource],
    agreements: dict[terms.Pair, Any],
    index: terms.ResourceIndex,
) -> scheduling.Request:
    clock, horizon = frame.clock, frame.horizon
    w_start = clock.ceil(max(q.window_start, frame.start))
    w_end = clock.floor(min(q.window_end, frame.end))
    requirements, _ = terms.requirements_of(q, resources, index)
    window = (clock.instant(min(w_start, horizon)), clock.instant(max(min(w_end, horizon), 0)))
    days = terms.start_days(window, q.duration_minutes)
    return scheduling.Request(
        id=str(q.id),
        project=str(q.project_id),
        unit=str(q.unit_id),
        requirements=requirements,
        duration=max(1, math.ceil(q.duration_minutes / clock.minutes)),
        window_start=min(w_start, horizon),
        window_end=max(min(w_end, horizon), 0),
        priority=q.priority,
        emergency=q.emergency,
        after=[str(q.depends_on_id)] if q.depends_on_id else [],
        arrival=arrival,
        costs=terms.costs_of(q, resources, requirements, agreements, days, index),
    )


def _published(clock: Clock, published: dict[uuid.UUID, list[Booking]]) -> list[scheduling.Assignment]:
    out = []
    for request_id, bookings in published.items():
        out.append(
            scheduling.Assignment(
                request_id=str(request_id),
                resource_ids=sorted(str(b.resource_id) for b in bookings),
                start=clock.floor(min(b.start for b in bookings)),
                end=clock.ceil(max(b.end for b in bookings)),
            )
        )
    return out


def build_instance(
    session: Session, run: AllocationRun
) -> tuple[scheduling.Instance, dict[str, Any]]:
    """The run's instance, and what is needed to map the plan back (``snapshot`` extras)."""
    frame = _frame(run)
    resources = terms.load_resources(session)
    requests = _scope(session, run, frame)
    in_scope = {r.id for r in requests}
    buffers = {r.id: _buffers(r, frame.clock) for r in resources}
    calendars = _calendars(session, run, frame, buffers, in_scope)
    loans = terms.loans(session, frame.start.date())
    borrowers = {q.unit_id for q in requests}

    # A dependency outside the scope counts only through its pinned bookings.
    known = in_scope | {uuid.UUID(p.request_id) for p in calendars.pinned if p.request_id}
    unmet = [str(q.id) for q in requests if q.depends_on_id and q.depends_on_id not in known]
    index = terms.ResourceIndex(resources)
    instance_requests = [
        _request(q, arrival, frame, resources, loans.by_pair, index)
        for arrival, q in enumerate(requests)
        if str(q.id) not in unmet
    ]
    projects = list({r.project_id for r in requests})
    funds = available_funds_many(session, projects) if projects else {}
    instance = scheduling.Instance(
        horizon=max(frame.horizon, 1),
        slot_minutes=run.slot_minutes,
        resources=_resources(session, frame, resources, calendars, borrowers, loans.by_pair),
        requests=instance_requests,
        pinned=calendars.pinned,
        published=_published(frame.clock, calendars.published),
        budgets={str(p): money.amount for p, money in funds.items()},
        reciprocity=_reciprocity(session, frame.start - RECIPROCITY_LOOKBACK),
        agreements=loans.agreements,
        name=f"run {run.id}",
    )
    extras = {
        "tentative": {str(k): [str(b.id) for b in v] for k, v in calendars.published.items()},
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


def plan_to_result(clock: Clock, plan: scheduling.Plan) -> dict[str, Any]:
    """The plan as JSON with UTC instants (what the API shows and apply consumes)."""
    return {
        "status": plan.status,
        "method": plan.method,
        "checked": plan.checked,
        "bound": plan.bound,
        "gap": plan.gap if plan.gap is not None and math.isfinite(plan.gap) else None,
        "solve_seconds": plan.solve_seconds,
        "stages": plan.stages,
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
        "displaced": plan.displaced,
        "unallocated": [
            {"request_id": u.request_id, "reasons": [r.model_dump(mode="json") for r in u.reasons]}
            for u in plan.unallocated
        ],
    }
