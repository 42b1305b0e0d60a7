"""HTTP route for admins: how background work is going."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from litestar import Controller
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.jobs import services
from app.problems import LIST
from app.routing import get
from app.schemas import Schema


class PeriodicJobRead(Schema):
    """A periodic job: its schedule and how its last run went."""

    name: str
    every_seconds: int
    cron: str
    last_started_at: datetime | None
    last_finished_at: datetime | None
    last_status: str
    """never, running, ok or failed."""
    last_result: dict[str, Any] | None
    last_error: str
    runs: int


class RunQueueRead(Schema):
    """Allocation runs waiting for a worker or being solved, across all units."""

    queued: int
    running: int
    oldest_queued_at: datetime | None


class JobReport(Schema):
    """Background work at a glance."""

    periodic: list[PeriodicJobRead]
    allocation_runs: RunQueueRead


class AdminJobController(Controller):
    """Background jobs (admins only)."""

    path = "/admin/jobs"
    tags = ["service"]

    @get("/", responses=LIST, summary="Each periodic job's last run, result and error")
    def report(self, actor: Actor, db_session: Session) -> JobReport:
        return JobReport.model_validate(services.job_report(db_session, actor))
