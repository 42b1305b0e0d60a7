"""API shapes of bookings, requests, recurring series and availability answers."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime, time
from typing import Annotated

from pydantic import Field, ValidationInfo, field_validator, model_validator

from app.bookings.models import (
    BookingStatus,
    OfferStatus,
    ReopenCode,
    RequestStatus,
    RequirementKind,
)
from app.schemas import Name, Schema, Text, TimeZoneName, UtcDatetime, end_after_start

Minutes = Annotated[int, Field(ge=5, le=60 * 24 * 14, description="Whole minutes")]


class BookingCreate(Schema):
    """Book a named resource for a project over ``[start, end)``."""

    resource_id: uuid.UUID
    project_id: uuid.UUID
    start: UtcDatetime
    end: UtcDatetime
    title: Name = "Booking"
    operator_id: uuid.UUID | None = None
    """The expert who operates the device (required when the device needs an operator):
    booked with it over the same times."""
    backfill: bool = Field(
        default=False,
        description="Admins only: record a booking that has already ended (audited)",
    )

    _ordered = field_validator("end")(end_after_start)


class BookingRead(Schema):
    """A booking. Times are UTC; ``block_*`` include the device's set-up/tear-down buffers."""

    id: uuid.UUID
    resource_id: uuid.UUID
    project_id: uuid.UUID
    request_id: uuid.UUID | None
    requirement_id: uuid.UUID | None
    series_id: uuid.UUID | None
    agreement_id: uuid.UUID | None
    borrower_unit_id: uuid.UUID
    lender_unit_id: uuid.UUID
    created_by: uuid.UUID
    title: str
    start: datetime
    end: datetime
    block_start: datetime
    block_end: datetime
    status: BookingStatus
    status_reason: str
    sequence: int
    checked_in_at: datetime | None
    cancelled_at: datetime | None
    operator_for_id: uuid.UUID | None
    """On an operator's booking: the device booking it operates."""
    updated_at: datetime


class ReasonRequired(Schema):
    """Why (kept with the booking and in the audit log)."""

    reason: str = Field(min_length=1, max_length=2000)


class ReasonOptional(Schema):
    """An optional note for the audit log."""

    reason: str = Field(default="", max_length=2000)


class RequirementIn(Schema):
    """One requirement: a skill at a minimum level, a device type, or a named resource."""

    kind: RequirementKind
    skill_id: uuid.UUID | None = None
    min_level: int = Field(default=1, ge=1, le=5)
    device_type_id: uuid.UUID | None = None
    resource_id: uuid.UUID | None = None
    quantity: int = Field(default=1, ge=1, le=50)

    @model_validator(mode="after")
    def _target(self) -> RequirementIn:
        given = {
            RequirementKind.SKILL: self.skill_id,
            RequirementKind.DEVICE_TYPE: self.device_type_id,
            RequirementKind.RESOURCE: self.resource_id,
        }
        if given[self.kind] is None:
            raise ValueError(f"a {self.kind.value} requirement needs {self.kind.value}_id")
        if sum(v is not None for v in given.values()) != 1:
            raise ValueError("give exactly one of skill_id, device_type_id, resource_id")
        if self.kind == RequirementKind.RESOURCE and self.quantity != 1:
            raise ValueError("a named resource has quantity 1")
        return self


class RequirementRead(Schema):
    """A stored requirement."""

    id: uuid.UUID
    kind: RequirementKind
    skill_id: uuid.UUID | None
    min_level: int
    device_type_id: uuid.UUID | None
    resource_id: uuid.UUID | None
    quantity: int


class RequestCreate(Schema):
    """Ask for resources for a project: all requirements served at once, inside the window."""

    project_id: uuid.UUID
    title: Name
    notes: Text = ""
    requirements: list[RequirementIn] = Field(min_length=1, max_length=20)
    duration_minutes: Minutes
    window_start: UtcDatetime
    window_end: UtcDatetime
    priority: int = Field(default=3, ge=1, le=5)
    emergency: bool = False
    depends_on_id: uuid.UUID | None = None
    operator_id: uuid.UUID | None = None
    """One of the requesting unit's own experts who operates the devices that need an
    operator; absent: serving (or the allocation run) finds a qualified operator."""
    waitlist: bool | None = None
    """Wait for freed time while open: true, false, or absent (wait once an allocation run
    leaves it out for capacity)."""
    auto_accept: bool = False
    """Book freed time found for it at once instead of offering it."""

    @field_validator("window_end")
    @classmethod
    def _window(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("window_start")
        duration = info.data.get("duration_minutes")
        if start is not None:
            if value <= start:
                raise ValueError("must be after window_start")
            if duration is not None and (value - start).total_seconds() < duration * 60:
                raise ValueError("the window is shorter than duration_minutes")
        return value


class RequestRead(Schema):
    """A request and where it stands."""

    id: uuid.UUID
    project_id: uuid.UUID
    unit_id: uuid.UUID
    created_by: uuid.UUID
    title: str
    notes: str
    requirements: list[RequirementRead]
    duration_minutes: int
    window_start: datetime
    window_end: datetime
    priority: int
    emergency: bool
    depends_on_id: uuid.UUID | None
    operator_id: uuid.UUID | None
    status: RequestStatus
    status_reason: str
    reopen_code: ReopenCode | None
    """Why the request last went back to open (its bookings released), if it ever did."""
    waitlist: bool | None = None
    auto_accept: bool = False
    created_at: datetime


class ServedRequest(Schema):
    """The request after "serve it now", with the bookings made for it."""

    request: RequestRead
    bookings: list[BookingRead]


class SeriesCreate(Schema):
    """A recurring booking: RRULE over local wall-clock time (e.g. weekly lab time)."""

    resource_id: uuid.UUID
    project_id: uuid.UUID
    title: Name = "Recurring booking"
    time_zone: TimeZoneName
    local_start: datetime = Field(
        description="First occurrence as local wall-clock time, without offset",
        examples=["2027-03-01T10:00:00"],
    )
    duration_minutes: Minutes
    rrule: str = Field(min_length=6, max_length=500, examples=["FREQ=WEEKLY;BYDAY=MO;COUNT=12"])
    skip_conflicts: bool = False
    operator_id: uuid.UUID | None = None
    """The expert who operates the device at every occurrence (required when it needs one)."""
    backfill: bool = Field(
        default=False,
        description="Admins only: allow occurrences that have already ended (audited)",
    )

    @field_validator("local_start", mode="before")
    @classmethod
    def _naive(cls, value: object) -> object:
        if not isinstance(value, str):
            raise ValueError("must be a local date-time string like 2027-03-01T10:00:00")
        return value

    @field_validator("local_start")
    @classmethod
    def _no_offset(cls, value: datetime) -> datetime:
        if value.tzinfo is not None:
            raise ValueError("give wall-clock time without offset; the zone is time_zone")
        return value

    @field_validator("rrule")
    @classmethod
    def _bounded(cls, value: str) -> str:
        upper = value.upper().removeprefix("RRULE:")
        if "COUNT=" not in upper and "UNTIL=" not in upper:
            raise ValueError("needs COUNT or UNTIL (an endless series cannot be stored)")
        return upper


class SkippedOccurrence(Schema):
    """An occurrence left out because it clashed."""

    start: datetime
    end: datetime
    reason: str


class SeriesRead(Schema):
    """A recurring series with its occurrences."""

    id: uuid.UUID
    resource_id: uuid.UUID
    project_id: uuid.UUID
    title: str
    rrule: str
    time_zone: str
    local_start: str
    duration_minutes: int
    notes: str = ""
    bookings: list[BookingRead]
    skipped: list[SkippedOccurrence]


class SlotRead(Schema):
    """A free slot of one resource."""

    resource_id: uuid.UUID
    resource_name: str
    unit_id: uuid.UUID
    start: datetime
    end: datetime


class FreeBusyRead(Schema):
    """Free and busy intervals of one resource over a range (busy blocks carry no details)."""

    resource_id: uuid.UUID
    start: datetime
    end: datetime
    free: list[tuple[datetime, datetime]]
    busy: list[tuple[datetime, datetime]]
    unavailable: list[tuple[datetime, datetime]]


class BookingFilter(Schema):
    """Filters of the booking list."""

    resource_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    request_id: uuid.UUID | None = None
    operator_for_id: uuid.UUID | None = None
    status: BookingStatus | None = None
    start: datetime | None = None
    end: datetime | None = None
    q: str | None = None
    """Text in the title."""


class BookingPatch(Schema):
    """Move or edit a booking: the fields given change, the others stay.

    ``start`` alone shifts the booking and keeps its length; ``end`` alone changes its end;
    ``resource_id`` moves it to another resource (the same rules as a new booking).
    """

    start: UtcDatetime | None = None
    end: UtcDatetime | None = None
    resource_id: uuid.UUID | None = None
    title: Name | None = None
    reason: str = Field(default="", max_length=2000)
    """Why (kept in the audit log)."""

    _ordered = field_validator("end")(end_after_start)


class RequestPatch(Schema):
    """Change an open request: the fields given change, the others stay (same rules as create)."""

    title: Name | None = None
    notes: Text | None = None
    duration_minutes: Minutes | None = None
    window_start: UtcDatetime | None = None
    window_end: UtcDatetime | None = None
    priority: int | None = Field(default=None, ge=1, le=5)


class SeriesScope(enum.StrEnum):
    """Which occurrences a series edit covers."""

    ALL = "all"
    THIS_AND_FOLLOWING = "this_and_following"


class SeriesPatch(Schema):
    """Change a series' times, length, title or notes: every occurrence it covers moves
    under the same rules as a single move, in one transaction (409 listing the
    occurrences that cannot). ``this_and_following`` splits the series at
    ``from_occurrence``; ``all`` covers the occurrences that have not started (and splits
    there when some have and the times change)."""

    scope: SeriesScope
    from_occurrence: UtcDatetime | None = Field(
        default=None,
        description="With this_and_following: the original start (UTC) of the first "
        "occurrence to change, as the series' rule placed it",
    )
    local_time: time | None = Field(
        default=None,
        description="New wall-clock start time of each occurrence in the series' zone",
        examples=["11:00:00"],
    )
    duration_minutes: Minutes | None = None
    title: Name | None = None
    notes: Text | None = None

    @model_validator(mode="after")
    def _something(self) -> SeriesPatch:
        if self.scope is SeriesScope.THIS_AND_FOLLOWING and self.from_occurrence is None:
            raise ValueError("from_occurrence: required with scope this_and_following")
        if (self.local_time, self.duration_minutes, self.title, self.notes) == (None,) * 4:
            raise ValueError("give at least one of local_time, duration_minutes, title, notes")
        return self


class OfferRead(Schema):
    """Freed time offered to a waiting request until ``deadline`` (first to accept wins)."""

    id: uuid.UUID
    request_id: uuid.UUID
    resource_ids: list[uuid.UUID]
    start: datetime
    end: datetime
    cost: int
    """The plan's price of the time, in the project's minor units."""
    rank: int
    """0 for the best-placed waiting request of the re-plan, then 1, 2, …"""
    status: OfferStatus
    deadline: datetime
    answered_at: datetime | None
    booking_ids: list[uuid.UUID]
    created_at: datetime
