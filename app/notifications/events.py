"""One-line hooks the domain services call to tell people what happened to a booking, a run
or an agreement: each works out who is concerned and calls ``outbox.emit``.

A booking's *lender side* is its lending unit (resource and unit managers); its *borrower
side* is the borrowing unit (requesters, project leads) and the user who booked it.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.notifications import kinds
from app.notifications.outbox import emit

if TYPE_CHECKING:  # the services that call these import this module
    from app.agreements.models import SharingAgreement
    from app.bookings.models import Booking

LENDER, BORROWER, BOTH = "lender", "borrower", "both"

STATUS_KINDS: dict[str, tuple[str, str]] = {
    "booking.approve": (kinds.APPROVED, BORROWER),
    "booking.decline": (kinds.DECLINED, BORROWER),
    "booking.release": (kinds.NO_SHOW_RELEASED, BOTH),
    "booking.displace": (kinds.DISPLACED, BORROWER),
    "booking.displaced_by": (kinds.DISPLACED, BORROWER),
    "booking.dependency_cancelled": (kinds.DISPLACED, BORROWER),
    "booking.resource_unavailable": (kinds.UNAVAILABLE_OVER_BOOKING, BOTH),
}
"""The audit action of a status change → the event it is and whom it concerns. Cancels
are told by :func:`booking_cancelled` (who the other side is depends on who cancels)."""


def _data(booking: Booking, reason: str = "", **extra: Any) -> dict[str, Any]:
    return {
        "booking_id": str(booking.id),
        "title": booking.title,
        "resource_id": str(booking.resource_id),
        "project_id": str(booking.project_id),
        "start": booking.start.isoformat(),
        "end": booking.end.isoformat(),
        "status": booking.status,
        "sequence": booking.sequence,
        "reason": reason,
        **extra,
    }


def booking_event(
    session: Session, actor: Actor, kind: str, booking: Booking, side: str, reason: str = ""
) -> uuid.UUID:
    """Tell a booking's lender side, borrower side or both about ``kind``."""
    units: list[uuid.UUID] = []
    users: list[uuid.UUID] = []
    if side in (LENDER, BOTH):
        units.append(booking.lender_unit_id)
    if side in (BORROWER, BOTH):
        units.append(booking.borrower_unit_id)
        users.append(booking.created_by)
    return emit(
        session,
        kind,
        subject_type="booking",
        subject_id=booking.id,
        unit_ids=units,
        user_ids=users,
        data=_data(booking, reason),
        actor_id=actor.user_id,
    )


def status_changed(
    session: Session, actor: Actor, booking: Booking, action: str, reason: str
) -> None:
    """After ``change_status``: the event its audit action stands for, if any; a booking
    sent (back) to approval tells the lender."""
    if booking.status == "pending_approval":
        booking_event(session, actor, kinds.APPROVAL_NEEDED, booking, LENDER, reason)
        return
    known = STATUS_KINDS.get(action)
    if known is not None:
        booking_event(session, actor, known[0], booking, known[1], reason)


def booking_created(session: Session, actor: Actor, booking: Booking) -> None:
    """A new booking that waits for the lender's approval tells the lender."""
    if booking.status == "pending_approval":
        booking_event(session, actor, kinds.APPROVAL_NEEDED, booking, LENDER)


def booking_cancelled(
    session: Session, actor: Actor, booking: Booking, side: str, reason: str
) -> None:
    """A cancel by one side tells the other side."""
    other = LENDER if side == BORROWER else BORROWER
    booking_event(session, actor, kinds.CANCELLED, booking, other, reason)


def bookings_withdrawn(
    session: Session, actor: Actor, bookings: list[Booking], reason: str
) -> None:
    """Leave, a blackout, busy time or an agreement's end released these direct bookings."""
    for booking in bookings:
        booking_event(session, actor, kinds.UNAVAILABLE_OVER_BOOKING, booking, BOTH, reason)


def agreement_ending(
    session: Session, actor: Actor, agreement: SharingAgreement, reason: str
) -> uuid.UUID:
    """An agreement was terminated: both units' managers are told."""
    return emit(
        session,
        kinds.AGREEMENT_ENDING,
        subject_type="agreement",
        subject_id=agreement.id,
        unit_ids=[agreement.lender_unit_id, agreement.borrower_unit_id],
        data={
            "agreement_id": str(agreement.id),
            "ends_at": str(agreement.terminated_at or agreement.valid_until or ""),
            "reason": reason,
        },
        actor_id=actor.user_id,
    )
