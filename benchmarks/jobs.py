"""Benchmark: allocation-run throughput with 1 and then 2 `copool worker` processes on PostgreSQL.

    python benchmarks/jobs.py --postgres-url postgresql+psycopg://copool@127.0.0.1:55432/postgres
    python benchmarks/jobs.py --quick --json var/bench/jobs.json

A fresh database gets one borrowing unit, one lending unit under an agreement, a funded
project and ``--pools`` pools (1), each a skill with 2 experts and 10 requests for it in
one week: a pool CP-SAT proves optimal after a few CPU seconds (measured: 3 s of solve,
about 5 s of CPU per run with the snapshot and the spawn). More pools per run are not more
independent work: the solver bundles small pools into one model, which it no longer proves
optimal (4 pools ran into the time limit), so a run stays one pool. One
``copool serve`` takes the runs; the same ``--runs`` runs (16; ``--quick``: 4) are then
solved twice: by one ``copool worker --concurrency 1``, and by two of them, each worker
pinned to a CPU of its own (``os.sched_setaffinity``; its solver children inherit it) when
the machine has two. Every solve is single-threaded and seeded (``COPOOL_SOLVER_WORKERS=1``)
and ends by proving its plan optimal, far below its time limit (600 s, the most a run may
ask), so a run's wall time is the CPU it needs: the measure is CPU-bound, not a time limit
running out (a run that reaches the limit on a machine too busy is counted in
``time_limited``). ``--quick``: 4 of the same runs (8-request runs were mostly overhead).

Reported per phase: wall time from the first submission to the last run's end, runs per
minute, each run's solve seconds (``finished_at - started_at``), the workers' CPU seconds
(their own and their reaped solver children's, from /proc), and the machine's CPU count
and load average before the phase (the machine may be shared: CPU seconds say what the
solves cost, wall time also says what the neighbours took). Goal: 2 workers ≥ 1.7× faster.
PostgreSQL comes from ``--postgres-url`` or ``COPOOL_BENCH_POSTGRES_URL``; without it the
benchmark says so and exits 0 (``copool worker`` needs PostgreSQL).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, Python puts benchmarks/ first on sys.path, where benchmarks/ledger.py
# would shadow the ledger package: drop it, and put the project root first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

import ledger  # noqa: E402
from app.agreements.models import AgreementScope  # noqa: E402
from app.agreements.schemas import AgreementCreate  # noqa: E402
from app.agreements.services import create_agreement  # noqa: E402
from app.auth import services as auth  # noqa: E402
from app.auth.actor import SYSTEM  # noqa: E402
from app.auth.models import Role  # noqa: E402
from app.auth.schemas import UserCreate  # noqa: E402
from app.catalog import services as catalog  # noqa: E402
from app.catalog.schemas import ExpertCreate, SkillCreate, SkillLevel  # noqa: E402
from app.db import make_engine, make_session_factory, session_scope  # noqa: E402
from app.projects.schemas import ProjectCreate, ShareTerm  # noqa: E402
from app.projects.services import create_project  # noqa: E402
from app.units.schemas import UnitCreate  # noqa: E402
from app.units.services import create_unit  # noqa: E402
from benchmarks._databases import fresh_postgres  # noqa: E402

GOAL_SPEEDUP = 1.7
WEEK = {"window_start": "2027-03-01T06:00:00Z", "window_end": "2027-03-06T00:00:00Z"}
HORIZON = {"horizon_start": "2027-03-01T00:00:00Z", "horizon_end": "2027-03-06T00:00:00Z"}
HOURS = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


@dataclass(frozen=True)
class Size:
    """How much work one run is, and how many runs a phase solves."""

    runs: int
    pools: int
    experts: int = 2
    """Per pool."""
    requests: int = 10
    """Per pool."""
    time_limit_s: int = 600
    """The most a run may ask: a solve that reaches it was not CPU-bound (flagged)."""


FULL = Size(runs=16, pools=1)
QUICK = Size(runs=4, pools=1)


def seed(url: str, size: Size) -> tuple[str, list[str], uuid.UUID]:
    """Units, an agreement, a funded project, the pools' experts; the lead's API key, the
    pools' skills, the project."""
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            borrower = create_unit(s, SYSTEM, UnitCreate(name="Borrowing unit", code="BORR")).id
            lender = create_unit(s, SYSTEM, UnitCreate(name="Lending unit", code="LEND")).id
            lead = auth.create_user(s, SYSTEM, UserCreate(
                unit_id=borrower, name="Lead", email="lead@borr.example.org",
                roles=[Role.REQUESTER, Role.PROJECT_LEAD]))
            token = auth.issue_key(s, SYSTEM, lead.id, "bench")[1]
            create_agreement(s, SYSTEM, AgreementCreate(
                lender_unit_id=lender, borrower_unit_id=borrower, scope=AgreementScope.ALL,
                requires_approval=False, valid_from=date(2020, 1, 1)))
            project = create_project(s, SYSTEM, ProjectCreate(
                name="Benchmark", code="BENCH", lead_unit_id=borrower, lead_user_id=lead.id,
                start_date=date(2020, 1, 1), end_date=date(2035, 12, 31), currency="EUR",
                shares=[ShareTerm(unit_id=borrower, share_bp=10_000)], member_ids=[lead.id])).id
            ledger.contribute(s, project, borrower, ledger.Money(10**10, "EUR"), key="bench")
            skills = []
            for pool in range(size.pools):
                skill = catalog.create_skill(s, SYSTEM, SkillCreate(name=f"Skill {pool}")).id
                skills.append(str(skill))
                for i in range(size.experts):
                    catalog.create_expert(s, SYSTEM, ExpertCreate(
                        unit_id=lender, name=f"Expert {pool}.{i}", time_zone="Europe/Berlin",
                        working_hours=HOURS, skills=[SkillLevel(skill_id=skill, level=4)],
                        hourly_rate=9000))
            return token, skills, project
    finally:
        engine.dispose()


def ask(client: httpx.Client, size: Size, skills: list[str], project: uuid.UUID) -> None:
    """Each pool's requests for the week (durations and priorities spread by a fixed rule,
    the same in every pool)."""
    for skill in skills:
        for i in range(size.requests):
            answer = client.post("/requests", json={
                "project_id": str(project), "title": f"r{i}",
                "duration_minutes": 35 + (i * 37) % 300, "priority": 1 + i % 5, **WEEK,
                "requirements": [{"kind": "skill", "skill_id": skill, "min_level": 3}],
            })
            answer.raise_for_status()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _env(url: str, size: Size) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPOOL_")}
    env.update({
        "COPOOL_DATABASE_URL": url, "COPOOL_SOLVER_WORKERS": "1", "COPOOL_LOG_LEVEL": "WARNING",
        "COPOOL_MAX_ACTIVE_RUNS": str(size.runs),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    })
    return env


def _copool(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-c", "from app.cli import main; main()", *args]
    with log.open("ab") as sink:
        return subprocess.Popen(command, cwd=log.parent, env=env, stdout=sink, stderr=sink,
                                start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)


@contextmanager
def serve(env: dict[str, str], log: Path) -> Iterator[str]:
    """``copool serve`` on a free port; its base URL once it answers."""
    port = _free_port()
    proc = _copool(["serve", "--host", "127.0.0.1", "--port", str(port)], env, log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"copool serve did not start: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        yield base
    finally:
        _stop(proc)


def cpu_seconds(pid: int) -> float:
    """CPU a process used: its own and that of the children it has reaped (Linux /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The direct children of a process (Linux /proc; a zombie counts until reaped)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def pin(pid: int, cpu: int) -> bool:
    """Pin a process (and the children it starts later) to one CPU, where allowed."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return False
    os.sched_setaffinity(pid, {allowed[cpu % len(allowed)]})
    return True


def workers_up(engine: Any, count: int) -> bool:
    """Whether ``count`` procrastinate workers have beaten (each listens for jobs then)."""
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM procrastinate_workers")).scalar_one()) >= count


def runs_of(engine: Any, ids: list[str]) -> list[Any]:
    """Status, attempts and solve span of the runs."""
    with engine.connect() as conn:
        return list(conn.execute(text(
            "SELECT status, attempts, started_at, finished_at, error FROM allocation_runs "
            "WHERE id::text = ANY(:ids)"), {"ids": ids}))


def phase(url: str, base: str, token: str, size: Size, n_workers: int, logs: Path) -> dict[str, Any]:
    """Solve ``size.runs`` runs with ``n_workers`` pinned workers; the figures."""
    env = _env(url, size)
    engine = create_engine(url)
    load_before = os.getloadavg()
    with ExitStack() as stack:
        procs = []
        for i in range(n_workers):
            proc = _copool(["worker", "--concurrency", "1", "--queue", "allocation"], env,
                           logs / f"worker-{n_workers}-{i}.log")
            stack.callback(_stop, proc)
            procs.append(proc)
        pinned = all([pin(proc.pid, i) for i, proc in enumerate(procs)])
        deadline = time.monotonic() + 60
        while not workers_up(engine, n_workers):
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("the workers did not start (see their logs)")
            time.sleep(0.2)
        cpu_before = sum(cpu_seconds(p.pid) for p in procs)
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"})
        began = time.monotonic()
        ids = []
        for _ in range(size.runs):
            answer = client.post("/allocation-runs", json={
                **HORIZON, "time_limit_s": size.time_limit_s, "slot_minutes": 5})
            answer.raise_for_status()
            ids.append(answer.json()["id"])
        while True:
            rows = runs_of(engine, ids)
            if all(r.status in ("done", "failed", "cancelled") for r in rows):
                break
            time.sleep(0.1)
        wall = time.monotonic() - began
        # a solver exits just after writing its plan: its CPU counts once its worker reaped it
        deadline = time.monotonic() + 30
        while any(children(p.pid) for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
        cpu = sum(cpu_seconds(p.pid) for p in procs) - cpu_before
    engine.dispose()
    solves = [(r.finished_at - r.started_at).total_seconds() for r in rows]
    return {
        "workers": n_workers, "runs": len(rows), "pinned": pinned,
        "done": sum(r.status == "done" for r in rows),
        "errors": sorted({r.error.splitlines()[0] for r in rows if r.error}),
        "wall_s": round(wall, 2), "runs_per_min": round(60 * len(rows) / wall, 2),
        "solve_s_mean": round(statistics.mean(solves), 2),
        "solve_s_max": round(max(solves), 2), "cpu_s": round(cpu, 2),
        "time_limited": sum(s >= size.time_limit_s for s in solves),
        "load_before": [round(x, 2) for x in load_before],
    }


def print_table(phases: list[dict[str, Any]], speedup: float) -> None:
    """The phases side by side, then the verdict."""
    print(f"{'workers':>7} {'runs':>4} {'done':>4} {'wall s':>8} {'runs/min':>8} "
          f"{'solve s mean':>12} {'max':>6} {'CPU s':>7} {'pinned':>6} load before")
    for p in phases:
        print(f"{p['workers']:>7} {p['runs']:>4} {p['done']:>4} {p['wall_s']:>8.2f} "
              f"{p['runs_per_min']:>8.2f} {p['solve_s_mean']:>12.2f} {p['solve_s_max']:>6.2f} "
              f"{p['cpu_s']:>7.2f} {'yes' if p['pinned'] else 'no':>6} "
              f"{' '.join(str(x) for x in p['load_before'])}")
        if p["time_limited"]:
            print(f"  {p['time_limited']} runs reached the time limit: not CPU-bound, the "
                  "machine was too busy")
        for error in p["errors"]:
            print(f"  error: {error}")
    verdict = "met" if speedup >= GOAL_SPEEDUP else "NOT met"
    print(f"speedup 2 workers / 1: {speedup:.2f}x (goal >= {GOAL_SPEEDUP}x: {verdict}); "
          f"cpu_count {os.cpu_count()}, usable {len(os.sched_getaffinity(0))}")


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit code."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 small runs (under a minute)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--postgres-url", default=os.environ.get("COPOOL_BENCH_POSTGRES_URL"),
                        help="PostgreSQL server (default $COPOOL_BENCH_POSTGRES_URL)")
    parser.add_argument("--runs", type=int, help="runs per phase (default 16; quick 4)")
    parser.add_argument("--pools", type=int, help="pools per run (default 1)")
    args = parser.parse_args(argv)
    if not args.postgres_url:
        print("skipped: copool worker needs PostgreSQL; give --postgres-url or set "
              "COPOOL_BENCH_POSTGRES_URL", file=sys.stderr)
        return 0
    size = QUICK if args.quick else FULL
    size = replace(size, runs=args.runs or size.runs, pools=args.pools or size.pools)
    print(f"{size.runs} runs of {size.pools} pools of {size.requests} requests over "
          f"{size.experts} experts, time limit {size.time_limit_s} s, 1 solver thread; "
          f"cpu_count {os.cpu_count()}")
    with tempfile.TemporaryDirectory() as tmp, fresh_postgres(args.postgres_url, "copool_bench_jobs") as url:
        logs = Path(tmp)
        token, skills, project = seed(url, size)
        with serve(_env(url, size), logs / "serve.log") as base:
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
                ask(c, size, skills, project)
            phases = [phase(url, base, token, size, n, logs) for n in (1, 2)]
    speedup = phases[0]["wall_s"] / phases[1]["wall_s"]
    print_table(phases, speedup)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "jobs", "quick": args.quick, "size": size.__dict__,
            "phases": phases, "speedup": round(speedup, 3), "goal_speedup": GOAL_SPEEDUP,
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                        "usable_cpus": len(os.sched_getaffinity(0))},
        }, indent=2) + "\n")
    return 0 if all(p["done"] == p["runs"] for p in phases) else 1


if __name__ == "__main__":
    sys.exit(main())
