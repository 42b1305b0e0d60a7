"""API shapes of the catalog: skills, device types, experts, devices, unavailability."""

from __future__ import annotations

import itertools
import re
import uuid
from datetime import datetime
from typing import Annotated

from pydantic import Field, field_validator

from app.schemas import (
    BasisPoints,
    CurrencyCode,
    MinorUnits,
    Name,
    Schema,
    Text,
    TimeZoneName,
    UtcDatetime,
    end_after_start,
)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")

TimeRange = Annotated[list[str], Field(min_length=2, max_length=2)]


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def check_working_hours(
    value: dict[str, list[list[str]]] | None,
) -> dict[str, list[list[str]]] | None:
    """Weekday → sorted, non-overlapping ``[start, end]`` wall-clock ranges (``HH:MM``)."""
    if value is None:
        return None
    out: dict[str, list[list[str]]] = {}
    for day, ranges in value.items():
        if day not in WEEKDAYS:
            raise ValueError(f"unknown weekday {day!r}; use {', '.join(WEEKDAYS)}")
        cleaned = []
        for pair in ranges:
            if not all(_HHMM.match(t) for t in pair):
                raise ValueError(f"{day}: times are HH:MM, 00:00–24:00")
            if _minutes(pair[0]) >= _minutes(pair[1]):
                raise ValueError(f"{day}: {pair[0]}–{pair[1]} ends before it starts")
            cleaned.append([pair[0], pair[1]])
        cleaned.sort(key=lambda p: _minutes(p[0]))
        for a, b in itertools.pairwise(cleaned):
            if _minutes(b[0]) < _minutes(a[1]):
                raise ValueError(f"{day}: ranges {a[0]}–{a[1]} and {b[0]}–{b[1]} overlap")
        if cleaned:
            out[day] = cleaned
    return out


WorkingHours = dict[str, Annotated[list[TimeRange], Field(max_length=12)]]


class SkillCreate(Schema):
    """A node of the skill taxonomy."""

    name: Name
    parent_id: uuid.UUID | None = None
    description: Text = ""


class SkillUpdate(Schema):
    """Fields of a skill that can change."""

    name: Name | None = None
    description: Text | None = None


class SkillRead(Schema):
    """A skill."""

    id: uuid.UUID
    name: str
    parent_id: uuid.UUID | None
    description: str
    retired_at: datetime | None


class DeviceTypeCreate(Schema):
    """A kind of device, with buffers around each booking and a check-in grace period."""

    name: Name
    description: Text = ""
    setup_minutes: int = Field(default=0, ge=0, le=24 * 60)
    teardown_minutes: int = Field(default=0, ge=0, le=24 * 60)
    checkin_grace_minutes: int = Field(default=15, ge=0, le=24 * 60)


class DeviceTypeUpdate(Schema):
    """Fields of a device type that can change."""

    name: Name | None = None
    description: Text | None = None
    setup_minutes: int | None = Field(default=None, ge=0, le=24 * 60)
    teardown_minutes: int | None = Field(default=None, ge=0, le=24 * 60)
    checkin_grace_minutes: int | None = Field(default=None, ge=0, le=24 * 60)


class DeviceTypeRead(Schema):
    """A device type."""

    id: uuid.UUID
    name: str
    description: str
    setup_minutes: int
    teardown_minutes: int
    checkin_grace_minutes: int
    retired_at: datetime | None


class SkillLevel(Schema):
    """An expert's level (1–5) in one skill."""

    skill_id: uuid.UUID
    level: int = Field(ge=1, le=5)


def _unique_skills(value: list[SkillLevel]) -> list[SkillLevel]:
    seen = set()
    for item in value:
        if item.skill_id in seen:
            raise ValueError(f"skill {item.skill_id} is listed twice")
        seen.add(item.skill_id)
    return value


class ExpertCreate(Schema):
    """A new expert of a unit."""

    unit_id: uuid.UUID
    name: Name
    email: str | None = Field(default=None, max_length=320)
    time_zone: TimeZoneName
    working_hours: WorkingHours = Field(
        examples=[{"mon": [["09:00", "17:00"]], "tue": [["09:00", "12:00"], ["13:00", "17:00"]]}]
    )
    skills: list[SkillLevel] = Field(default_factory=list, max_length=100)
    lending_cap_bp: BasisPoints = 10_000
    hourly_rate: MinorUnits = 0
    currency: CurrencyCode = "EUR"

    _hours = field_validator("working_hours")(check_working_hours)
    _skills = field_validator("skills")(_unique_skills)


class ExpertUpdate(Schema):
    """Fields of an expert that can change (``skills`` replaces the whole list)."""

    name: Name | None = None
    email: str | None = Field(default=None, max_length=320)
    time_zone: TimeZoneName | None = None
    working_hours: WorkingHours | None = None
    skills: list[SkillLevel] | None = Field(default=None, max_length=100)
    lending_cap_bp: BasisPoints | None = None
    hourly_rate: MinorUnits | None = None
    currency: CurrencyCode | None = None

    _hours = field_validator("working_hours")(check_working_hours)
    _skills = field_validator("skills")(lambda v: v if v is None else _unique_skills(v))


class ExpertRead(Schema):
    """An expert as seen by its own unit and by borrowers an agreement shows it to."""

    id: uuid.UUID
    unit_id: uuid.UUID
    name: str
    email: str | None
    time_zone: str
    working_hours: dict[str, list[list[str]]] | None
    skills: list[SkillLevel]
    lending_cap_bp: int
    hourly_rate: int
    currency: str
    retired_at: datetime | None


class DeviceCreate(Schema):
    """A new device of a unit. No ``working_hours`` means around the clock."""

    unit_id: uuid.UUID
    name: Name
    device_type_id: uuid.UUID
    location: str = Field(default="", max_length=200)
    time_zone: TimeZoneName
    working_hours: WorkingHours | None = None
    operator_skill_id: uuid.UUID | None = None
    hourly_rate: MinorUnits = 0
    daily_rate: MinorUnits = 0
    currency: CurrencyCode = "EUR"

    _hours = field_validator("working_hours")(check_working_hours)


class DeviceUpdate(Schema):
    """Fields of a device that can change."""

    name: Name | None = None
    location: str | None = Field(default=None, max_length=200)
    time_zone: TimeZoneName | None = None
    working_hours: WorkingHours | None = None
    operator_skill_id: uuid.UUID | None = None
    hourly_rate: MinorUnits | None = None
    daily_rate: MinorUnits | None = None
    currency: CurrencyCode | None = None

    _hours = field_validator("working_hours")(check_working_hours)


class DeviceRead(Schema):
    """A device."""

    id: uuid.UUID
    unit_id: uuid.UUID
    name: str
    device_type_id: uuid.UUID
    location: str | None
    time_zone: str
    working_hours: dict[str, list[list[str]]] | None
    operator_skill_id: uuid.UUID | None
    hourly_rate: int
    daily_rate: int
    currency: str
    retired_at: datetime | None


class UnavailabilityCreate(Schema):
    """A leave period or maintenance blackout, ``[start, end)`` in UTC."""

    start: UtcDatetime
    end: UtcDatetime
    note: Text = ""
    force: bool = False
    """Release the live bookings the period falls over (else such a period is refused)."""

    _ordered = field_validator("end")(end_after_start)


class UnavailabilityRead(Schema):
    """A period in which a resource cannot be booked."""

    id: uuid.UUID
    resource_id: uuid.UUID
    kind: str
    start: datetime
    end: datetime
    note: str
