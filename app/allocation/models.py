"""An allocation run: what it was asked, where it stands, what it found, what was applied."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.base import Base, DateTimeUTC


class RunStatus(enum.StrEnum):
    """queued → running → done (or failed); queued or running → cancelled; a running run
    whose worker died goes back to queued (or failed after its last attempt); a done run
    may be applied once."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


ACTIVE_STATUSES = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
"""Runs that count against a unit's quota: waiting for a worker or being solved."""


class AllocationRun(Base):
    """One optimisation over a snapshot of open requests, calendars, bookings and budgets.

    ``snapshot`` keeps the solver's instance and the maps from its string ids back to
    database ids; ``result`` the plan in UTC terms; ``progress`` the latest improving
    solution (best objective, bound, elapsed) while it runs.
    """

    __tablename__ = "allocation_runs"

    created_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    """The unit of the user who started the run (who may read and apply it)."""
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.QUEUED.value, index=True)
    horizon_start: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    horizon_end: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    slot_minutes: Mapped[int] = mapped_column(Integer, default=15)
    time_limit_s: Mapped[int] = mapped_column(Integer, default=10)
    project_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    unit_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    emergency: Mapped[bool] = mapped_column(Boolean, default=False)
    """May displace lower-priority confirmed bookings for emergency requests."""
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str] = mapped_column(Text, default="")
    started_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    finished_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    applied_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    apply_report: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """How many times a worker took the run (a worker that dies mid-solve costs one)."""
    owner: Mapped[str] = mapped_column(String(200), default="", server_default="")
    """The worker solving it (``host:pid:boot``), empty unless running."""
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    """Last sign of life of its worker while running; a stale one means the worker died."""
