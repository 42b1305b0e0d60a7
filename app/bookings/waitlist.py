"""The waitlist: time that comes free is re-planned for waiting requests and booked or offered.

Freed windows and waiting requests: ``app.bookings.freed`` (recorded by a listener in
the transaction that frees the time).

Re-planning (``replan``, the worker's ``waitlist`` job every 15 s). For each window not yet
processed: the allocation snapshot of runs (``snapshot.build_instance``, the rules of
``terms``, no rule restated here) over a horizon that is the window, its requests cut to
the waiting ones that fit and have no open offer, every resource but the freed one made
unavailable, the other requests' tentative bookings pinned; ``scheduling.solve`` plans it.
Each assignment of the plan is either applied at once through the runs' apply path
(``apply.apply_plan`` on a run row that records it) for a request with ``auto_accept``
and confirmed, or offered (``WaitlistOffer``) until its deadline with a
``waitlist_offer`` notification. Requests the plan leaves out stay waiting.

Offers. Accepting applies the offer's assignment through the same apply path; its locks
(the resources by id, then the requests) and the overlap constraint make the first accept
of a slot win; a later one finds the slot taken (409 ``offer_lost``). A declined or
expired offer (expired by the same job) puts its window back to be re-planned without
that request, so the time passes to the next-best waiting request.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import scheduling
from app.allocation import apply, snapshot
from app.allocation.models import AllocationRun, RunStatus
from app.allocation.terms import Clock
from app.auth.actor import Actor
from app.auth.models import Role, User
from app.base import utcnow
from app.bookings.freed import waiting_requests
from app.bookings.models import (
    Booking,
    FreedWindow,
    OfferStatus,
    Request,
    WaitlistOffer,
)
from app.bookings.requests import get_request
from app.bookings.services import acts_for_project, confirm
from app.db import session_scope
from app.errors import Conflict, NotFound, PermissionDenied
from app.notifications import kinds
from app.notifications.outbox import emit

if TYPE_CHECKING:
    from app.jobs.tasks import Runtime

OFFER_DEADLINE = timedelta(hours=2)
"""How long an offer stays open (``COPOOL_WAITLIST_OFFER_MINUTES`` for the worker's job)."""
SLOT_MINUTES = 5
"""The re-plan's time grain: requests' durations are whole multiples of 5 minutes."""
# --- re-planning a freed window ---------------------------------------------------------


def replan(session: Session, deadline: timedelta = OFFER_DEADLINE) -> dict[str, int]:
    """Expire offers past their deadline, then re-plan every freed window still to do."""
    now = utcnow()
    expired = expire_offers(session, now)
    windows = session.scalars(
        select(FreedWindow)
        .where(FreedWindow.processed_at.is_(None))
        .order_by(FreedWindow.created_at, FreedWindow.id)
        .with_for_update(skip_locked=True)
    ).all()
    booked = offered = 0
    for window in windows:
        b, o = _replan_window(session, window, now, deadline)
        booked, offered = booked + b, offered + o
        window.processed_at = now
    session.flush()
    return {"windows": len(windows), "booked": booked, "offered": offered, "expired": expired}


def _candidates(session: Session, window: FreedWindow, start: datetime) -> list[Request]:
    """Waiting requests that fit the window, have no open offer and did not turn it down."""
    tried = set(
        session.scalars(
            select(WaitlistOffer.request_id).where(WaitlistOffer.window_id == window.id)
        )
    )
    pending = set(
        session.scalars(
            select(WaitlistOffer.request_id).where(WaitlistOffer.status == OfferStatus.OPEN.value)
        )
    )
    room = window.end - start
    return [
        q
        for q in waiting_requests(session, start, window.end)
        if q.id not in tried | pending
        and q.depends_on_id is None
        and timedelta(minutes=q.duration_minutes) <= room
    ]


def _replan_window(
    session: Session, window: FreedWindow, now: datetime, deadline: timedelta
) -> tuple[int, int]:
    """Plan the window for its waiting requests; book or offer each assignment."""
    start = max(window.start, now)
    fit = _candidates(session, window, start) if start < window.end else []
    if not fit:
        return 0, 0
    run = AllocationRun(
        created_by=fit[0].created_by,
        unit_id=fit[0].unit_id,
        horizon_start=start,
        horizon_end=window.end,
        slot_minutes=SLOT_MINUTES,
        time_limit_s=5,
        project_ids=sorted({str(q.project_id) for q in fit}),
        unit_ids=[],
        emergency=False,
    )
    instance, extras = snapshot.build_instance(session, run)
    instance = _restrict(session, instance, extras, run, window, {str(q.id) for q in fit})
    plan = scheduling.solve(instance, time_limit_s=5, num_workers=1, seed=0)
    result = snapshot.plan_to_result(Clock(start, SLOT_MINUTES), plan)
    by_id = {str(q.id): q for q in fit}
    ranked = sorted(
        result["assignments"],
        key=lambda a: (-by_id[a["request_id"]].priority, by_id[a["request_id"]].created_at),
    )
    booked = offered = 0
    for rank, a in enumerate(ranked):
        request = by_id[a["request_id"]]
        if request.auto_accept:
            who = _requester(session, request)
            booked += bool(book_assignment(session, who, request, a, window.id))
        else:
            make_offer(session, request, a, window, rank, now + deadline)
            offered += 1
    return booked, offered


def _restrict(
    session: Session,
    instance: scheduling.Instance,
    extras: dict[str, Any],
    run: AllocationRun,
    window: FreedWindow,
    keep: set[str],
) -> scheduling.Instance:
    """The snapshot cut to the waiting requests and the freed resource: other resources are
    unavailable throughout, other requests' tentative bookings pinned where they stand."""
    horizon = instance.horizon
    clock = Clock(run.horizon_start, run.slot_minutes)
    others = [uuid.UUID(b) for r, ids in extras["tentative"].items() if r not in keep for b in ids]
    pinned = list(instance.pinned)
    for b in session.scalars(select(Booking).where(Booking.id.in_(others))) if others else []:
        a, z = max(0, clock.floor(b.block_start)), min(horizon, clock.ceil(b.block_end))
        if a < z:
            pinned.append(
                scheduling.PinnedBooking(
                    id=str(b.id),
                    resource_id=str(b.resource_id),
                    start=a,
                    end=z,
                    unit=str(b.borrower_unit_id),
                    request_id=None,
                )
            )
    closed = [scheduling.TimeSpan(start=0, end=horizon)]
    resources = [
        r if r.id == str(window.resource_id) else r.model_copy(update={"unavailable": closed})
        for r in instance.resources
    ]
    return instance.model_copy(
        update={
            "requests": [q for q in instance.requests if q.id in keep],
            "published": [p for p in instance.published if p.request_id in keep],
            "pinned": pinned,
            "resources": resources,
        }
    )


def _requester(session: Session, request: Request) -> Actor:
    """The actor of the user who made the request: an auto-accepted booking is theirs."""
    user = session.get(User, request.created_by)
    assert user is not None
    return Actor(
        user_id=user.id,
        unit_id=user.unit_id,
        roles=frozenset(Role(r) for r in user.roles),
        name=user.name,
    )


def book_assignment(
    session: Session,
    actor: Actor,
    request: Request,
    assignment: dict[str, Any],
    window_id: uuid.UUID | None,
) -> list[str]:
    """Apply one assignment through the runs' apply path (a run row records it) and confirm
    its bookings, as ``actor``; the booking ids, or [] when apply refused it (time taken)."""
    now = utcnow()
    run = AllocationRun(
        created_by=request.created_by,
        unit_id=request.unit_id,
        status=RunStatus.DONE.value,
        horizon_start=datetime.fromisoformat(assignment["start"]),
        horizon_end=datetime.fromisoformat(assignment["end"]),
        slot_minutes=SLOT_MINUTES,
        project_ids=[str(request.project_id)],
        unit_ids=[],
        snapshot={"tentative": {}, "waitlist_window": str(window_id) if window_id else None},
        result={"status": "waitlist", "assignments": [assignment], "unallocated": []},
        finished_at=now,
    )
    session.add(run)
    session.flush()
    report = apply.apply_plan(session, actor, run)
    run.applied_at, run.apply_report = now, report.as_json()
    if not report.applied:
        return []
    ids: list[str] = report.applied[0]["booking_ids"]
    for booking_id in ids:
        confirm(session, actor, uuid.UUID(booking_id), "booked from the waitlist")
    return ids


def make_offer(
    session: Session,
    request: Request,
    assignment: dict[str, Any],
    window: FreedWindow,
    rank: int,
    deadline: datetime,
) -> WaitlistOffer:
    """Offer the assignment to the request until ``deadline`` and tell its requester."""
    offer = WaitlistOffer(
        request_id=request.id,
        window_id=window.id,
        resource_ids=assignment["resource_ids"],
        start=datetime.fromisoformat(assignment["start"]),
        end=datetime.fromisoformat(assignment["end"]),
        cost=int(assignment.get("cost", 0)),
        rank=rank,
        status=OfferStatus.OPEN.value,
        deadline=deadline,
        booking_ids=[],
    )
    session.add(offer)
    session.flush()
    emit(
        session,
        kinds.WAITLIST_OFFER,
        subject_type="waitlist_offer",
        subject_id=offer.id,
        unit_ids=[request.unit_id],
        user_ids=[request.created_by],
        data={
            "request_id": str(request.id),
            "request_title": request.title,
            "start": offer.start.isoformat(),
            "end": offer.end.isoformat(),
            "deadline": deadline.isoformat(),
        },
    )
    return offer


# --- answering offers -------------------------------------------------------------------


def expire_offers(session: Session, now: datetime) -> int:
    """Open offers past their deadline expire; their windows are re-planned for the next."""
    due = session.scalars(
        select(WaitlistOffer)
        .where(WaitlistOffer.status == OfferStatus.OPEN.value, WaitlistOffer.deadline <= now)
        .with_for_update(skip_locked=True)
    ).all()
    for offer in due:
        _close(session, offer, OfferStatus.EXPIRED, now)
    return len(due)


def _close(session: Session, offer: WaitlistOffer, status: OfferStatus, now: datetime) -> None:
    """End an offer without a booking: its window goes back to the waitlist job."""
    offer.status, offer.answered_at = status.value, now
    window = session.get(FreedWindow, offer.window_id) if offer.window_id else None
    if window is not None:
        window.processed_at = None
    session.flush()


def lock_offer(session: Session, offer_id: uuid.UUID) -> WaitlistOffer | None:
    """The offer, its row locked (two answers to one offer run one after the other)."""
    return session.scalar(
        select(WaitlistOffer).where(WaitlistOffer.id == offer_id).with_for_update()
    )


def accept(session: Session, actor: Actor, offer: WaitlistOffer, request: Request) -> WaitlistOffer:
    """Book the offered time (the caller locked the offer and checked the actor)."""
    now = utcnow()
    if offer.status != OfferStatus.OPEN.value:
        raise Conflict(f"the offer is {offer.status}", code="wrong_status")
    if offer.deadline <= now:
        raise Conflict("the offer's deadline has passed", code="offer_expired")
    assignment = {
        "request_id": str(request.id),
        "resource_ids": offer.resource_ids,
        "start": offer.start.isoformat(),
        "end": offer.end.isoformat(),
        "cost": offer.cost,
        "needs_approval": False,
    }
    ids = book_assignment(session, actor, request, assignment, offer.window_id)
    if not ids:
        raise Conflict("the offered time was taken meanwhile", code="offer_lost")
    offer.status, offer.answered_at, offer.booking_ids = OfferStatus.ACCEPTED.value, now, ids
    session.flush()
    return offer


def decline(session: Session, offer: WaitlistOffer) -> WaitlistOffer:
    """Turn the offer down: the time passes to the next-best waiting request."""
    if offer.status != OfferStatus.OPEN.value:
        raise Conflict(f"the offer is {offer.status}", code="wrong_status")
    _close(session, offer, OfferStatus.DECLINED, utcnow())
    return offer


def run_job(rt: Runtime) -> dict[str, Any]:
    """The worker's periodic body: ``replan`` in a session of its own."""
    with session_scope(rt.factory) as session:
        return replan(session, timedelta(minutes=rt.settings.waitlist_offer_minutes))


def _offer_for(
    session: Session, actor: Actor, offer_id: uuid.UUID
) -> tuple[WaitlistOffer, Request]:
    """The offer (row locked) and its request, if the actor acts for the request's unit."""
    offer = lock_offer(session, offer_id)
    if offer is None:
        raise NotFound("no such offer")
    request = get_request(session, actor, offer.request_id)  # 404 when not visible
    if not acts_for_project(session, actor, request.unit_id, request.project_id):
        raise PermissionDenied("answering an offer needs a borrower-side role of its project")
    return offer, request


def accept_offer(session: Session, actor: Actor, offer_id: uuid.UUID) -> WaitlistOffer:
    """Accept an offer: its time is booked for the request, or 409 if it was taken."""
    offer, request = _offer_for(session, actor, offer_id)
    return accept(session, actor, offer, request)


def decline_offer(session: Session, actor: Actor, offer_id: uuid.UUID) -> WaitlistOffer:
    """Decline an offer: the time passes to the next-best waiting request."""
    offer, _ = _offer_for(session, actor, offer_id)
    return decline(session, offer)


def offers_of(session: Session, actor: Actor, request_id: uuid.UUID) -> list[WaitlistOffer]:
    """A request's offers, newest first (the request must be visible to the actor)."""
    request = get_request(session, actor, request_id)
    return list(
        session.scalars(
            select(WaitlistOffer)
            .where(WaitlistOffer.request_id == request.id)
            .order_by(WaitlistOffer.created_at.desc(), WaitlistOffer.id)
        )
    )
