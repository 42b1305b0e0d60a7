"""The job functions, independent of the queue that runs them.

Each takes a ``Runtime`` (settings and an engine of the worker's own) and opens its own
sessions, like CLI commands. The same functions run on procrastinate (``app.jobs.queue``)
and on the in-process worker (``app.jobs.local``).
"""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

import ledger
from app.allocation import runner
from app.allocation import services as runs
from app.auth.actor import SYSTEM
from app.base import utcnow
from app.bookings import idempotency
from app.bookings import services as bookings
from app.db import make_engine, make_session_factory, read_only_engine, session_scope
from app.jobs.identity import this_owner
from app.jobs.models import PeriodicJob
from app.notifications import jobs as notifications
from app.settings import Settings

log = logging.getLogger("copool.jobs")


@dataclass
class Runtime:
    """What a job needs: the settings and an engine of the worker's own."""

    settings: Settings
    engine: Engine = field(init=False)

    def __post_init__(self) -> None:
        self.engine = make_engine(
            self.settings.database_url,
            pool_size=2,
            max_overflow=4,
            sqlite_busy_timeout_ms=self.settings.sqlite_busy_timeout_ms,
            pgbouncer=self.settings.pgbouncer,
        )
        self.factory: sessionmaker[Session] = make_session_factory(self.engine)
        self.read_factory = make_session_factory(read_only_engine(self.engine))

    @property
    def recovery(self) -> runs.Recovery:
        """The recovery rules of the settings."""
        return runs.Recovery(
            stale=timedelta(seconds=self.settings.run_stale_seconds),
            max_attempts=self.settings.run_max_attempts,
        )

    def close(self) -> None:
        """Close the engine's connections."""
        self.engine.dispose()


def run_allocation(rt: Runtime, run_id: uuid.UUID, should_stop: Callable[[], bool]) -> str:
    """Claim a queued run and solve it in a child process; what happened (``skipped`` when
    another worker has it, or it is no longer queued)."""
    owner = this_owner()
    with session_scope(rt.factory) as session:
        if not runs.claim_run(session, run_id, owner, utcnow()):
            return "skipped"
    outcome = runner.supervise(
        rt.settings.database_url,
        run_id,
        owner,
        num_workers=rt.settings.solver_workers,
        heartbeat=timedelta(seconds=rt.settings.run_heartbeat_seconds),
        should_stop=should_stop,
    )
    log.info("allocation run %s: %s", run_id, outcome)
    notifications.run_finished(rt, run_id)
    return outcome


def sweep(rt: Runtime) -> dict[str, Any]:
    """What ``copool bookings sweep`` does but the purge: release device no-shows, expire
    requests whose window passed and holds past their deadline."""
    with session_scope(rt.factory) as session:
        counts = bookings.sweep(session, SYSTEM)
        holds = ledger.expire_due_holds(session)
    return {**counts, "holds_expired": len(holds)}


def purge_idempotency(rt: Runtime) -> dict[str, Any]:
    """Delete idempotency records past their time to live."""
    ttl = timedelta(hours=rt.settings.idempotency_ttl_hours)
    with session_scope(rt.factory) as session:
        return {"purged": idempotency.purge(session, utcnow(), ttl)}


def recover(rt: Runtime) -> dict[str, Any]:
    """Take back runs whose worker died; lists the runs queued again."""
    with session_scope(rt.factory) as session:
        requeued = runs.recover_runs(session, rt.recovery)
    return {"requeued": [str(r) for r in requeued]}


class IntegrityProblem(Exception):
    """A daily integrity check found bad rows (its summary names the first)."""


def _integrity(report: Any) -> dict[str, Any]:
    if not report.ok:
        details = "; ".join(str(f) for f in report.findings[:10])
        raise IntegrityProblem(f"{report.summary()} — {details}")
    return {"ok": True, "counts": dict(report.counts), "summary": report.summary()}


def verify_ledger(rt: Runtime) -> dict[str, Any]:
    """What ``copool ledger verify`` checks; raises naming the first bad row."""
    from app.funds.verify import verify_ledger as verify

    with session_scope(rt.read_factory) as session:
        return _integrity(verify(session))


def verify_audit(rt: Runtime) -> dict[str, Any]:
    """What ``copool audit verify`` does: seal the settled audit rows, then check the chain."""
    from app.audit.chain import ChainBroken, seal_all
    from app.audit.chain import verify_audit as verify

    try:
        with session_scope(rt.factory) as session:
            seal_all(session)
    except ChainBroken:
        log.warning("audit chain not sealed: verify names the bad row")
    with session_scope(rt.read_factory) as session:
        return _integrity(verify(session))


def seal_audit(rt: Runtime) -> dict[str, Any]:
    """Link the settled audit rows into the hash chain, so that the unsealed tail (which only
    the database's refusals guard) is never much older than the job's interval."""
    from app.audit.chain import seal_all

    with session_scope(rt.factory) as session:
        return {"sealed": seal_all(session)}


def queued_runs(rt: Runtime) -> list[uuid.UUID]:
    """Every queued run, oldest first."""
    with session_scope(rt.read_factory) as session:
        return runs.queued_run_ids(session)


PeriodicBody = Callable[[Runtime], dict[str, Any]]


def run_periodic(
    rt: Runtime, name: str, body: PeriodicBody, *, started: bool = False
) -> dict[str, Any] | None:
    """Run a periodic job and record its start (unless ``claim_due`` did), result or error
    in ``periodic_jobs``."""
    if not started:
        _mark_started(rt, name)
    try:
        result = body(rt)
    except Exception as exc:
        log.exception("periodic job %s failed", name)
        _mark_finished(
            rt,
            name,
            "failed",
            None,
            f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}",
        )
        raise
    _mark_finished(rt, name, "ok", result, "")
    return result


def _job_row(session: Session, name: str) -> PeriodicJob:
    row = session.scalar(select(PeriodicJob).where(PeriodicJob.name == name).with_for_update())
    if row is None:
        try:
            with session.begin_nested():
                row = PeriodicJob(name=name)
                session.add(row)
        except IntegrityError:  # another worker made it first
            row = session.scalar(
                select(PeriodicJob).where(PeriodicJob.name == name).with_for_update()
            )
    assert row is not None
    return row


def _mark_started(rt: Runtime, name: str) -> None:
    with session_scope(rt.factory) as session:
        row = _job_row(session, name)
        row.last_started_at = utcnow()
        row.last_status = "running"


def _mark_finished(
    rt: Runtime, name: str, status: str, result: dict[str, Any] | None, error: str
) -> None:
    with session_scope(rt.factory) as session:
        row = _job_row(session, name)
        row.last_finished_at = utcnow()
        row.last_status = status
        row.last_result = result
        row.last_error = error
        row.runs = row.runs + 1


def claim_due(rt: Runtime, name: str, every: timedelta) -> bool:
    """Whether this process should run ``name`` now (its last start is ``every`` ago or
    more); marks it started, so of several processes on one database only one runs it."""
    now = utcnow()
    with session_scope(rt.factory) as session:
        row = _job_row(session, name)
        if row.last_started_at is not None and now - row.last_started_at < every:
            return False
        row.last_started_at = now
        row.last_status = "running"
        return True
