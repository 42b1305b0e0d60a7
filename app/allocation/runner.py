"""Solving one allocation run in a child process that cannot outlive its worker.

A worker (``copool worker``'s job, or the in-process worker of ``copool serve``) first
claims the run (``services.claim_run``: queued → running, with itself as ``owner``), then
calls ``supervise``: it spawns a fresh interpreter that snapshots, solves and stores the
plan (``execute``), and watches it. Every ``POLL_S`` the supervisor reads whether the run is
still its own (a cancel, or a recovery that gave the run to another worker, takes it
away) and kills the child at once if not; every heartbeat interval it stamps
``heartbeat_at`` so others can tell it is alive. A worker asked to stop hands the run back
(running → queued) after killing the child.

The child dies with its parent: ``PR_SET_PDEATHSIG`` (Linux) has the kernel send it
SIGKILL when the thread that spawned it ends, and a watchdog thread exits when its parent
pid changes (any POSIX system). Every write of the child is guarded by the run still being
running and owned by the same worker, so a late child never overwrites a cancelled or
re-assigned run.
"""

from __future__ import annotations

import ctypes
import logging
import math
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

import app.models  # noqa: F401  (every table: foreign-key column types resolve through them)
import scheduling
from app.allocation import reasons
from app.allocation.models import AllocationRun, RunStatus
from app.allocation.snapshot import Clock, build_instance, plan_to_result
from app.base import utcnow
from app.db import make_engine, make_session_factory, read_only_engine, session_scope

log = logging.getLogger("copool.allocation")
PROGRESS_EVERY_S = 0.5
POLL_S = 0.25
"""How often the supervisor looks for a cancel or a stop (a cancel stops a solve well
within 2 s)."""
_PR_SET_PDEATHSIG = 1


def _owned(ident: uuid.UUID, owner: str) -> Any:
    return (
        (AllocationRun.id == ident)
        & (AllocationRun.status == RunStatus.RUNNING.value)
        & (AllocationRun.owner == owner)
    )


def _write(factory: sessionmaker[Session], ident: uuid.UUID, holder: str, **values: Any) -> bool:
    """Update the run if it is still running and ``holder``'s; whether it was."""
    with session_scope(factory) as session:
        done = session.execute(update(AllocationRun).where(_owned(ident, holder)).values(**values))
        return bool(getattr(done, "rowcount", 0))


def execute(database_url: str, run_id: str, owner: str, num_workers: int = 2) -> str:
    """Snapshot, solve and store one claimed run (the body of the child); returns its status."""
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    ident = uuid.UUID(run_id)
    try:
        with session_scope(factory) as session:
            run = session.scalar(select(AllocationRun).where(_owned(ident, owner)))
            if run is None:
                return "skipped"
            instance, extras = build_instance(session, run)
            run.snapshot = {"instance": instance.model_dump(mode="json"), **extras}
            time_limit, slot, start = run.time_limit_s, run.slot_minutes, run.horizon_start
        plan = scheduling.solve(
            instance,
            time_limit_s=time_limit,
            num_workers=num_workers,
            seed=0,
            on_progress=_progress_writer(factory, ident, owner, len(instance.requests)),
        )
        clock = Clock(start, slot)
        result = plan_to_result(clock, plan)
        with session_scope(factory) as session:
            result["unallocated"] = reasons.render(session, clock, instance, plan)
        result["unallocated"].extend(_dependency_unmet(extras["dependency_unmet"]))
        stored = _write(
            factory,
            ident,
            owner,
            result=result,
            progress=_progress(
                "done",
                plan.objective.fulfilled_weight,
                plan.bound,
                plan.solve_seconds,
                placed=len({a.request_id for a in plan.assignments}),
                requests=len(instance.requests),
            ),
            status=RunStatus.DONE.value,
            finished_at=utcnow(),
            owner="",
        )
        return RunStatus.DONE.value if stored else "lost"
    except Exception as exc:  # the run must end in a state a user can read
        log.exception("allocation run %s failed", run_id)
        error = f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=5)}"
        _write(
            factory,
            ident,
            owner,
            status=RunStatus.FAILED.value,
            finished_at=utcnow(),
            error=error,
            owner="",
        )
        return RunStatus.FAILED.value
    finally:
        engine.dispose()


BOUND_STAGES = frozenset({"fulfilment", "bound", "lns"})
"""Stages whose bound bounds the fulfilled weight (later stages bound fairness, moves, …)."""


def _progress_writer(
    factory: sessionmaker[Session], ident: uuid.UUID, owner: str, requests: int
) -> Callable[[scheduling.Progress], None]:
    """Store the best solution so far (at most every ``PROGRESS_EVERY_S``): its fulfilled
    weight and placed requests, and the last bound on the fulfilled weight."""
    last = [0.0]
    best: dict[str, Any] = {"weight": None, "bound": None, "placed": None}

    def progress(p: scheduling.Progress) -> None:
        weight = p.objective if p.fulfilled_weight is None else p.fulfilled_weight
        if best["weight"] is None or weight >= best["weight"]:
            best["weight"] = weight
            best["placed"] = p.placed if p.placed is not None else best["placed"]
        if p.stage.split()[-1] in BOUND_STAGES and _finite(p.bound) is not None:
            best["bound"] = p.bound
        now = time.monotonic()
        if now - last[0] < PROGRESS_EVERY_S:
            return
        last[0] = now
        values = _progress(
            p.stage, best["weight"], best["bound"], p.elapsed_s, best["placed"], requests
        )
        _write(factory, ident, owner, progress=values)

    return progress


def _progress(
    stage: str,
    objective: float | None,
    bound: float | None,
    elapsed: float,
    placed: int | None = None,
    requests: int | None = None,
) -> dict[str, Any]:
    """A run's ``progress``: the best fulfilled weight, the bound on it, their gap, the
    requests placed of those asked, seconds since the solve began."""
    best, top = _finite(objective), _finite(bound)
    gap = None
    if best is not None and top is not None:
        gap = round(abs(top - best) / max(abs(top), 1e-9), 6) if top else 0.0
    return {
        "stage": stage,
        "best_objective": best,
        "bound": top,
        "gap": gap,
        "placed": placed,
        "requests": requests,
        "elapsed_s": round(elapsed, 3),
    }


def _dependency_unmet(request_ids: list[str]) -> list[dict[str, Any]]:
    message = "the request it depends on is neither in this run nor booked"
    return [
        {"request_id": rid, "reasons": [{"code": "dependency_unmet", "message": message}]}
        for rid in request_ids
    ]


def _finite(value: float | None) -> float | None:
    """JSON has no NaN or infinity (PostgreSQL refuses them): unknown is null."""
    return value if value is not None and math.isfinite(value) else None


def die_with_parent(parent_pid: int) -> None:
    """Make this process end when ``parent_pid`` does: PR_SET_PDEATHSIG, plus a watchdog."""
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the watchdog alone
            log.warning("PR_SET_PDEATHSIG unavailable; relying on the watchdog")
    if os.getppid() != parent_pid:  # the parent died before the signal was armed
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _child(parent_pid: int, database_url: str, run_id: str, owner: str, num_workers: int) -> None:
    die_with_parent(parent_pid)
    execute(database_url, run_id, owner, num_workers)


def spawn_solver(
    database_url: str, run_id: uuid.UUID, owner: str, num_workers: int
) -> multiprocessing.process.BaseProcess:
    """Start the child that solves a claimed run (spawn: a fresh interpreter, no inherited
    connections or threads)."""
    context = multiprocessing.get_context("spawn")
    child = context.Process(
        target=_child,
        args=(os.getpid(), database_url, str(run_id), owner, num_workers),
        name=f"copool-solve-{str(run_id)[:8]}",
        daemon=True,
    )
    child.start()
    return child


def supervise(
    database_url: str,
    run_id: uuid.UUID,
    owner: str,
    *,
    num_workers: int,
    heartbeat: timedelta,
    should_stop: Callable[[], bool],
) -> str:
    """Solve a claimed run in a child and watch it until it ends; returns what happened:
    ``done``/``failed`` (the child's result), ``cancelled`` (the run was taken away),
    ``handed_back`` (``should_stop`` said so) or ``crashed`` (the child died)."""
    engine = make_engine(database_url)
    factory = make_session_factory(engine)
    child = spawn_solver(database_url, run_id, owner, num_workers)
    try:
        return _watch(factory, child, run_id, owner, heartbeat, should_stop)
    finally:
        if child.is_alive():
            child.kill()
            child.join()
        engine.dispose()


def _watch(
    factory: sessionmaker[Session],
    child: multiprocessing.process.BaseProcess,
    run_id: uuid.UUID,
    owner: str,
    heartbeat: timedelta,
    should_stop: Callable[[], bool],
) -> str:
    reader = make_session_factory(read_only_engine(factory.kw["bind"]))
    last_beat = time.monotonic()
    while True:
        child.join(POLL_S)
        if not child.is_alive():
            return _after_exit(factory, child, run_id, owner)
        if should_stop():
            child.kill()
            child.join()
            hand_back(factory, run_id, owner)
            return "handed_back"
        if time.monotonic() - last_beat >= heartbeat.total_seconds():
            last_beat = time.monotonic()
            if _write(factory, run_id, owner, heartbeat_at=utcnow()):
                continue
        status = _status_if_not_owned(reader, run_id, owner)
        if status in (RunStatus.DONE.value, RunStatus.FAILED.value):
            child.join(5)  # the child wrote its result and is closing its connections
            return status
        if status is not None:  # cancelled, or given to another worker
            child.kill()
            child.join()
            return "cancelled"


def _status_if_not_owned(
    factory: sessionmaker[Session], run_id: uuid.UUID, owner: str
) -> str | None:
    """None while the run is running and ``owner``'s, else its status (``lost`` if gone)."""
    with session_scope(factory) as session:
        row = session.execute(
            select(AllocationRun.status, AllocationRun.owner).where(AllocationRun.id == run_id)
        ).one_or_none()
    if row is None:
        return "lost"
    if row.status == RunStatus.RUNNING.value and row.owner == owner:
        return None
    return str(row.status)


def _after_exit(
    factory: sessionmaker[Session],
    child: multiprocessing.process.BaseProcess,
    run_id: uuid.UUID,
    owner: str,
) -> str:
    """The child ended: its status, or failed with the reason when it left none."""
    error = f"the solver process ended without a result (exit code {child.exitcode})"
    if _write(
        factory,
        run_id,
        owner,
        status=RunStatus.FAILED.value,
        finished_at=utcnow(),
        error=error,
        owner="",
    ):
        return "crashed"
    with session_scope(factory) as session:
        status = session.scalar(select(AllocationRun.status).where(AllocationRun.id == run_id))
    return status or "lost"


def hand_back(factory: sessionmaker[Session], run_id: uuid.UUID, owner: str) -> bool:
    """Return a run this worker holds to the queue (a stop is not a failed attempt)."""
    return _write(
        factory,
        run_id,
        owner,
        status=RunStatus.QUEUED.value,
        owner="",
        heartbeat_at=None,
        attempts=AllocationRun.attempts - 1,
        progress={"stage": "queued", "note": "handed back by a worker that stopped"},
    )
