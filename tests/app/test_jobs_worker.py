"""Workers as real processes: `copool serve` (SQLite: it solves runs itself) and `copool worker`
(PostgreSQL), killed with SIGKILL or stopped with SIGTERM mid-solve (issue 13).

Every wait polls the database or the process table until a condition holds, with a
generous timeout; nothing is proven by sleeping.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.allocation.models import AllocationRun
from app.auth.models import Role
from app.db import make_session_factory
from tests.app.booking_world import build
from tests.app.live_server import _free_port
from tests.app.test_allocation_rules import _expert

ROOT = Path(__file__).resolve().parents[2]
COPOOL = str(Path(sys.executable).with_name("copool"))
WEEK = {"window_start": "2027-03-01T06:00:00Z", "window_end": "2027-03-06T00:00:00Z"}
HORIZON = {"horizon_start": "2027-03-01T00:00:00Z", "horizon_end": "2027-03-06T00:00:00Z"}

pytestmark = pytest.mark.slow


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 120.0) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def alive(pid: int) -> bool:
    """Whether a process runs (a zombie counts as ended)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except FileNotFoundError:
        return False


def children(pid: int) -> list[int]:
    """The direct children of a process (Linux /proc)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return found


def solvers(pid: int) -> list[int]:
    """The solver children of a copool process (multiprocessing's spawned interpreters)."""
    found = []
    for child in children(pid):
        try:
            if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(child)
        except (FileNotFoundError, ProcessLookupError):  # it just ended
            continue
    return found


class Deployment:
    """copool processes on one database: servers and workers, stopped at the end."""

    def __init__(self, db_url: str, logs: Path) -> None:
        self.db_url = db_url
        self.logs = logs
        self.procs: list[subprocess.Popen[bytes]] = []
        self.env: dict[str, str] = {}
        """Settings of every process started from now on (``COPOOL_…``)."""

    def _start(self, args: list[str], name: str) -> subprocess.Popen[bytes]:
        env = {
            **os.environ, "COPOOL_DATABASE_URL": self.db_url, "COPOOL_LOG_LEVEL": "INFO",
            **self.env,
        }
        with (self.logs / f"{name}.log").open("wb") as sink:
            proc = subprocess.Popen(
                [COPOOL, *args], cwd=ROOT, env=env, stdout=sink, stderr=sink,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def serve(self, name: str) -> tuple[subprocess.Popen[bytes], httpx.Client]:
        """`copool serve` on a free port, once it answers."""
        port = _free_port()
        proc = self._start(["serve", "--port", str(port)], name)
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

        def up() -> bool:
            assert proc.poll() is None, self.log(name)
            try:
                return client.get("/health").status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, f"{name} to serve", timeout=60)
        return proc, client

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        """`copool worker` (PostgreSQL)."""
        return self._start(["worker"], name)

    def log(self, name: str) -> str:
        """The tail of a process's log."""
        return (self.logs / f"{name}.log").read_text(errors="replace")[-4000:]

    def stop_all(self) -> None:
        """Kill what is left; the logs go to stderr (shown when the test failed)."""
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for log in sorted(self.logs.glob("*.log")):
            sys.stderr.write(f"--- {log.name} ---\n{self.log(log.stem)}\n")


@pytest.fixture
def deployment(db_url: str, tmp_path: Path) -> Iterator[Deployment]:
    """Processes on the test database, killed after the test."""
    deployed = Deployment(db_url, tmp_path)
    yield deployed
    deployed.stop_all()


def busy_world(client: Any, world: Any) -> dict[str, str]:
    """More requests than four experts can serve in a week: the solver works until its time
    limit. Returns the planner's headers."""
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    for i in range(3):
        _expert(world, world.units["L"], f"x{i}", w.skill, level=4, rate=9000)
    for i in range(45):
        body = {
            "project_id": str(w.project), "title": f"r{i}",
            "duration_minutes": 35 + (i * 37) % 300, "priority": 1 + i % 5, **WEEK,
            "requirements": [{"kind": "skill", "skill_id": str(w.skill), "min_level": 3}],
        }
        answer = client.post("/requests", json=body, headers=w.requester)
        assert answer.status_code == 201, answer.text
    return lead


def start_run(client: Any, headers: dict[str, str], time_limit: int) -> str:
    """Start a run over the busy week; its id."""
    answer = client.post(
        "/allocation-runs",
        json={**HORIZON, "time_limit_s": time_limit, "slot_minutes": 5},
        headers=headers,
    )
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def run_row(app: Any, run_id: str) -> AllocationRun:
    """The run as stored."""
    with make_session_factory(app.state.engine)() as session:
        run = session.scalar(select(AllocationRun).where(AllocationRun.id == uuid.UUID(run_id)))
        assert run is not None
        return run


def solving(app: Any, run_id: str) -> AllocationRun | None:
    """The run once its solver has reported a solution (the solve is under way)."""
    run = run_row(app, run_id)
    if run.status == "running" and (run.progress or {}).get("best_objective") is not None:
        return run
    assert run.status in ("queued", "running"), (run.status, run.error)
    return None


def solver_of(proc: subprocess.Popen[bytes]) -> int:
    """The pid of the solver child of a copool process (spawned by multiprocessing)."""
    return int(wait_for(lambda: next(iter(solvers(proc.pid)), None), "the solver child"))


def _first_worker(deployment: Deployment, db_url: str) -> tuple[subprocess.Popen[bytes], httpx.Client]:
    """SQLite: the server solves itself; PostgreSQL: a server that enqueues and a worker."""
    server, http = deployment.serve("serve-a")
    if db_url.startswith("sqlite"):
        return server, http
    return deployment.worker("worker-a"), http


def test_kill_9_of_a_worker_mid_solve_its_run_is_retried_elsewhere(deployment, db_url, app, world):
    server_or_worker, http = _first_worker(deployment, db_url)
    lead = busy_world(http, world)
    run_id = start_run(http, lead, time_limit=15)
    wait_for(lambda: solving(app, run_id), "the first worker to be solving")
    child = solver_of(server_or_worker)

    server_or_worker.send_signal(signal.SIGKILL)
    server_or_worker.wait()
    wait_for(lambda: not alive(child), "the orphaned solver to die with its parent", timeout=10)
    assert run_row(app, run_id).status == "running"  # nobody has looked yet

    if db_url.startswith("sqlite"):
        _, http = deployment.serve("serve-b")  # the newcomer's restart
    else:
        deployment.worker("worker-b")  # another worker; nobody fetches the run
    done = wait_for(
        lambda: (r := run_row(app, run_id)).status in ("done", "failed") and r,
        "the run to be finished by the second worker",
    )
    assert done.status == "done", done.error
    assert done.attempts == 2 and done.owner == ""
    assert done.result is not None and done.result["checked"] is True
    again = http.post("/allocation-runs", json={**HORIZON, "time_limit_s": 1}, headers=lead)
    assert again.status_code == 202, again.text


def test_sigterm_hands_the_running_run_back_to_the_queue(deployment, db_url, app, world):
    first, http = _first_worker(deployment, db_url)
    lead = busy_world(http, world)
    run_id = start_run(http, lead, time_limit=120)
    wait_for(lambda: solving(app, run_id), "the worker to be solving")
    child = solver_of(first)

    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=60) is not None
    assert not alive(child)
    run = run_row(app, run_id)
    assert (run.status, run.owner, run.attempts) == ("queued", "", 0)
    assert run.progress is not None and "handed back" in run.progress["note"]


def test_copool_worker_runs_the_periodic_jobs_on_postgresql(deployment, db_url, app, world):
    if db_url.startswith("sqlite"):
        pytest.skip("on SQLite copool serve runs them (tests/app/test_jobs.py)")
    from litestar.testing import TestClient

    from app.bookings.models import Booking, Request
    from app.jobs.models import PeriodicJob
    from tests.app.test_jobs import _no_show_and_a_lapsed_request

    w = build(world)
    with TestClient(app=app) as client:  # serve on PostgreSQL runs no jobs itself
        booking_id, request_id = _no_show_and_a_lapsed_request(client, world, w)
    deployment.worker("worker")

    def job(name: str) -> PeriodicJob | None:
        with world.session() as s:
            row = s.scalar(select(PeriodicJob).where(PeriodicJob.name == name))
            return row if row is not None and row.last_status == "ok" else None

    recovered = wait_for(lambda: job("recover_runs"), "recover_runs (every 15 s)", timeout=60)
    assert recovered.last_result["stalled_jobs_retried"] == 0
    swept = wait_for(lambda: job("sweep"), "the sweep (every minute)", timeout=120)
    assert swept.last_result["released"] == 1 and swept.last_result["expired"] == 1
    with world.session() as s:
        assert s.get(Booking, uuid.UUID(booking_id)).status == "released"
        assert s.get(Request, uuid.UUID(request_id)).status == "expired"
