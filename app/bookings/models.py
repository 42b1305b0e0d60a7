"""Requests for resources, bookings that hold them, recurring series, idempotency records.

A booking holds one resource over ``[start, end)`` (UTC). The interval that must stay
clear of other bookings of the same resource is ``[block_start, block_end)``: the booking
widened by its device type's set-up and tear-down buffers. On PostgreSQL an exclusion
constraint over ``(resource_id, tstzrange(block_start, block_end))`` for live bookings
decides; on SQLite the check and the insert share one serialised transaction (app.db).
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.base import Base, DateTimeUTC


class RequestStatus(enum.StrEnum):
    """Lifecycle of a request: open → allocated → pending_approval → confirmed → completed."""

    OPEN = "open"
    ALLOCATED = "allocated"
    PENDING_APPROVAL = "pending_approval"
    CONFIRMED = "confirmed"
    COMPLETED = "completed"
    DECLINED = "declined"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class ReopenCode(enum.StrEnum):
    """Why an allocated request went back to open, with all its bookings released."""

    DISPLACED_BY = "displaced_by"
    """An emergency run took the place of one of its bookings."""
    DEPENDENCY_CANCELLED = "dependency_cancelled"
    """The request it follows was cancelled, declined or reopened."""
    RESOURCE_UNAVAILABLE = "resource_unavailable"
    """Leave, a blackout, imported busy time or an agreement's end now covers a booking."""


class BookingStatus(enum.StrEnum):
    """Lifecycle of a booking. The first four are *live*: they occupy the resource."""

    TENTATIVE = "tentative"
    PENDING_APPROVAL = "pending_approval"
    CONFIRMED = "confirmed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    DECLINED = "declined"
    RELEASED = "released"
    """A device booking nobody checked in within the grace period, freed for others."""


LIVE_STATUSES = (
    BookingStatus.TENTATIVE.value,
    BookingStatus.PENDING_APPROVAL.value,
    BookingStatus.CONFIRMED.value,
    BookingStatus.COMPLETED.value,
)
LIVE_SQL = "status IN ('tentative', 'pending_approval', 'confirmed', 'completed')"


class RequirementKind(enum.StrEnum):
    """What a requirement asks for."""

    SKILL = "skill"
    DEVICE_TYPE = "device_type"
    RESOURCE = "resource"


class Request(Base):
    """A unit asks, for a project, for resources that must serve it at the same time."""

    __tablename__ = "requests"
    __table_args__ = (
        CheckConstraint("priority BETWEEN 1 AND 5", name="request_priority_range"),
        CheckConstraint("duration_minutes > 0", name="request_duration_positive"),
        CheckConstraint("window_end > window_start", name="request_window_positive"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"), index=True)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    """The requesting (borrowing) unit."""
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200))
    notes: Mapped[str] = mapped_column(Text, default="")
    duration_minutes: Mapped[int] = mapped_column(Integer)
    window_start: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    window_end: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    priority: Mapped[int] = mapped_column(SmallInteger, default=3)
    """1 (low) … 5 (critical)."""
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    depends_on_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("requests.id"), default=None)
    status: Mapped[str] = mapped_column(String(24), default=RequestStatus.OPEN.value, index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    operator_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("resources.id"), default=None)
    """One of the requesting unit's own experts who operates the request's devices that
    need an operator; None: the plan (or serve) finds a qualified operator."""
    reopen_code: Mapped[str | None] = mapped_column(String(32), default=None)
    """Why the request last went back to open: ``displaced_by``, ``dependency_cancelled``
    or ``resource_unavailable`` (None: never reopened)."""
    waitlist: Mapped[bool | None] = mapped_column(Boolean, default=None)
    """Wait for freed time while open (app.bookings.waitlist). None: wait only once a run
    left the request out for capacity."""
    auto_accept: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    """Freed time found for it is booked at once instead of offered."""

    requirements: Mapped[list[Requirement]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="Requirement.position"
    )


class Requirement(Base):
    """One thing a request needs: skill ≥ level × quantity, device type × quantity, or a resource."""

    __tablename__ = "request_requirements"
    __table_args__ = (
        CheckConstraint("quantity BETWEEN 1 AND 50", name="requirement_quantity_range"),
        CheckConstraint("min_level BETWEEN 1 AND 5", name="requirement_level_range"),
    )

    request_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("requests.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(SmallInteger, default=0)
    kind: Mapped[str] = mapped_column(String(16))
    skill_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("skills.id"), default=None)
    min_level: Mapped[int] = mapped_column(SmallInteger, default=1)
    device_type_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("device_types.id"), default=None
    )
    resource_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("resources.id"), default=None)
    quantity: Mapped[int] = mapped_column(SmallInteger, default=1)


class BookingSeries(Base):
    """A recurring booking: an RRULE over wall-clock time in a zone; occurrences are bookings."""

    __tablename__ = "booking_series"

    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resources.id"), index=True)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"), index=True)
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200))
    rrule: Mapped[str] = mapped_column(Text)
    time_zone: Mapped[str] = mapped_column(String(64))
    local_start: Mapped[str] = mapped_column(String(19))
    """First occurrence as local wall-clock ``YYYY-MM-DDTHH:MM:SS`` in ``time_zone``."""
    duration_minutes: Mapped[int] = mapped_column(Integer)
    skipped: Mapped[list[str]] = mapped_column(JSON, default=list)
    """UTC starts of occurrences skipped at creation because they clashed."""
    notes: Mapped[str] = mapped_column(Text, default="", server_default="")
    sequence: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Added to its occurrences' sequences for the feed's SEQUENCE: raised when the series
    is split or re-timed, so the sum never falls when occurrences leave it."""


class Booking(Base):
    """A resource held over ``[start, end)`` for a project."""

    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint('"end" > start', name="booking_positive"),
        CheckConstraint('block_start <= start AND block_end >= "end"', name="booking_block"),
    )

    resource_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("resources.id"), index=True)
    project_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("projects.id"), index=True)
    request_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("requests.id"), default=None, index=True
    )
    requirement_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("request_requirements.id"), default=None
    )
    series_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("booking_series.id"), default=None, index=True
    )
    agreement_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("sharing_agreements.id"), default=None
    )
    """The agreement the loan runs under; null when the resource is the borrower's own."""
    borrower_unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    lender_unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    title: Mapped[str] = mapped_column(String(200), default="")
    start: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    end: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    block_start: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    block_end: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    status: Mapped[str] = mapped_column(String(24), index=True)
    status_reason: Mapped[str] = mapped_column(Text, default="")
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    """Rises on each change of time, resource or status (iCalendar SEQUENCE)."""
    checked_in_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    operator_for_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("bookings.id"), default=None, index=True
    )
    """On an operator's booking: the device booking it operates (they live and die together)."""
    recurrence_id: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    """On an occurrence of a series: where the series' rule puts it (its RECURRENCE-ID),
    kept when the occurrence alone is moved."""


class IdempotencyRecord(Base):
    """The first answer to a mutating POST sent with an ``Idempotency-Key``.

    ``scope`` is the SHA-256 of the caller's API key, so keys of different callers never
    collide; ``request_sha256`` covers method, path and body, so a reused key with a
    different request is refused. ``state`` is ``pending`` while the first request runs.
    """

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(200))
    request_sha256: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="pending")
    status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    content_type: Mapped[str | None] = mapped_column(String(200), default=None)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, default=None)


class FreedWindow(Base):
    """Capacity that came free (a cancellation, decline, release, displacement, a shorter
    or moved booking), written in the same transaction; the waitlist job re-plans it.

    ``resource_id`` and ``booking_id`` carry no foreign keys on purpose: checking one
    takes a KEY SHARE lock on the resource row inside a cancel or decline, which
    deadlocked (PostgreSQL 40P01) with an approval that locks the resource before the
    booking (tests/app/test_transition_races.py). Resources and bookings are never
    deleted, so the references cannot dangle."""

    __tablename__ = "freed_windows"

    resource_id: Mapped[uuid.UUID] = mapped_column(index=True)
    start: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    end: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    cause: Mapped[str] = mapped_column(String(32))
    booking_id: Mapped[uuid.UUID | None] = mapped_column(default=None)
    processed_at: Mapped[datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), default=None, index=True
    )
    """When the waitlist job re-planned it (None: still to do)."""


class OfferStatus(enum.StrEnum):
    """open → accepted, declined, expired, or lost (another request took the time)."""

    OPEN = "open"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    EXPIRED = "expired"
    LOST = "lost"


class WaitlistOffer(Base):
    """Freed time offered to a waiting request until ``deadline``: the plan's assignment."""

    __tablename__ = "waitlist_offers"

    request_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("requests.id"), index=True)
    window_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("freed_windows.id"), default=None
    )
    resource_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    start: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    end: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    cost: Mapped[int] = mapped_column(Integer, default=0)
    """The plan's price of the offered time, in the project's minor units."""
    rank: Mapped[int] = mapped_column(Integer, default=0)
    """Place among the requests the re-plan found for the window (0: best placed)."""
    status: Mapped[str] = mapped_column(String(16), default=OfferStatus.OPEN.value, index=True)
    deadline: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    answered_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    booking_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
