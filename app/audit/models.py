"""The audit log: one append-only row per change (database triggers refuse UPDATE/DELETE)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.base import Base, DateTimeUTC


class AuditEvent(Base):
    """Who did what to which object, when, with the object's state before and after."""

    __tablename__ = "audit_events"

    at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), index=True)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    actor_unit_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(64), index=True)
    object_id: Mapped[str] = mapped_column(String(64), index=True)
    unit_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    """The unit whose data changed (for filtering)."""
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    reason: Mapped[str] = mapped_column(Text, default="")
