"""Moving and editing a booking in place: new times, another resource, a new title.

A move is checked exactly as a new booking is (``rules.agreement_for``, ``rules.check_slot``
and ``rules.check_caps``, with the booking itself left out of the overlap and the caps), in
one transaction with the ledger: a confirmed loan's hold is released and placed again at
the new slot's price. The booking keeps its id (and so its feed UID); its ``sequence``
rises by one on every change, and the audit log records it before and after
(``booking.move`` when the slot or resource changes, ``booking.edit`` for the title only).

Fees. A move of a confirmed loan is free while the booking's start is at least
``FREE_CHANGE_NOTICE`` (24 h) away when the move is made; a later move pays the
agreement's ``cancellation_fee``, as a cancellation would (agreements carry no window of
their own). Title edits never cost anything.

Approval. When the loan runs under an agreement that requires approval and the slot or
resource changes, the booking goes back to ``pending_approval`` *with the new slot*; the
old slot is free at once and the hold is released (the approval places a new one). A
tentative booking stays tentative.

Pairs. A device and its operator move together, over the same times, each checked by
the rules and re-priced; neither changes resource (``paired_booking``).

Not moved here (409, the problem's ``code`` says why): bookings that have started or are
over (``wrong_status``, ``started``), and a request's booking that does not serve the
request alone (its operator pair aside), whose request follows or is followed by another,
or that would change resource
(``request_booking``: re-plan the request); a request's booking moves only inside the
request's window (400 naming ``start``).

Locks: the resources (old, new and the pair's, by id), then the booking with what its change touches
(``services.lock_booking``), then the status is read again — the order every booking
change takes, so two moves of one booking run one after the other and the second sees
the first's result. A caller who sends ``If-Match`` with the ``ETag`` it read (GET or a
previous PATCH) gets 412 ``version_changed`` instead when the booking changed meanwhile.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.agreements.models import SharingAgreement
from app.audit.services import record, snapshot
from app.auth.actor import Actor
from app.base import utcnow
from app.bookings import backfill, rules, services
from app.bookings.models import Booking, BookingStatus, Request
from app.bookings.schemas import BookingPatch
from app.catalog.models import Resource
from app.errors import Conflict, InvalidInput, PermissionDenied, PreconditionFailed
from app.funds import hooks
from app.notifications import events as notify
from app.projects.models import Project

FREE_CHANGE_NOTICE = timedelta(hours=24)
"""A move made at least this long before the booking starts costs nothing."""

MOVABLE = (BookingStatus.TENTATIVE, BookingStatus.PENDING_APPROVAL, BookingStatus.CONFIRMED)


def etag_of(booking: Booking) -> str:
    """The booking's version as a strong ETag: id and ``sequence`` (which every change of
    time, resource, title or status raises)."""
    return f'"{booking.id}.{booking.sequence}"'


def _check_version(booking: Booking, if_match: str | None) -> None:
    """412 when ``If-Match`` is given and names none of the booking's current version."""
    if if_match is None:
        return
    wanted = {tag.strip() for tag in if_match.split(",")}
    if "*" not in wanted and etag_of(booking) not in wanted:
        raise PreconditionFailed(
            f"If-Match: the booking changed since it was read; it is now {etag_of(booking)}",
            field="If-Match",
            code="version_changed",
            etag=etag_of(booking),
        )


def change_booking(
    session: Session,
    actor: Actor,
    booking_id: uuid.UUID,
    data: BookingPatch,
    if_match: str | None = None,
) -> Booking:
    """Move a booking to new times or another resource, or rename it (borrower side);
    with ``if_match``, only if it is still the version the caller read."""
    booking = services.get_booking(session, actor, booking_id)
    if not services.acts_for_project(session, actor, booking.borrower_unit_id, booking.project_id):
        raise PermissionDenied("changing a booking needs a borrower-side role of its project")
    target_id = data.resource_id or booking.resource_id
    partner = _partner(session, booking)
    also = [partner.resource_id] if partner is not None else []
    resource = _lock_resources(session, actor, [booking.resource_id, *also], target_id)
    services.lock_booking(session, booking)  # the partner too, re-read
    _check_version(booking, if_match)
    if booking.status not in {s.value for s in MOVABLE}:
        raise Conflict(
            f"the booking is {booking.status}; only tentative, pending_approval or confirmed "
            "bookings change",
            code="wrong_status",
        )
    start, end = _new_times(booking, data)
    if (start, end, resource.id) == (booking.start, booking.end, booking.resource_id):
        return _rename(session, actor, booking, data)
    if resource.id != booking.resource_id and (booking.request_id or partner):
        raise Conflict(
            "a request's booking, or a device and its operator, keep their resources: "
            "re-plan the request, or cancel and book again",
            code="request_booking" if booking.request_id else "paired_booking",
        )
    _check_movable(session, booking, start, end, partner)
    moving = [(booking, resource, data)]
    if partner is not None:  # a device and its operator move together, over the same times
        partner_resource = session.get(Resource, partner.resource_id)
        assert partner_resource is not None
        moving.append((partner, partner_resource, data.model_copy(update={"title": None})))
    checked = [
        (b, r, d, _check_new_slot(session, actor, b, r, start, end)) for b, r, d in moving
    ]
    for b, r, d, agreement in checked:
        _move(session, actor, b, r, agreement, (start, end), d)
    return booking


def _partner(session: Session, booking: Booking) -> Booking | None:
    """The other live booking of a device-and-operator pair (None when unpaired)."""
    paired = Booking.operator_for_id == booking.id
    if booking.operator_for_id is not None:
        paired = Booking.id == booking.operator_for_id
    return session.scalar(
        select(Booking).where(paired, Booking.status.in_([s.value for s in MOVABLE])).limit(1)
    )


def _lock_resources(
    session: Session, actor: Actor, current: list[uuid.UUID], target: uuid.UUID
) -> Resource:
    """Lock the bookings' resources and the target (by id); return the target."""
    locked: dict[uuid.UUID, Resource] = {}
    for rid in sorted({*current, target}):
        if rid == target and target not in current:
            locked[rid] = services.visible_resource(session, actor, rid)  # 404 if hidden
        else:
            locked[rid] = rules.lock_resource(session, rid)
    return locked[target]


def _new_times(booking: Booking, data: BookingPatch) -> tuple[datetime, datetime]:
    """``start`` alone shifts the booking (its length kept); ``end`` alone moves its end."""
    start = data.start or booking.start
    if data.end is not None:
        end = data.end
    elif data.start is not None:
        end = data.start + (booking.end - booking.start)
    else:
        end = booking.end
    if end <= start:
        raise InvalidInput("end: must be after start", field="end")
    return start, end


def _check_movable(
    session: Session, booking: Booking, start: datetime, end: datetime, partner: Booking | None
) -> None:
    """Refuse what a move cannot carry: started bookings, and request bookings that do not
    serve their request alone (with their operator pair). An occurrence of a series moves
    alone (the feed shows it as the series' RECURRENCE-ID override)."""
    if booking.start <= utcnow():
        raise Conflict("the booking has started; it can no longer move", code="started")
    if booking.request_id is not None:
        together = [booking.id] + ([partner.id] if partner is not None else [])
        _check_request_move(session, booking, together, start, end)


def _check_request_move(
    session: Session, booking: Booking, together: list[uuid.UUID], start: datetime, end: datetime
) -> None:
    """A request's booking moves only when it serves the request alone, follows no request
    and is followed by none, keeps its resource, and stays inside the request's window."""
    request = session.get(Request, booking.request_id)  # locked with the booking
    assert request is not None
    others = select(Booking.id).where(
        Booking.request_id == request.id,
        Booking.id.not_in(together),
        Booking.status.in_([s.value for s in MOVABLE]),
    )
    followers = select(Request.id).where(Request.depends_on_id == request.id)
    if (
        session.scalar(others.limit(1)) is not None
        or request.depends_on_id is not None
        or session.scalar(followers.limit(1)) is not None
    ):
        raise Conflict(
            "the booking serves a request with other bookings or dependencies, which are "
            "served together: re-plan the request instead",
            code="request_booking",
        )
    if start < request.window_start or end > request.window_end:
        raise InvalidInput(
            f"start: the request's window is {request.window_start.isoformat()} to "
            f"{request.window_end.isoformat()}",
            field="start",
        )


def _check_new_slot(
    session: Session,
    actor: Actor,
    booking: Booking,
    resource: Resource,
    start: datetime,
    end: datetime,
) -> SharingAgreement | None:
    """Every rule of a new booking over the new slot, the booking itself left out."""
    backfill.admit(
        session, actor, resource_id=resource.id, end=end, backfill=False, field="end", detail={}
    )
    if start <= utcnow():
        raise InvalidInput("start: a booking cannot move into the past", field="start")
    project = session.get(Project, booking.project_id)
    assert project is not None
    if project.closed_at is not None:
        raise Conflict("project_id: the project is closed", field="project_id")
    services.check_project_period(project, start, end)
    if resource.retired_at is not None:
        raise Conflict(f"{resource.name} is retired", field="resource_id", code="retired")
    if resource.id != booking.resource_id:
        services.operator_for(
            session, actor, resource, None, booking.borrower_unit_id, start.date()
        )
    agreement = rules.agreement_for(session, resource, booking.borrower_unit_id, start.date())
    before, after = rules.buffers(session, resource)
    block = (start - before, end + after)
    exclude = [booking.id]
    rules.check_slot(
        session, resource, start, end, block, exclude=exclude, borrower=booking.borrower_unit_id
    )
    rules.check_caps(session, resource, agreement, start, end, exclude=exclude)
    return agreement


def move_fee(session: Session, booking: Booking, now: datetime) -> int:
    """What moving ``booking`` at ``now`` costs: nothing inside the free window, else the
    agreement's cancellation fee (only confirmed loans hold money to pay it from)."""
    if booking.status != BookingStatus.CONFIRMED.value:
        return 0
    if booking.start - now >= FREE_CHANGE_NOTICE:
        return 0
    return hooks.cancellation_fee(session, booking)


def _move(
    session: Session,
    actor: Actor,
    booking: Booking,
    resource: Resource,
    agreement: SharingAgreement | None,
    slot: tuple[datetime, datetime],
    data: BookingPatch,
) -> Booking:
    """Release the old hold (or charge the fee from it), move, and hold the new price."""
    before = snapshot(booking)
    was_confirmed = booking.status == BookingStatus.CONFIRMED.value
    fee = move_fee(session, booking, utcnow())
    booking.status_reason = f"moved: {data.reason}" if data.reason else "moved"
    if was_confirmed and fee > 0:
        hooks.charge_move_fee(session, actor, booking, fee)
    elif was_confirmed:
        hooks.release_for(session, actor, booking)
    needs_approval = agreement is not None and agreement.requires_approval
    if needs_approval and booking.status != BookingStatus.TENTATIVE.value:
        booking.status = BookingStatus.PENDING_APPROVAL.value
    before_buf, after_buf = rules.buffers(session, resource)
    booking.start, booking.end = slot
    booking.block_start, booking.block_end = slot[0] - before_buf, slot[1] + after_buf
    booking.resource_id = resource.id
    booking.lender_unit_id = resource.unit_id
    booking.agreement_id = agreement.id if agreement else None
    booking.title = data.title or booking.title
    booking.sequence += 1
    services.insert_checked(session, resource, booking)  # flush; 23P01 becomes a 409
    if booking.status == BookingStatus.CONFIRMED.value:
        hooks.hold_for(session, actor, booking, resource=resource, agreement=agreement)
    if booking.request_id is not None and booking.status != before["status"]:
        services.sync_request(session, actor, booking.request_id, booking.status_reason)
    record(
        session,
        actor,
        "booking.move",
        booking,
        unit_id=booking.lender_unit_id,
        before=before,
        after=snapshot(booking, fee=fee),
        reason=data.reason,
    )
    notify.status_changed(session, actor, booking, "booking.move", data.reason)
    return booking


def _rename(session: Session, actor: Actor, booking: Booking, data: BookingPatch) -> Booking:
    """A change of title only (nothing else was asked to change): no rule, no money."""
    if data.title is None or data.title == booking.title:
        raise InvalidInput(
            "give at least one of start, end, resource_id, title that differs from the booking",
            field="start",
        )
    before = snapshot(booking)
    booking.title = data.title
    booking.sequence += 1
    session.flush()
    record(
        session,
        actor,
        "booking.edit",
        booking,
        unit_id=booking.lender_unit_id,
        before=before,
        after=snapshot(booking),
        reason=data.reason,
    )
    return booking
