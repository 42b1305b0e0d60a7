"""API shapes of webhooks, the inbox and notification preferences."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from app.notifications import kinds
from app.notifications.models import Channel
from app.schemas import Schema

KindName = str


def _known_kinds(value: list[str]) -> list[str]:
    unknown = [k for k in value if k not in kinds.UNIT_ROLES]
    if unknown:
        raise ValueError(f"unknown event kinds {unknown}; known: {list(kinds.ALL)}")
    return list(dict.fromkeys(value))


class WebhookCreate(Schema):
    """A new endpoint: the caller's own, or a unit's (``unit_id``, for its unit managers)."""

    url: str = Field(
        min_length=1, max_length=2000, description="https (http only to loopback when allowed)"
    )
    events: list[str] = Field(
        default_factory=list, max_length=50, description="Event kinds sent; empty: every kind"
    )
    description: str = Field(default="", max_length=200)
    unit_id: uuid.UUID | None = Field(
        default=None, description="A unit's endpoint; omit for the caller's own"
    )

    _events = field_validator("events")(_known_kinds)


class WebhookUpdate(Schema):
    """What a ``PATCH`` may change; ``active: true`` re-enables a disabled endpoint."""

    url: str | None = Field(default=None, min_length=1, max_length=2000)
    events: list[str] | None = Field(default=None, max_length=50)
    description: str | None = Field(default=None, max_length=200)
    active: bool | None = None

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _known_kinds(value)


class WebhookRead(Schema):
    """An endpoint without its secret."""

    id: uuid.UUID
    unit_id: uuid.UUID | None
    user_id: uuid.UUID | None
    url: str
    description: str
    events: list[str]
    active: bool
    consecutive_failures: int
    disabled_at: datetime | None
    previous_secret_until: datetime | None
    created_at: datetime


class WebhookIssued(WebhookRead):
    """An endpoint with its signing secret: shown on creation and rotation, never again."""

    secret: str = Field(
        description="Standard Webhooks secret (whsec_…): verify webhook-signature with it"
    )


class DeliveryRead(Schema):
    """One attempt series of one event to one endpoint (the delivery log)."""

    id: uuid.UUID
    event_id: uuid.UUID
    kind: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_error: str
    delivered_at: datetime | None
    created_at: datetime


class NotificationRead(Schema):
    """An inbox entry: the event and whether it was read."""

    id: uuid.UUID
    event_id: uuid.UUID
    kind: str
    subject_type: str
    subject_id: uuid.UUID
    unit_id: uuid.UUID | None
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class ReadAll(Schema):
    """How many inbox entries were marked read."""

    marked: int


class Preferences(Schema):
    """Channels per event kind (kinds left out: every channel) and the daily e-mail digest."""

    channels: dict[str, list[Channel]] = Field(default_factory=dict)
    email_digest: bool = False

    @field_validator("channels")
    @classmethod
    def _kinds(cls, value: dict[str, list[Channel]]) -> dict[str, list[Channel]]:
        _known_kinds(list(value))
        return {k: list(dict.fromkeys(v)) for k, v in value.items()}
