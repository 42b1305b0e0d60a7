"""What admins see of background work: each periodic job's last run, and the run queue."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.allocation.models import ACTIVE_STATUSES, AllocationRun
from app.auth.actor import Actor
from app.errors import PermissionDenied
from app.jobs.models import PeriodicJob
from app.jobs.schedule import SCHEDULE


def job_report(session: Session, actor: Actor) -> dict[str, Any]:
    """Every periodic job with its schedule and last run, and the runs queued or running."""
    if not actor.is_admin:
        raise PermissionDenied("the job report is for admins")
    rows = {row.name: row for row in session.scalars(select(PeriodicJob))}
    periodic = []
    for job in SCHEDULE:
        row = rows.get(job.name)
        periodic.append(
            {
                "name": job.name,
                "every_seconds": int(job.every.total_seconds()),
                "cron": job.cron,
                "last_started_at": row.last_started_at if row else None,
                "last_finished_at": row.last_finished_at if row else None,
                "last_status": row.last_status if row else "never",
                "last_result": row.last_result if row else None,
                "last_error": row.last_error if row else "",
                "runs": row.runs if row else 0,
            }
        )
    counts = dict(
        session.execute(
            select(AllocationRun.status, func.count())
            .where(AllocationRun.status.in_(ACTIVE_STATUSES))
            .group_by(AllocationRun.status)
        ).all()
    )
    oldest = session.scalar(
        select(func.min(AllocationRun.created_at)).where(AllocationRun.status == "queued")
    )
    return {
        "periodic": periodic,
        "allocation_runs": {
            "queued": counts.get("queued", 0),
            "running": counts.get("running", 0),
            "oldest_queued_at": oldest,
        },
    }
