"""Calendar feed subscriptions: a secret URL per feed, of which only the SHA-256 is stored."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from advanced_alchemy.types import GUID
from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.base import Base, DateTimeUTC


class FeedKind(enum.StrEnum):
    """What a feed follows: one expert, one device, a unit, a project, or the owner's bookings."""

    EXPERT = "expert"
    DEVICE = "device"
    UNIT = "unit"
    PROJECT = "project"
    MINE = "mine"


class FeedSubscription(Base):
    """A calendar feed a user made. Its URL carries a token of 256 random bits, shown once.

    The feed always shows what its owner may see *when it is fetched* (their current roles
    and unit, the current agreements), never what they could see when they made it.
    ``target_id`` names the expert, device, unit or project (null for ``mine``).
    """

    __tablename__ = "feed_subscriptions"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    target_id: Mapped[uuid.UUID | None] = mapped_column(GUID, default=None)
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64))
    """Zone clients are asked to display the feed in (X-WR-TIMEZONE)."""
    prefix: Mapped[str] = mapped_column(String(16))
    """The token's first characters, so a human can tell feeds apart; not enough to fetch one."""
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    rotated_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
