"""The PostgreSQL job queue: procrastinate on copool's own database.

``copool serve`` only enqueues (``ProcrastinateQueue``, a synchronous connector opened on
first use); ``copool worker`` runs the jobs (``run_worker``): allocation runs on the
``allocation`` queue and the periodic jobs of ``schedule.SCHEDULE`` on the ``periodic``
queue, each periodic tick deferred once across all workers by procrastinate.

Recovery: every worker records a procrastinate heartbeat and each run it solves a
``heartbeat_at``. The ``recover_runs`` job (every 15 s) takes back runs whose worker died
(queued again, or failed after ``run_max_attempts``), retries procrastinate jobs stalled on
dead workers, and makes sure every queued run has a job waiting (``queueing_lock`` per run,
so never two). A worker asked to stop (SIGTERM, Ctrl-C) kills its solves at once and hands
the runs back to the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
import uuid
from typing import Any

import procrastinate
from procrastinate import JobContext
from procrastinate.exceptions import AlreadyEnqueued
from procrastinate.utils import async_to_sync
from sqlalchemy.engine import make_url

from app.db import PSYCOPG_PGBOUNCER_ARGS
from app.jobs import tasks
from app.jobs.identity import this_owner
from app.jobs.schedule import SCHEDULE, Periodic
from app.settings import Settings

log = logging.getLogger("copool.jobs")
RUN_TASK = "run_allocation"
RUN_QUEUE = "allocation"
PERIODIC_QUEUE = "periodic"


def conninfo(database_url: str) -> str:
    """The libpq connection string of a SQLAlchemy ``postgresql+psycopg://`` URL."""
    url = make_url(database_url).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def pool_kwargs(settings: Settings) -> dict[str, Any]:
    """psycopg_pool arguments of procrastinate's connectors (behind PgBouncer: no prepared
    statements)."""
    return {"kwargs": dict(PSYCOPG_PGBOUNCER_ARGS)} if settings.pgbouncer else {}


def _run_lock(run_id: uuid.UUID | str) -> str:
    return f"run-{run_id}"


def defer_run(app: procrastinate.App, run_id: uuid.UUID | str) -> bool:
    """Put a job for the run on the queue unless one is waiting; whether one was added."""
    try:
        app.configure_task(RUN_TASK, queue=RUN_QUEUE, queueing_lock=_run_lock(run_id)).defer(
            run_id=str(run_id)
        )
    except AlreadyEnqueued:
        return False
    return True


class ProcrastinateQueue:
    """How ``copool serve`` enqueues on PostgreSQL: a job per committed run."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._app: procrastinate.App | None = None
        self._lock = threading.Lock()

    def _opened(self) -> procrastinate.App:
        with self._lock:
            if self._app is None:
                connector = procrastinate.SyncPsycopgConnector(
                    conninfo=conninfo(self.settings.database_url),
                    min_size=1,
                    max_size=4,
                    **pool_kwargs(self.settings),
                )
                self._app = procrastinate.App(connector=connector).open()
            return self._app

    def enqueue(self, run_id: uuid.UUID) -> None:
        """Defer the run's job (a committed run: the worker must see it). The run row is
        durable: if the queue cannot be reached now, a worker's ``recover_runs`` enqueues
        every queued run within 15 s, so the request does not fail for it."""
        try:
            defer_run(self._opened(), run_id)
        except Exception:
            log.exception("could not enqueue run %s; recover_runs will", run_id)

    def start(self) -> None:
        """Nothing to start: serve runs no jobs on PostgreSQL."""

    def stop(self) -> None:
        """Close the connection pool."""
        with self._lock:
            if self._app is not None:
                self._app.close()
                self._app = None


def build_app(rt: tasks.Runtime, concurrency: int = 1) -> procrastinate.App:
    """The worker's procrastinate app with copool's tasks and periodic schedule."""
    settings = rt.settings
    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo(settings.database_url),
        min_size=1,
        max_size=concurrency + 4,
        **pool_kwargs(settings),
    )
    app = procrastinate.App(connector=connector)

    @app.task(name=RUN_TASK, queue=RUN_QUEUE, pass_context=True)
    def run_allocation(context: JobContext, run_id: str) -> str:
        outcome = tasks.run_allocation(rt, uuid.UUID(run_id), context.should_abort)
        if outcome == "handed_back":
            defer_run(app, run_id)  # another worker (or this one, restarted) takes it
        return outcome

    for job in SCHEDULE:
        _register_periodic(app, rt, job, settings)
    return app


def _register_periodic(
    app: procrastinate.App, rt: tasks.Runtime, job: Periodic, settings: Settings
) -> None:
    run = _recover_retry_dispatch(app, settings) if job.name == "recover_runs" else job.body

    def body(timestamp: int) -> dict[str, Any] | None:
        return tasks.run_periodic(rt, job.name, run)

    body.__name__ = job.name
    task = app.task(name=job.name, queue=PERIODIC_QUEUE, queueing_lock=job.name)(body)
    app.periodic(cron=job.cron, periodic_id=job.name)(task)


def _recover_retry_dispatch(app: procrastinate.App, settings: Settings) -> tasks.PeriodicBody:
    """The queue's recovery: runs of dead workers taken back, procrastinate jobs stalled on
    dead workers retried, and a job waiting for every queued run."""

    def recover(rt: tasks.Runtime) -> dict[str, Any]:
        result = tasks.recover(rt)
        result["stalled_jobs_retried"] = _retry_stalled(app, settings)
        result["runs_enqueued"] = sum(defer_run(app, r) for r in tasks.queued_runs(rt))
        return result

    return recover


def _retry_stalled(app: procrastinate.App, settings: Settings) -> int:
    """Jobs left ``doing`` by a dead worker go back to ``todo`` (a run job then finds its
    run taken back and queued, or skips it); how many."""
    stalled = async_to_sync(
        app.job_manager.get_stalled_jobs, seconds_since_heartbeat=settings.run_stale_seconds
    )
    count = 0
    for job in stalled:
        log.warning("retrying job %s of a dead worker", job.id)
        async_to_sync(app.job_manager.retry_job, job)
        count += 1
    return count


async def _recover_and_dispatch(app: procrastinate.App, rt: tasks.Runtime) -> None:
    """At start: take back runs of dead workers and give every queued run a job."""
    await asyncio.to_thread(tasks.recover, rt)
    for run_id in await asyncio.to_thread(tasks.queued_runs, rt):
        deferrer = app.configure_task(RUN_TASK, queue=RUN_QUEUE, queueing_lock=_run_lock(run_id))
        with contextlib.suppress(AlreadyEnqueued):
            await deferrer.defer_async(run_id=str(run_id))


def run_worker(settings: Settings, *, concurrency: int, queues: list[str] | None) -> None:
    """Run jobs until SIGINT/SIGTERM (running runs are handed back to the queue).

    Two procrastinate workers share the process: ``concurrency`` runs at once on the
    ``allocation`` queue, and one periodic job at a time on its own, so a long solve never
    delays the sweep or the recovery of other workers' runs.
    """
    rt = tasks.Runtime(settings)
    app = build_app(rt, concurrency)
    wanted = queues or [RUN_QUEUE, PERIODIC_QUEUE]
    options: dict[str, Any] = {
        "shutdown_graceful_timeout": 0,
        "delete_jobs": "successful",  # the run rows and periodic_jobs keep the history
        "install_signal_handlers": False,
        "update_heartbeat_interval": min(5.0, settings.run_stale_seconds / 3),
        "stalled_worker_timeout": settings.run_stale_seconds,
    }

    async def main() -> None:
        async with app.open_async():
            await _recover_and_dispatch(app, rt)
            workers = [
                asyncio.create_task(
                    app.run_worker_async(
                        queues=[queue],
                        concurrency=concurrency if queue == RUN_QUEUE else 1,
                        name=f"{queue}@{this_owner()}",
                        **options,
                    )
                )
                for queue in wanted
            ]
            loop = asyncio.get_running_loop()
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(signum, lambda: [w.cancel() for w in workers])
            await asyncio.gather(*workers, return_exceptions=True)

    try:
        asyncio.run(main())
    finally:
        rt.close()
