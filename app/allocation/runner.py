"""Running allocations in worker processes, never inside a request handler.

A bounded ``ProcessPoolExecutor`` per app process runs ``execute(database_url, run_id)``:
it opens its own engine, snapshots the database into an instance, solves it, writes
progress while it improves (at most every ``PROGRESS_EVERY_S``), and stores the plan.
A run that crashes is marked failed with the error; the solver itself always returns a
checked plan (its greedy fallback) when it returns at all.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import time
import traceback
import uuid
from concurrent.futures import Future, ProcessPoolExecutor
from datetime import timedelta

from sqlalchemy import update

import app.models  # noqa: F401  (every table: foreign-key column types resolve through them)
import scheduling
from app.allocation import reasons
from app.allocation.models import AllocationRun, RunStatus
from app.allocation.snapshot import Clock, build_instance, plan_to_result
from app.base import utcnow
from app.db import make_engine, make_session_factory, session_scope

log = logging.getLogger("copool.allocation")
PROGRESS_EVERY_S = 0.5


def execute(database_url: str, run_id: str, num_workers: int = 2) -> str:
    """Snapshot, solve and store one run (the body of a worker process); returns its status."""
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    ident = uuid.UUID(run_id)
    try:
        with session_scope(factory) as session:
            run = session.get(AllocationRun, ident)
            if run is None or run.status != RunStatus.QUEUED.value:
                return "skipped"
            run.status = RunStatus.RUNNING.value
            run.started_at = utcnow()
            instance, extras = build_instance(session, run)
            run.snapshot = {"instance": instance.model_dump(mode="json"), **extras}
            time_limit, slot, start = run.time_limit_s, run.slot_minutes, run.horizon_start
        last = [0.0]

        def progress(p: scheduling.Progress) -> None:
            now = time.monotonic()
            if now - last[0] < PROGRESS_EVERY_S:
                return
            last[0] = now
            with session_scope(factory) as s:
                s.execute(
                    update(AllocationRun)
                    .where(AllocationRun.id == ident)
                    .values(
                        progress={
                            "stage": p.stage,
                            "best_objective": _finite(p.objective),
                            "bound": _finite(p.bound),
                            "elapsed_s": round(p.elapsed_s, 3),
                        }
                    )
                )

        plan = scheduling.solve(
            instance, time_limit_s=time_limit, num_workers=num_workers, seed=0, on_progress=progress
        )
        clock = Clock(start, slot)
        result = plan_to_result(clock, plan)
        with session_scope(factory) as session:
            result["unallocated"] = reasons.render(session, clock, instance, plan)
        for request_id in extras["dependency_unmet"]:
            result["unallocated"].append(
                {
                    "request_id": request_id,
                    "reasons": [
                        {
                            "code": "dependency_unmet",
                            "message": "the request it depends on is neither in this run nor booked",
                        }
                    ],
                }
            )
        with session_scope(factory) as session:
            run = session.get(AllocationRun, ident)
            assert run is not None
            run.result = result
            run.progress = {
                "stage": "done",
                "best_objective": plan.objective.fulfilled_weight,
                "bound": plan.bound,
                "elapsed_s": plan.solve_seconds,
            }
            run.status = RunStatus.DONE.value
            run.finished_at = utcnow()
        return RunStatus.DONE.value
    except Exception as exc:  # the run must end in a state a user can read
        log.exception("allocation run %s failed", run_id)
        with session_scope(factory) as session:
            session.execute(
                update(AllocationRun)
                .where(AllocationRun.id == ident)
                .values(
                    status=RunStatus.FAILED.value,
                    finished_at=utcnow(),
                    error=f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}",
                )
            )
        return RunStatus.FAILED.value
    finally:
        engine.dispose()


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity (PostgreSQL refuses them): unknown is null."""
    return value if value is not None and math.isfinite(value) else None


class RunPool:
    """At most ``size`` runs at once in this app process; more wait in the queue."""

    def __init__(self, database_url: str, size: int, solver_workers: int) -> None:
        self.database_url = database_url
        self.size = size
        self.solver_workers = solver_workers
        self._executor: ProcessPoolExecutor | None = None

    def submit(self, run_id: uuid.UUID) -> Future[str]:
        """Queue a run for a worker process."""
        if self._executor is None:
            # spawn: a fresh interpreter, no inherited DB connections or threads
            self._executor = ProcessPoolExecutor(
                max_workers=self.size, mp_context=multiprocessing.get_context("spawn")
            )
        return self._executor.submit(execute, self.database_url, str(run_id), self.solver_workers)

    def shutdown(self) -> None:
        """Stop the workers with the app: queued runs are dropped and running ones killed
        (they show as failed once stale), so a shutdown never waits out a long solve."""
        if self._executor is not None:
            processes = list((self._executor._processes or {}).values())
            self._executor.shutdown(wait=False, cancel_futures=True)
            for process in processes:
                process.terminate()
            self._executor = None


def stale_after(run: AllocationRun) -> timedelta:
    """How long a queued or running run may take before it is reported failed."""
    return timedelta(seconds=run.time_limit_s * 3 + 600)
