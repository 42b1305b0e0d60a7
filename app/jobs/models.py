"""The last run of each periodic job, for admins (and, on SQLite, to decide who runs it)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.base import Base, DateTimeUTC


class PeriodicJob(Base):
    """One periodic job (``sweep``, ``purge_idempotency``, …) and how its last run went."""

    __tablename__ = "periodic_jobs"

    name: Mapped[str] = mapped_column(String(64), unique=True)
    last_started_at: Mapped[datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), default=None
    )
    last_finished_at: Mapped[datetime | None] = mapped_column(
        DateTimeUTC(timezone=True), default=None
    )
    last_status: Mapped[str] = mapped_column(String(16), default="never")
    """never, running, ok or failed."""
    last_result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    last_error: Mapped[str] = mapped_column(Text, default="")
    runs: Mapped[int] = mapped_column(Integer, default=0)
