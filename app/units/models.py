"""Units: the agencies and departments that lend and borrow."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.base import Base, DateTimeUTC


class Unit(Base):
    """An agency or department. Users belong to one; resources have one as home."""

    __tablename__ = "units"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC", server_default="UTC")
    """The IANA zone the unit's people read times in (e-mails, explanations)."""
    retired_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
