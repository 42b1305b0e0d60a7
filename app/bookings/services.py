"""Booking a named resource, and every later step of a booking's life.

Who may do what:
- book, cancel (borrower side), check in, complete: a user of the borrowing unit with the
  role requester, project_lead or unit_manager who takes part in the project;
- approve, decline, cancel (lender side), release a no-show: the lending unit's
  resource_manager or unit_manager;
- admins may do all of it; auditors only read.
Every state change is written to the audit log with its reason.

A request is served whole or not at all, and its followers follow it:
- a lender-side cancel of a booking that serves a request reopens the request
  (``resource_unavailable``): the lender withdrew the resource, so every other booking of
  the request is released too and the request waits, open, for a new allocation;
- a borrower-side cancel changes only that booking; when it was the request's last live
  booking, the request is cancelled;
- a declined booking declines its request and cancels the request's other bookings;
- when a request is cancelled, declined or reopened, every request that depends on it
  (``depends_on_id``) and holds live bookings is reopened (``dependency_cancelled``), and
  so on down the chain.

A device whose ``operator_skill_id`` is set is booked only together with an operator: an
expert holding that skill (any level), booked over the same times in the same transaction
under every rule of a booking; the operator's booking points at the device's through
``operator_for_id``. The pair lives and dies together: when either leaves the live states
(cancelled, declined, released), the other is cancelled (without a fee). Confirming and
approving are not paired: each booking follows its own agreement, so the device may be
confirmed while its operator's loan waits for approval.

Concurrency. Every state change locks what it changes and reads the status again under
the lock before it decides (``lock_booking``, ``lock_request``): two people acting on one
booking at once are served one after the other, and the second sees the first's result.
A repeated or overtaken transition (a second cancel, an approval after a cancel, a
check-in after a release) answers 409 ``wrong_status`` naming the status it found; it
never succeeds twice, so a change is audited and posted to the ledger exactly once.
Locks are always taken in one order so that two changes cannot deadlock: the resource
(approval re-checks the slot), then the request, then the bookings by id — a booking's
operator pair and, for a request's booking, every booking of the request. On PostgreSQL
these are ``SELECT … FOR UPDATE`` row locks; SQLite ignores ``FOR UPDATE`` but serialises
whole transactions (``app.db``), so there the re-read under the transaction is what counts.
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, Select, bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from app.agreements.models import SharingAgreement
from app.audit.services import record, snapshot
from app.auth import policy
from app.auth.actor import Actor
from app.auth.models import Role
from app.base import utcnow
from app.bookings import rules
from app.bookings.models import (
    LIVE_STATUSES,
    Booking,
    BookingStatus,
    ReopenCode,
    Request,
    RequestStatus,
)
from app.bookings.schemas import BookingCreate, BookingFilter
from app.catalog.models import DeviceType, ExpertSkill, Resource, ResourceKind, Skill
from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unprocessable
from app.funds import hooks
from app.notifications import events as notify
from app.pagination import matches
from app.projects.models import Project, ProjectMember
from app.projects.services import get_project

BORROWER_ROLES = (Role.REQUESTER, Role.PROJECT_LEAD, Role.UNIT_MANAGER)
LENDER_ROLES = (Role.RESOURCE_MANAGER, Role.UNIT_MANAGER)
CANCELLABLE = (BookingStatus.TENTATIVE, BookingStatus.PENDING_APPROVAL, BookingStatus.CONFIRMED)


# --- who books for which project --------------------------------------------------------


def borrowing_unit(session: Session, actor: Actor, project: Project) -> uuid.UUID:
    """The unit a booking for ``project`` is made for, after checking the actor may book.

    The actor's unit must take part in the project, and the actor must be a project member
    (or their unit's manager); admins book for the lead unit when theirs takes no part.
    """
    if not actor.has(*BORROWER_ROLES):
        raise PermissionDenied("booking needs the role requester, project_lead or unit_manager")
    if project.closed_at is not None:
        raise Conflict("project_id: the project is closed", field="project_id")
    units = {s.unit_id for s in project.shares}
    if actor.unit_id in units:
        member = any(m.user_id == actor.user_id for m in project.members)
        if member or actor.manages_unit(actor.unit_id, Role.UNIT_MANAGER):
            return actor.unit_id
        raise PermissionDenied("only members of the project (or their unit manager) book for it")
    if actor.is_admin:
        return project.lead_unit_id
    raise NotFound("no such project")


def check_project_period(project: Project, start: datetime, end: datetime) -> None:
    """A booking lies inside the project's period (dates read in UTC)."""
    if start.date() < project.start_date or end.date() > project.end_date + timedelta(days=1):
        raise InvalidInput(
            f"start: the project runs {project.start_date} to {project.end_date}", field="start"
        )


# --- making bookings --------------------------------------------------------------------


def place_booking(
    session: Session,
    actor: Actor,
    *,
    resource: Resource,
    project: Project,
    borrower_unit_id: uuid.UUID,
    start: datetime,
    end: datetime,
    title: str,
    status: BookingStatus | None = None,
    request_id: uuid.UUID | None = None,
    requirement_id: uuid.UUID | None = None,
    series_id: uuid.UUID | None = None,
    audit: bool = True,
    operator_for_id: uuid.UUID | None = None,
) -> Booking:
    """Check every rule for one resource and insert the booking (the resource is locked).

    ``status`` None means: confirmed for the unit's own resources and agreements without
    approval, pending_approval otherwise. ``operator_for_id``: this is an operator's
    booking of that device booking (the caller pairs them; see ``book``).
    """
    if resource.retired_at is not None:
        raise Conflict(f"{resource.name} is retired", field="resource_id", code="retired")
    agreement = rules.agreement_for(session, resource, borrower_unit_id, start.date())
    before, after = rules.buffers(session, resource)
    block = (start - before, end + after)
    rules.check_loan(session, resource, agreement, start, end, block, borrower_unit_id)
    if status is None:
        needs_approval = agreement is not None and agreement.requires_approval
        status = BookingStatus.PENDING_APPROVAL if needs_approval else BookingStatus.CONFIRMED
    booking = Booking(
        resource_id=resource.id,
        project_id=project.id,
        request_id=request_id,
        requirement_id=requirement_id,
        series_id=series_id,
        agreement_id=agreement.id if agreement else None,
        borrower_unit_id=borrower_unit_id,
        lender_unit_id=resource.unit_id,
        created_by=actor.user_id,
        title=title,
        start=start,
        end=end,
        block_start=block[0],
        block_end=block[1],
        status=status.value,
        sequence=0,
        operator_for_id=operator_for_id,
    )
    insert_checked(session, resource, booking)
    if status == BookingStatus.CONFIRMED:
        hooks.hold_for(session, actor, booking, resource=resource, agreement=agreement)
    if audit:
        record(
            session,
            actor,
            "booking.create",
            booking,
            unit_id=booking.lender_unit_id,
            after=snapshot(booking),
        )
    notify.booking_created(session, actor, booking)
    return booking


def insert_checked(session: Session, resource: Resource, booking: Booking) -> None:
    """Insert the booking; an exclusion violation (PostgreSQL 23P01) becomes a 409 overlap.

    No savepoint: the resource's row lock (``rules.lock_resource``) orders every path that
    books the resource, so the constraint only fires on a write that skipped the lock. The
    transaction is then spoilt and rolls back with the 409 (it cannot name the clash).
    SQLite has no such constraint; its writes are serialised (``app.db``).
    """
    session.add(booking)
    try:
        session.flush()
    except IntegrityError as exc:
        if getattr(exc.orig, "sqlstate", None) != "23P01":
            raise
        raise Conflict(
            f"{resource.name} is already booked then",
            field="start",
            code="overlap",
            resource_id=str(resource.id),
        ) from None


def visible_resource(session: Session, actor: Actor, resource_id: uuid.UUID) -> Resource:
    """Lock and return a resource the actor may see (404 otherwise), in one statement."""
    if actor.sees_everything:
        query = select(Resource).where(Resource.id == resource_id).with_for_update(of=Resource)
        resource = session.scalar(query)
    else:
        resource = session.scalar(
            _visible_resource_query(utcnow().date()),
            {"resource_id": resource_id, "unit_id": actor.unit_id},
        )
    if resource is None:
        raise NotFound("no such resource")
    return resource


@functools.lru_cache(maxsize=4)
def _visible_resource_query(today: date) -> Select[Resource]:
    # Built once a day with bound parameters: composing the agreements' visibility rule
    # anew for every booking cost more CPU than running the statement.
    from app.agreements.services import shown_to_unit

    unit = cast(uuid.UUID, bindparam("unit_id", type_=Resource.unit_id.type))
    return (
        select(Resource)
        .where(
            Resource.id == bindparam("resource_id"),
            or_(Resource.unit_id == unit, shown_to_unit(unit, today)),
        )
        .with_for_update(of=Resource)
    )


def holds_skill(session: Session, expert: Resource, skill_id: uuid.UUID) -> bool:
    """Whether ``expert`` holds ``skill_id`` at any level."""
    return (
        session.scalar(
            select(ExpertSkill.id).where(
                ExpertSkill.resource_id == expert.id, ExpertSkill.skill_id == skill_id
            )
        )
        is not None
    )


def operator_for(
    session: Session,
    actor: Actor,
    device: Resource,
    operator_id: uuid.UUID | None,
    borrower_unit_id: uuid.UUID,
    day: date,
) -> Resource | None:
    """The locked expert who operates ``device`` (None when the device needs no operator).

    422 naming ``operator_id`` when one is needed and missing (``operator_required``), or
    is not an expert the borrower may book who holds the device's operator skill.
    """
    if device.operator_skill_id is None:
        if operator_id is not None:
            raise Unprocessable(
                f"operator_id: {device.name} needs no operator; book the expert on their own",
                field="operator_id",
                code="operator_not_needed",
            )
        return None
    skill = session.get(Skill, device.operator_skill_id)
    skill_name = skill.name if skill else str(device.operator_skill_id)
    if operator_id is None:
        raise Unprocessable(
            f"operator_id: {device.name} is booked only with an operator holding {skill_name}",
            field="operator_id",
            code="operator_required",
        )
    unfit = Unprocessable(
        f"operator_id: not an expert your unit may book who holds {skill_name}",
        field="operator_id",
        code="operator_unqualified",
    )
    try:
        operator = visible_resource(session, actor, operator_id)
        rules.agreement_for(session, operator, borrower_unit_id, day)
    except NotFound:
        raise unfit from None
    if operator.kind != ResourceKind.EXPERT.value or not holds_skill(
        session, operator, device.operator_skill_id
    ):
        raise unfit
    return operator


def book(session: Session, actor: Actor, data: BookingCreate) -> Booking:
    """Book a named resource for a project over ``[start, end)`` (and its operator, if it
    needs one: both in this transaction, or neither)."""
    project = get_project(session, actor, data.project_id)
    borrower = borrowing_unit(session, actor, project)
    check_project_period(project, data.start, data.end)
    resource = visible_resource(session, actor, data.resource_id)
    operator = operator_for(session, actor, resource, data.operator_id, borrower, data.start.date())
    booking = place_booking(
        session,
        actor,
        resource=resource,
        project=project,
        borrower_unit_id=borrower,
        start=data.start,
        end=data.end,
        title=data.title,
    )
    if operator is not None:
        place_booking(
            session,
            actor,
            resource=operator,
            project=project,
            borrower_unit_id=borrower,
            start=data.start,
            end=data.end,
            title=f"{data.title} (operating {resource.name})",
            operator_for_id=booking.id,
        )
    return booking


# --- reading ------------------------------------------------------------------------------


def _visible(actor: Actor) -> ColumnElement[bool]:
    return policy.booking_visible(actor)  # borrower, lender, co-funders (app.auth.policy)


def get_booking(session: Session, actor: Actor, booking_id: uuid.UUID) -> Booking:
    """A booking of the actor's unit, as borrower or lender (any, for admins and auditors)."""
    booking = session.scalar(select(Booking).where(Booking.id == booking_id, _visible(actor)))
    if booking is None:
        raise NotFound("no such booking")
    return booking


def list_bookings(
    session: Session, actor: Actor, filters: BookingFilter, *, limit: int, offset: int
) -> tuple[list[Booking], int]:
    """Bookings the actor's unit borrows or lends, filtered, by start."""
    query = select(Booking).where(_visible(actor), matches(filters.q, Booking.title))
    for column, value in (
        (Booking.resource_id, filters.resource_id),
        (Booking.project_id, filters.project_id),
        (Booking.request_id, filters.request_id),
        (Booking.operator_for_id, filters.operator_for_id),
        (Booking.status, filters.status.value if filters.status else None),
    ):
        if value is not None:
            query = query.where(column == value)
    if filters.start is not None:
        query = query.where(Booking.end > filters.start)
    if filters.end is not None:
        query = query.where(Booking.start < filters.end)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Booking.start, Booking.id).limit(limit).offset(offset)
    ).all()
    return list(rows), total


# --- locks ----------------------------------------------------------------------------------


def lock_request(session: Session, request_id: uuid.UUID) -> Request | None:
    """Lock a request's row and re-read it (its status as of now, not as first read)."""
    session.flush()  # re-reading must not drop this transaction's unflushed changes
    return session.scalar(
        select(Request)
        .options(selectinload(Request.requirements))
        .where(Request.id == request_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def lock_bookings(session: Session, ids: Iterable[uuid.UUID]) -> list[Booking]:
    """Lock bookings' rows in id order and re-read them.

    One order everywhere: two transactions locking overlapping sets of bookings queue up
    instead of each holding what the other waits for.
    """
    wanted = sorted(set(ids))
    if not wanted:
        return []
    session.flush()
    return list(
        session.scalars(
            select(Booking)
            .where(Booking.id.in_(wanted))
            .order_by(Booking.id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).all()
    )


def lock_booking(session: Session, *bookings: Booking) -> None:
    """Lock ``bookings`` with every booking their change may touch, and re-read them all.

    Their requests first (by id), then, by id, the bookings, their operator pairs and
    every booking of their requests (a decline or a lender's cancel changes them all).
    The caller checks the status again afterwards.
    """
    if not bookings:
        return
    ids = [b.id for b in bookings]
    pairs = [b.operator_for_id for b in bookings if b.operator_for_id is not None]
    request_ids = sorted({b.request_id for b in bookings if b.request_id is not None})
    for request_id in request_ids:
        lock_request(session, request_id)
    together = or_(
        Booking.id.in_(ids + pairs),
        Booking.operator_for_id.in_(ids),
        Booking.request_id.in_(request_ids),
    )
    lock_bookings(session, session.scalars(select(Booking.id).where(together)).all())


def _locked_booking(session: Session, actor: Actor, booking_id: uuid.UUID) -> Booking:
    """A booking the actor may see, locked with what its change touches (``lock_booking``)."""
    booking = get_booking(session, actor, booking_id)
    lock_booking(session, booking)
    return booking


# --- state changes ------------------------------------------------------------------------


def acts_for_project(
    session: Session, actor: Actor, unit_id: uuid.UUID, project_id: uuid.UUID
) -> bool:
    """Whether the actor acts for ``unit_id`` on ``project_id``: its unit manager (or an
    admin), or a requester or project lead of the unit who is a member of the project."""
    if actor.manages_unit(unit_id, Role.UNIT_MANAGER):
        return True
    if not actor.manages_unit(unit_id, *BORROWER_ROLES):
        return False
    member = select(ProjectMember.id).where(
        ProjectMember.project_id == project_id, ProjectMember.user_id == actor.user_id
    )
    return session.scalar(member) is not None


def _is_borrower(session: Session, actor: Actor, booking: Booking) -> bool:
    return acts_for_project(session, actor, booking.borrower_unit_id, booking.project_id)


def _is_lender(actor: Actor, booking: Booking) -> bool:
    return actor.manages_unit(booking.lender_unit_id, *LENDER_ROLES)


def change_status(
    session: Session,
    actor: Actor,
    booking: Booking,
    to: BookingStatus,
    action: str,
    reason: str,
    *,
    fee: int = 0,
    **changes: Any,
) -> Booking:
    """The one place a booking's status changes: SEQUENCE rises, the ledger follows
    (hold on confirmation, charge on completion, release or ``fee`` on leaving a
    confirmed state), and the audit log records it with its reason."""
    before = snapshot(booking)
    was = booking.status
    booking.status = to.value
    booking.status_reason = reason
    booking.sequence += 1
    for key, value in changes.items():
        setattr(booking, key, value)
    session.flush()
    if to == BookingStatus.CONFIRMED and was != BookingStatus.CONFIRMED.value:
        hooks.hold_for(session, actor, booking)
    elif to == BookingStatus.COMPLETED:
        hooks.charge_for(session, actor, booking)
    elif was == BookingStatus.CONFIRMED.value and to.value not in LIVE_STATUSES:
        hooks.release_for(session, actor, booking, fee=fee)
    record(
        session,
        actor,
        action,
        booking,
        unit_id=booking.lender_unit_id,
        before=before,
        after=snapshot(booking),
        reason=reason,
    )
    notify.status_changed(session, actor, booking, action, reason)
    if was in LIVE_STATUSES and to.value not in LIVE_STATUSES:
        _end_pair(session, actor, booking, to, reason)
    return booking


def _end_pair(
    session: Session, actor: Actor, booking: Booking, to: BookingStatus, reason: str
) -> None:
    """A device booking and its operator's live and die together: cancel the other one."""
    paired = Booking.operator_for_id == booking.id
    if booking.operator_for_id is not None:
        paired = or_(paired, Booking.id == booking.operator_for_id)
    for partner in session.scalars(
        select(Booking)
        .where(paired, Booking.status.in_([s.value for s in CANCELLABLE]))
        .order_by(Booking.id)
        .with_for_update()
    ).all():
        change_status(
            session,
            actor,
            partner,
            BookingStatus.CANCELLED,
            "booking.cancel",
            f"the booking it is paired with was {to.value}: {reason}",
            cancelled_at=utcnow(),
        )


def _transition(
    session: Session,
    actor: Actor,
    booking: Booking,
    to: BookingStatus,
    action: str,
    reason: str,
    **changes: Any,
) -> Booking:
    change_status(session, actor, booking, to, action, reason, **changes)
    if booking.request_id is not None:
        sync_request(session, actor, booking.request_id, reason)
    return booking


def _require_status(booking: Booking, *allowed: BookingStatus) -> None:
    if booking.status not in {s.value for s in allowed}:
        raise Conflict(
            f"the booking is {booking.status}; this needs {' or '.join(s.value for s in allowed)}",
            code="wrong_status",
        )


def approve(session: Session, actor: Actor, booking_id: uuid.UUID, reason: str) -> Booking:
    """The lender approves a loan; conflicts and caps are checked again, in this transaction."""
    booking = get_booking(session, actor, booking_id)
    if not _is_lender(actor, booking):
        raise PermissionDenied("approving needs resource_manager or unit_manager of the lender")
    resource = rules.lock_resource(session, booking.resource_id)
    lock_booking(session, booking)
    _require_status(booking, BookingStatus.PENDING_APPROVAL)
    agreement = (
        session.get(SharingAgreement, booking.agreement_id) if booking.agreement_id else None
    )
    rules.check_slot(
        session,
        resource,
        booking.start,
        booking.end,
        (booking.block_start, booking.block_end),
        exclude=[booking.id],
    )
    rules.check_caps(session, resource, agreement, booking.start, booking.end, exclude=[booking.id])
    return _transition(session, actor, booking, BookingStatus.CONFIRMED, "booking.approve", reason)


def decline(session: Session, actor: Actor, booking_id: uuid.UUID, reason: str) -> Booking:
    """The lender declines a loan; the slot is free again."""
    booking = _locked_booking(session, actor, booking_id)
    if not _is_lender(actor, booking):
        raise PermissionDenied("declining needs resource_manager or unit_manager of the lender")
    _require_status(booking, BookingStatus.PENDING_APPROVAL, BookingStatus.TENTATIVE)
    return _transition(session, actor, booking, BookingStatus.DECLINED, "booking.decline", reason)


def confirm(session: Session, actor: Actor, booking_id: uuid.UUID, reason: str) -> Booking:
    """The borrower accepts a tentative booking (from a plan): it goes to approval or is confirmed."""
    booking = _locked_booking(session, actor, booking_id)
    if not _is_borrower(session, actor, booking):
        raise PermissionDenied("confirming needs a borrower-side role")
    _require_status(booking, BookingStatus.TENTATIVE)
    agreement = (
        session.get(SharingAgreement, booking.agreement_id) if booking.agreement_id else None
    )
    to = (
        BookingStatus.PENDING_APPROVAL
        if agreement is not None and agreement.requires_approval
        else BookingStatus.CONFIRMED
    )
    return _transition(session, actor, booking, to, "booking.confirm", reason)


def cancel(session: Session, actor: Actor, booking_id: uuid.UUID, reason: str) -> Booking:
    """Either side cancels; the slot is free at once."""
    booking = _locked_booking(session, actor, booking_id)
    if not (_is_borrower(session, actor, booking) or _is_lender(actor, booking)):
        raise PermissionDenied("cancelling needs a borrower-side or lender-side role")
    _require_status(booking, *CANCELLABLE)
    side = "borrower" if _is_borrower(session, actor, booking) else "lender"
    notify.booking_cancelled(session, actor, booking, side, reason)
    fee = (
        hooks.cancellation_fee(session, booking)
        if side == "borrower" and booking.status == BookingStatus.CONFIRMED.value
        else 0
    )
    if side == "lender" and booking.request_id is not None:
        # The lender withdrew a resource the request needs: the request goes back to open
        # whole rather than stay half-served.
        change_status(
            session,
            actor,
            booking,
            BookingStatus.CANCELLED,
            "booking.cancel",
            f"lender: {reason}",
            cancelled_at=utcnow(),
        )
        request = lock_request(session, booking.request_id)  # locked already: re-read
        if request is not None and request.status not in (
            RequestStatus.CANCELLED.value,
            RequestStatus.DECLINED.value,
        ):
            reopen_request(
                session,
                actor,
                request,
                ReopenCode.RESOURCE_UNAVAILABLE,
                f"the lender cancelled a booking of it: {reason}",
            )
        return booking
    return _transition(
        session,
        actor,
        booking,
        BookingStatus.CANCELLED,
        "booking.cancel",
        f"{side}: {reason}",
        fee=fee,
        cancelled_at=utcnow(),
    )


def complete(session: Session, actor: Actor, booking_id: uuid.UUID, reason: str) -> Booking:
    """Mark a confirmed booking as done, once it has ended."""
    booking = _locked_booking(session, actor, booking_id)
    if not (_is_borrower(session, actor, booking) or _is_lender(actor, booking)):
        raise PermissionDenied("completing needs a borrower-side or lender-side role")
    _require_status(booking, BookingStatus.CONFIRMED)
    if booking.end > utcnow():
        raise Conflict("the booking has not ended yet", code="not_ended")
    return _transition(session, actor, booking, BookingStatus.COMPLETED, "booking.complete", reason)


def _grace(session: Session, booking: Booking) -> timedelta | None:
    resource = session.get(Resource, booking.resource_id)
    if resource is None or resource.kind != ResourceKind.DEVICE.value:
        return None
    device_type = session.get(DeviceType, resource.device_type_id)
    return timedelta(minutes=device_type.checkin_grace_minutes if device_type else 15)


def check_in(session: Session, actor: Actor, booking_id: uuid.UUID) -> Booking:
    """The borrower collects a device: from its set-up start until the booking ends (once)."""
    booking = _locked_booking(session, actor, booking_id)
    if not _is_borrower(session, actor, booking):
        raise PermissionDenied("checking in needs a borrower-side role")
    _require_status(booking, BookingStatus.CONFIRMED)
    if _grace(session, booking) is None:
        raise Conflict("only device bookings are checked in", code="not_a_device")
    now = utcnow()
    if not (booking.block_start <= now < booking.end):
        raise Conflict(
            "check-in opens at the booking's set-up start and closes at its end",
            code="check_in_window",
        )
    if booking.checked_in_at is not None:
        raise Conflict(
            f"the device was already checked in at {booking.checked_in_at.isoformat()}",
            code="wrong_status",
        )
    before = snapshot(booking)
    booking.checked_in_at = now
    session.flush()
    record(
        session,
        actor,
        "booking.check_in",
        booking,
        unit_id=booking.lender_unit_id,
        before=before,
        after=snapshot(booking),
    )
    return booking


def release_no_show(
    session: Session, actor: Actor, booking_id: uuid.UUID, now: datetime | None = None
) -> Booking:
    """Free a device booking nobody checked in within its type's grace period."""
    booking = get_booking(session, actor, booking_id)
    if not _is_lender(actor, booking):
        raise PermissionDenied("releasing needs resource_manager or unit_manager of the lender")
    return _release(session, actor, booking, now or utcnow())


def _release(session: Session, actor: Actor, booking: Booking, now: datetime) -> Booking:
    lock_booking(session, booking)
    _require_status(booking, BookingStatus.CONFIRMED)
    grace = _grace(session, booking)
    if grace is None:
        raise Conflict("only device bookings are released for no-show", code="not_a_device")
    if booking.checked_in_at is not None or now < booking.start + grace:
        raise Conflict(
            "the grace period has not passed, or the device was checked in", code="not_a_no_show"
        )
    return _transition(
        session,
        actor,
        booking,
        BookingStatus.RELEASED,
        "booking.release",
        f"no check-in within {int(grace.total_seconds() // 60)} minutes",
    )


def sweep(session: Session, actor: Actor, now: datetime | None = None) -> dict[str, int]:
    """Release device no-shows and expire open requests whose window has passed."""
    now = now or utcnow()
    released = 0
    candidates = session.scalars(
        select(Booking)
        .join(Resource, Resource.id == Booking.resource_id)
        .where(
            Booking.status == BookingStatus.CONFIRMED.value,
            Booking.checked_in_at.is_(None),
            Booking.start < now,
            Resource.kind == ResourceKind.DEVICE.value,
        )
    ).all()
    for booking in candidates:
        try:
            with session.begin_nested():
                _release(session, actor, booking, now)
                released += 1
        except Conflict:
            continue
    expired = 0
    due = session.scalars(
        select(Request.id)
        .where(Request.status == RequestStatus.OPEN.value, Request.window_end <= now)
        .order_by(Request.id)
    ).all()
    for request_id in due:
        request = lock_request(session, request_id)
        if request is None or request.status != RequestStatus.OPEN.value:
            continue  # served or withdrawn since the search
        before = snapshot(request)
        request.status = RequestStatus.EXPIRED.value
        request.status_reason = "the window passed without an allocation"
        record(
            session,
            actor,
            "request.expire",
            request,
            unit_id=request.unit_id,
            before=before,
            after=snapshot(request),
            reason=request.status_reason,
        )
        expired += 1
    session.flush()
    return {"released": released, "expired": expired}


# --- requests follow their bookings --------------------------------------------------------


def reopen_request(
    session: Session, actor: Actor, request: Request, code: ReopenCode, reason: str
) -> list[Booking]:
    """Release every live booking of ``request`` together and put it back to ``open``.

    A request is served whole or not at all: when one of its bookings must go (displaced
    by an emergency, its dependency cancelled, its resource no longer available), all go,
    their holds are released without a fee, and the request waits for the next run with
    ``reopen_code`` saying why. Completed bookings stay. Returns the released bookings.
    """
    released = []
    session.flush()  # populate_existing below must not drop unflushed changes
    for booking in session.scalars(
        select(Booking)
        .where(Booking.request_id == request.id, Booking.status.in_(LIVE_STATUSES))
        .order_by(Booking.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all():
        if booking.status not in CANCELLABLE:
            continue  # completed, or already released with its pair
        change_status(
            session,
            actor,
            booking,
            BookingStatus.CANCELLED,
            f"booking.{code.value}",
            reason,
            cancelled_at=utcnow(),
        )
        released.append(booking)
    before = snapshot(request)
    request.status = RequestStatus.OPEN.value
    request.status_reason = reason
    request.reopen_code = code.value
    session.flush()
    record(
        session,
        actor,
        "request.reopen",
        request,
        unit_id=request.unit_id,
        before=before,
        after=snapshot(request),
        reason=f"{code.value}: {reason}",
    )
    released += reopen_dependents(session, actor, request, reason)
    return released


def reopen_dependents(
    session: Session, actor: Actor, request: Request, reason: str
) -> list[Booking]:
    """Reopen every request that follows ``request`` and holds live bookings, down the chain.

    Called once ``request`` is cancelled, declined or reopened: what follows it can no
    longer start after it. Returns the bookings released along the chain.
    """
    held = (
        select(Booking.id)
        .where(Booking.request_id == Request.id, Booking.status.in_([s.value for s in CANCELLABLE]))
        .exists()
    )
    session.flush()  # populate_existing below must not drop unflushed changes
    dependents = session.scalars(
        select(Request)
        .options(selectinload(Request.requirements))
        .where(Request.depends_on_id == request.id, held)
        .order_by(Request.created_at, Request.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).all()
    was = "reopened" if request.status == RequestStatus.OPEN.value else request.status
    released: list[Booking] = []
    for dependent in dependents:
        released += reopen_request(
            session,
            actor,
            dependent,
            ReopenCode.DEPENDENCY_CANCELLED,
            f"the request it follows ({request.title}) was {was}: {reason}",
        )
    return released


def sync_request(session: Session, actor: Actor, request_id: uuid.UUID, reason: str) -> None:
    """Derive a request's status from its bookings after one of them changed.

    A declined booking declines the request and cancels its other live bookings (all its
    requirements must be served together); when every booking is cancelled, the request is
    cancelled; otherwise the least advanced live booking sets the status.
    """
    request = session.get(Request, request_id)
    if request is None or request.status in (
        RequestStatus.CANCELLED.value,
        RequestStatus.DECLINED.value,
    ):
        return
    bookings = session.scalars(select(Booking).where(Booking.request_id == request_id)).all()
    statuses = {b.status for b in bookings}
    before = snapshot(request)
    if BookingStatus.DECLINED.value in statuses:
        for sibling in bookings:
            if sibling.status in LIVE_STATUSES and sibling.status != BookingStatus.COMPLETED.value:
                change_status(
                    session,
                    actor,
                    sibling,
                    BookingStatus.CANCELLED,
                    "booking.cancel",
                    "another requirement of the request was declined",
                    cancelled_at=utcnow(),
                )
        new = RequestStatus.DECLINED
    elif not statuses & set(LIVE_STATUSES):
        new = RequestStatus.CANCELLED
    elif BookingStatus.TENTATIVE.value in statuses:
        new = RequestStatus.ALLOCATED
    elif BookingStatus.PENDING_APPROVAL.value in statuses:
        new = RequestStatus.PENDING_APPROVAL
    elif statuses & set(LIVE_STATUSES) == {BookingStatus.COMPLETED.value}:
        new = RequestStatus.COMPLETED
    else:
        new = RequestStatus.CONFIRMED
    if request.status != new.value:
        request.status = new.value
        request.status_reason = reason
        session.flush()
        record(
            session,
            actor,
            f"request.{new.value}",
            request,
            unit_id=request.unit_id,
            before=before,
            after=snapshot(request),
            reason=reason,
        )
        if new in (RequestStatus.DECLINED, RequestStatus.CANCELLED):
            reopen_dependents(session, actor, request, reason)
