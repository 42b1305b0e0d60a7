"""Bookings a lender-side change no longer lets stand, and what becomes of them.

Leave (``POST /experts/{id}/leave``), a device blackout (``POST /devices/{id}/blackouts``),
imported busy time (``POST /experts/{id}/busy-import``) and an agreement's termination
(``POST /agreements/{id}/terminate``) can fall over live bookings that are not completed.
Without ``force`` such a change is refused with 409 ``affects_bookings``, every affected
booking listed in the problem's ``conflicts`` (id, start, end, status, request_id), and
nothing is written. With ``force`` the bookings go in the same transaction as the change:
a booking that serves a request reopens the whole request (``resource_unavailable``: all
its bookings released, back to open, so it is never left half-served); a direct booking
is cancelled with the reason, without a fee, its hold released. Each step is audited.
"""

from __future__ import annotations

import uuid
from bisect import bisect_left
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.base import utcnow
from app.bookings.availability import Interval, merge
from app.bookings.models import Booking, BookingStatus, ReopenCode, Request
from app.bookings.services import change_status, lock_booking, reopen_request
from app.errors import Conflict
from app.notifications import events as notify

RELEASABLE = (
    BookingStatus.TENTATIVE.value,
    BookingStatus.PENDING_APPROVAL.value,
    BookingStatus.CONFIRMED.value,
)
"""Live and not completed: what a lender-side change can still take away."""


def overlapping(
    session: Session, resource_id: uuid.UUID, spans: Iterable[Interval]
) -> list[Booking]:
    """Releasable bookings of a resource whose ``[start, end)`` meets any of ``spans``."""
    merged = merge(spans)
    if not merged:
        return []
    rows = session.scalars(
        select(Booking)
        .where(
            Booking.resource_id == resource_id,
            Booking.status.in_(RELEASABLE),
            Booking.start < merged[-1][1],
            Booking.end > merged[0][0],
        )
        .order_by(Booking.start, Booking.id)
    ).all()
    starts = [s for s, _ in merged]
    out = []
    for booking in rows:
        # The merged spans are disjoint and sorted: only the last one starting before the
        # booking ends can reach into it.
        i = bisect_left(starts, booking.end) - 1
        if i >= 0 and merged[i][1] > booking.start:
            out.append(booking)
    return out


def under_agreement(session: Session, agreement_id: uuid.UUID, now: datetime) -> list[Booking]:
    """Releasable bookings under an agreement that have not ended by ``now``."""
    return list(
        session.scalars(
            select(Booking)
            .where(
                Booking.agreement_id == agreement_id,
                Booking.status.in_(RELEASABLE),
                Booking.end > now,
            )
            .order_by(Booking.start, Booking.id)
        )
    )


def affected(bookings: Iterable[Booking]) -> list[dict[str, str | None]]:
    """The ``conflicts`` entries of an ``affects_bookings`` refusal."""
    return [
        {
            "id": str(b.id),
            "start": b.start.isoformat(),
            "end": b.end.isoformat(),
            "status": b.status,
            "request_id": str(b.request_id) if b.request_id else None,
        }
        for b in bookings
    ]


def refuse_unless_forced(bookings: list[Booking], *, force: bool, what: str) -> None:
    """409 ``affects_bookings`` naming ``bookings`` when there are any and ``force`` is off."""
    if bookings and not force:
        raise Conflict(
            f"{what} would affect {len(bookings)} live booking(s); "
            "send force: true to release them",
            field="force",
            code="affects_bookings",
            conflicts=affected(bookings),
        )


def release(session: Session, actor: Actor, bookings: list[Booking], reason: str) -> list[Booking]:
    """Release ``bookings``: reopen the requests they serve, cancel the direct ones.

    Returns every booking that left a live state, request siblings and operators included.
    The bookings were found without a lock: they are locked here (requests, then bookings,
    as every change locks) and each one's status is read again before it is released.
    """
    lock_booking(session, *bookings)
    released: list[Booking] = []
    reopened: set[uuid.UUID] = set()
    for booking in bookings:
        if booking.status not in RELEASABLE:
            continue  # already gone with a request or a pair released before it
        if booking.request_id is not None:
            if booking.request_id in reopened:
                continue
            reopened.add(booking.request_id)
            request = session.get(Request, booking.request_id)  # locked above
            assert request is not None  # a foreign key
            released += reopen_request(
                session, actor, request, ReopenCode.RESOURCE_UNAVAILABLE, reason
            )
        else:
            change_status(
                session,
                actor,
                booking,
                BookingStatus.CANCELLED,
                "booking.cancel",
                reason,
                cancelled_at=utcnow(),
            )
            notify.bookings_withdrawn(session, actor, [booking], reason)
            released.append(booking)
    return released
