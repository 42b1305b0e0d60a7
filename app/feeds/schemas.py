"""API shapes of feed subscriptions and busy-time imports."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import Field, model_validator

from app.feeds.models import FeedKind
from app.schemas import Schema, TimeZoneName


class FeedCreate(Schema):
    """A new feed: what it follows, and optionally its name and display zone."""

    kind: FeedKind
    target_id: uuid.UUID | None = Field(
        default=None,
        description="The expert, device, unit or project followed; omit for kind 'mine'",
    )
    name: str | None = Field(default=None, min_length=1, max_length=200)
    time_zone: TimeZoneName | None = Field(
        default=None, description="Display zone; defaults to the resource's zone, else UTC"
    )

    @model_validator(mode="after")
    def _target_matches_kind(self) -> FeedCreate:
        if self.kind is FeedKind.MINE and self.target_id is not None:
            raise ValueError("target_id: a 'mine' feed follows the caller, give no target_id")
        if self.kind is not FeedKind.MINE and self.target_id is None:
            raise ValueError(f"target_id: a '{self.kind.value}' feed needs a target_id")
        return self


class FeedRead(Schema):
    """A feed without its secret."""

    id: uuid.UUID
    user_id: uuid.UUID
    kind: FeedKind
    target_id: uuid.UUID | None
    name: str
    time_zone: str
    prefix: str
    created_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None


class FeedIssued(FeedRead):
    """A feed with its secret URLs: shown on creation and rotation, and never again."""

    token: str
    url: str = Field(description="The feed's address (https in production)")
    webcal_url: str = Field(description="The same address as webcal://, which calendar apps open")
    google_url: str = Field(description="A link that adds the feed to Google Calendar")


class BusyImportRead(Schema):
    """What an import wrote: the busy intervals now blocking the expert, inside the window."""

    expert_id: uuid.UUID
    window_start: datetime
    window_end: datetime
    imported: int
    """Busy intervals written (overlapping events are merged)."""
    replaced: int
    """Intervals of the previous import that were removed."""
    busy: list[tuple[datetime, datetime]]
    released: list[uuid.UUID] = []
    """Bookings released because the busy time falls over them (``force=true`` only)."""
