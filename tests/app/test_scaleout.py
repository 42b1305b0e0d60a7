"""The scale-out goal of issue 13, as written: on PostgreSQL, 2 ``copool serve`` processes
and 2 ``copool worker`` processes share one database; 20 allocation runs go in through both
servers; one worker is killed with SIGKILL mid-solve. Every run ends (``done``, or ``failed``
with a reason after its retries), none stays queued or running, no solver process of this
deployment is left anywhere, and applying every plan (concurrently, through both servers)
leaves no two live bookings of one resource overlapping.

The unit's quota of active runs is raised with the real setting ``COPOOL_MAX_ACTIVE_RUNS``.
Waits poll the database or /proc until a condition holds; nothing is proven by sleeping.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from app.allocation.models import AllocationRun
from app.bookings.models import LIVE_SQL
from tests.app.live_server import together
from tests.app.test_jobs_worker import (
    Deployment,
    alive,
    busy_world,
    deployment,
    run_row,
    solvers,
    solving,
    start_run,
    wait_for,
)

__all__ = ["deployment"]  # the fixture, shared with tests/app/test_jobs_worker.py

pytestmark = pytest.mark.slow

RUNS = 20
TIME_LIMIT_S = 2

OVERLAPS = text(
    f"""
    SELECT count(*) FROM bookings a JOIN bookings b
      ON a.resource_id = b.resource_id AND a.id < b.id
     AND a.start < b."end" AND b.start < a."end"
     WHERE a.{LIVE_SQL} AND b.{LIVE_SQL}
    """
)


def deployment_solvers(db_url: str) -> list[int]:
    """Every solver process on this machine that belongs to this test's database.

    A solver is a multiprocessing child (``spawn_main`` in its command line) and inherits
    its worker's environment, so ``COPOOL_DATABASE_URL`` names the deployment it came from,
    whoever its parent is now (a killed worker's orphans are re-parented)."""
    wanted = f"COPOOL_DATABASE_URL={db_url}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if b"spawn_main" not in (proc / "cmdline").read_bytes():
                continue
            if wanted in (proc / "environ").read_bytes().split(b"\0") and alive(int(proc.name)):
                found.append(int(proc.name))
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return found


def kill_a_worker_mid_solve(
    app: Any, workers: list[subprocess.Popen[bytes]], ids: list[str]
) -> list[int]:
    """SIGKILL the first worker seen solving (a run has a solution in progress); the pids
    of the solver children it had."""

    def some_worker_solving() -> tuple[subprocess.Popen[bytes], list[int]] | None:
        for proc in workers:
            children = solvers(proc.pid)
            if children and any(solving(app, run_id) for run_id in ids):
                return proc, children
        return None

    victim, children = wait_for(some_worker_solving, "a worker to be solving")
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    return list(children)


def apply_all(clients: list[httpx.Client], lead: dict[str, str], ids: list[str]) -> list[int]:
    """Apply every run at once through both servers; each answer's status (a 503 — lock
    timeout or deadlock — is retried, as its Retry-After asks)."""

    def apply(i: int, client: httpx.Client) -> int:
        for _ in range(5):
            answer = client.post(f"/allocation-runs/{ids[i]}/apply", headers=lead)
            if answer.status_code != 503:
                return answer.status_code
        return 503

    return together(len(ids), apply, clients)


def test_20_runs_2_servers_2_workers_one_killed_every_run_ends_and_applies(
    deployment: Deployment, db_url: str, app: Any, world: Any
) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("several servers and workers share one PostgreSQL (SQLite: one host)")
    deployment.env = {"COPOOL_MAX_ACTIVE_RUNS": str(RUNS), "COPOOL_SOLVER_WORKERS": "1"}
    _, http_a = deployment.serve("serve-a")
    _, http_b = deployment.serve("serve-b")
    workers = [deployment.worker("worker-a"), deployment.worker("worker-b")]
    lead = busy_world(http_a, world)
    servers = [http_a, http_b]
    ids = [start_run(servers[i % 2], lead, time_limit=TIME_LIMIT_S) for i in range(RUNS)]

    orphans = kill_a_worker_mid_solve(app, workers, ids)
    wait_for(lambda: not any(alive(p) for p in orphans), "the killed worker's solver to die",
             timeout=10)
    deployment.worker("worker-c")  # the killed worker, restarted (systemd does it)

    def all_ended() -> list[AllocationRun] | None:
        rows = [run_row(app, run_id) for run_id in ids]
        return rows if all(r.status in ("done", "failed") for r in rows) else None

    ended = wait_for(all_ended, "every run to end", timeout=240)
    assert sum(r.status == "done" for r in ended) == RUNS, [r.error for r in ended]
    assert sum(r.attempts for r in ended) > RUNS  # the killed worker's run was solved again
    # a child exits just after writing its plan: none of this deployment may stay
    wait_for(lambda: not deployment_solvers(db_url), "no solver process to remain", timeout=30)

    clients = [httpx.Client(base_url=servers[i % 2].base_url, timeout=60) for i in range(RUNS)]
    try:
        assert apply_all(clients, lead, ids) == [200] * RUNS
    finally:
        for client in clients:
            client.close()
    with app.state.engine.connect() as conn:
        assert conn.execute(OVERLAPS).scalar_one() == 0
        live = conn.execute(text(f"SELECT count(*) FROM bookings WHERE {LIVE_SQL}"))
        assert live.scalar_one() > 0  # the plans did book something
