"""The outbox (``notification_events``), what is delivered to whom (``notification_deliveries``),
webhook endpoints and each user's notification preferences."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from advanced_alchemy.types import GUID
from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.base import Base, DateTimeUTC


class Channel(enum.StrEnum):
    """How a notification reaches somebody."""

    INBOX = "inbox"
    EMAIL = "email"
    WEBHOOK = "webhook"


class DeliveryStatus(enum.StrEnum):
    """Where a delivery stands. ``pending`` rows are due at ``next_attempt_at`` (a worker that
    claims one pushes that instant out by the lease, so a dead worker's rows come due again)."""

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"
    DIGEST = "digest"
    """An e-mail held for the recipient's daily digest."""
    SKIPPED = "skipped"
    """Not deliverable by configuration (no SMTP host, endpoint disabled or deleted)."""


class NotificationEvent(Base):
    """Something a person would want to know, written in the same transaction as the change.

    ``id`` is stable: it is the webhook's ``webhook-id`` and the e-mail's ``Message-ID``, so a
    receiver deduplicates a delivery that arrives twice.
    """

    __tablename__ = "notification_events"

    kind: Mapped[str] = mapped_column(String(40), index=True)
    subject_type: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[uuid.UUID] = mapped_column(GUID)
    unit_id: Mapped[uuid.UUID | None] = mapped_column(GUID, default=None, index=True)
    """The first unit concerned (all of them are in ``unit_ids``)."""
    unit_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    actor_id: Mapped[uuid.UUID | None] = mapped_column(GUID, default=None)
    """Who made the change (never notified of it); null for the system."""
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class NotificationDelivery(Base):
    """One event to one recipient over one channel: a user's inbox or e-mail, or an endpoint."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
        Index("ix_notification_deliveries_inbox", "user_id", "channel", "read_at"),
    )

    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("notification_events.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    endpoint_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="SET NULL"), default=None, index=True
    )
    channel: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), default=None
    )
    last_error: Mapped[str] = mapped_column(Text, default="")
    delivered_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    read_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    """Inbox only: when the user marked it read."""

    event: Mapped[NotificationEvent] = relationship(lazy="raise")
    """Declared so that one flush writes an event before its deliveries."""


class WebhookEndpoint(Base):
    """An HTTPS URL that receives a unit's or a user's events, signed (Standard Webhooks).

    The secret is kept to sign with (it cannot be hashed); it is shown once. After a
    rotation the previous secret signs too until ``previous_secret_until``.
    """

    __tablename__ = "webhook_endpoints"

    unit_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("units.id"), default=None, index=True
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id"), default=None, index=True
    )
    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Kinds sent (empty: every kind)."""
    secret: Mapped[str] = mapped_column(String(100))
    previous_secret: Mapped[str | None] = mapped_column(String(100), default=None)
    previous_secret_until: Mapped[datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), default=None
    )
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    failing_since: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    """The first of the consecutive failures (null after a success)."""
    disabled_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    deleted_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class NotificationPreference(Base):
    """A user's choices: channels per kind (absent kinds: every channel) and the digest."""

    __tablename__ = "notification_preferences"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), unique=True)
    channels: Mapped[dict[str, list[str]]] = mapped_column(JSON, default=dict)
    email_digest: Mapped[bool] = mapped_column(Boolean, default=False)
    """E-mails wait for one daily message instead of going out one by one."""
