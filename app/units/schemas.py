"""API shapes of units."""

from __future__ import annotations

import uuid
from datetime import datetime

from app.schemas import Code, Name, Schema, Text, TimeZoneName


class UnitCreate(Schema):
    """A new unit."""

    name: Name
    code: Code
    description: Text = ""
    time_zone: TimeZoneName = "UTC"
    """The IANA zone the unit's people read times in, e.g. ``Europe/Berlin``."""


class UnitUpdate(Schema):
    """Fields of a unit that can change."""

    name: Name | None = None
    description: Text | None = None
    time_zone: TimeZoneName | None = None


class UnitRead(Schema):
    """A unit as the API shows it (units are public to every signed-in user)."""

    id: uuid.UUID
    name: str
    code: str
    description: str
    time_zone: str
    retired_at: datetime | None
    created_at: datetime
