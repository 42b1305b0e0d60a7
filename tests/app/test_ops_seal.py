"""The audit chain is sealed every minute by a periodic job, with no command typed: what
was audited a moment ago is in the chain once the in-process worker has run it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from app.audit.chain import verify_audit
from app.audit.models import AuditEvent, audit_chain
from app.jobs import tasks
from app.jobs.local import LocalWorker
from app.jobs.models import PeriodicJob
from app.jobs.schedule import SCHEDULE
from app.settings import Settings
from tests.app.booking_world import build
from tests.app.test_jobs_worker import wait_for


def _counts(world: Any) -> tuple[int, int]:
    with world.session() as s:
        events = s.scalar(select(func.count()).select_from(AuditEvent)) or 0
        sealed = s.scalar(select(func.count()).select_from(audit_chain)) or 0
        return int(events), int(sealed)


def test_seal_audit_runs_every_minute() -> None:
    job = next(j for j in SCHEDULE if j.name == "seal_audit")
    assert job.every.total_seconds() == 60 and job.cron == "* * * * *"


def test_the_worker_seals_the_audit_log_without_a_command(
    world: Any, app: Any, settings: Settings
) -> None:
    build(world)  # units, users, catalog, agreement, project, funds: audited
    events, sealed = _counts(world)
    assert events > 0 and sealed == 0
    worker = LocalWorker(settings, periodic_after_s=0)  # what `copool serve` starts
    worker.start()
    try:
        wait_for(lambda: _counts(world)[1] >= events, "the periodic seal")
    finally:
        worker.stop()
    with world.session() as s:
        job = s.scalar(select(PeriodicJob).where(PeriodicJob.name == "seal_audit"))
        assert job is not None and job.last_status == "ok"
        assert job.last_result == {"sealed": events}
        assert verify_audit(s).ok
    rt = tasks.Runtime(settings)
    try:  # nothing new since: the next tick seals nothing and costs a head read
        assert tasks.run_periodic(rt, "seal_audit", tasks.seal_audit) == {"sealed": 0}
    finally:
        rt.close()
