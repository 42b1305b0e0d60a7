"""Booking engine benchmark (issue 3): direct bookings and free-slot search over HTTP.

A uvicorn server on 127.0.0.1 serves copool's app plus an anchor route (a bare
check-then-insert booking, benchmarks/_booking_app.py) on a fresh database holding 1,000
experts of one skill and first 10,000, then 1,000,000 existing bookings (bulk-inserted,
not through HTTP). At each size: booking throughput and latency at 32 concurrent
connections for copool's ``POST /bookings`` and for the anchor, each request a distinct
free slot; and the latency of ``GET /availability/slots`` for the skill across the 1,000
experts over four weeks (one client). On SQLite and on PostgreSQL.

Goals: booking ≥ 0.8× the anchor's throughput; booking p99 ≤ 150 ms (PostgreSQL) and
≤ 250 ms (SQLite); search p99 ≤ 100 ms; 1M figures within 1.3× of the 10k ones.

    python benchmarks/booking.py --quick --json var/bench/booking.json
    python benchmarks/booking.py --postgres-url postgresql+psycopg://copool@127.0.0.1:55432/postgres

PostgreSQL comes from ``--postgres-url`` or ``COPOOL_BENCH_POSTGRES_URL`` (skipped with a
message when neither is set); a fresh database is created there and dropped afterwards.
``--quick`` uses 10,000 and 50,000 existing bookings and fewer requests (well under a
minute); the table says which sizes ran. Experts carry no rate (price 0), so no ledger
hold is posted: the figures are the booking engine's.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts benchmarks/ first on sys.path, where benchmarks/ledger.py
# would shadow the ledger package: drop it, and put the project root first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from app.agreements.models import AgreementScope  # noqa: E402
from app.agreements.schemas import AgreementCreate  # noqa: E402
from app.agreements.services import create_agreement  # noqa: E402
from app.auth import services as auth  # noqa: E402
from app.auth.actor import SYSTEM  # noqa: E402
from app.auth.models import Role  # noqa: E402
from app.auth.schemas import UserCreate  # noqa: E402
from app.bookings.models import Booking  # noqa: E402
from app.catalog import services as catalog  # noqa: E402
from app.catalog.models import Expert, ExpertSkill  # noqa: E402
from app.catalog.schemas import SkillCreate  # noqa: E402
from app.db import make_engine, make_session_factory, session_scope  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.projects.schemas import ProjectCreate, ShareTerm  # noqa: E402
from app.projects.services import create_project  # noqa: E402
from app.units.schemas import UnitCreate  # noqa: E402
from app.units.services import create_unit  # noqa: E402

ZONE = ZoneInfo("Europe/Berlin")
EXPERTS = 1000
CONNECTIONS = 32
WINDOW_START = date(2027, 6, 7)  # a Monday; the search covers four weeks from here
WINDOW_DAYS = 28
HOURS = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
# Existing bookings fill mornings; the benchmark books afternoons, so each request is free.
MORNING = [(clock(9), clock(10)), (clock(10, 30), clock(12))]
AFTERNOON = [clock(13), clock(14), clock(15), clock(16)]
P99_GOAL_MS = {"sqlite": 250.0, "postgresql": 150.0}
GOALS: dict[str, Any] = {"ratio": 0.8, "p99_ms": P99_GOAL_MS, "search_p99_ms": 100.0,
                         "growth": 1.3}


# --- the world --------------------------------------------------------------------------


@dataclass
class World:
    """Ids the requests need."""

    token: str
    skill: uuid.UUID
    project: uuid.UUID
    agreement: uuid.UUID
    lender: uuid.UUID
    borrower: uuid.UUID
    user: uuid.UUID
    experts: list[uuid.UUID]


def seed(url: str) -> World:
    """Two units, an agreement, a project, a requester's key, 1,000 experts of one skill."""
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            lender = create_unit(s, SYSTEM, UnitCreate(name="Lending unit", code="LEND")).id
            borrower = create_unit(s, SYSTEM, UnitCreate(name="Borrowing unit", code="BORR")).id
            user = auth.create_user(s, SYSTEM, UserCreate(
                unit_id=borrower, name="Bench requester", email="bench@borr.example.org",
                roles=[Role.REQUESTER, Role.PROJECT_LEAD]))
            _, token = auth.issue_key(s, SYSTEM, user.id, "bench")
            skill = catalog.create_skill(s, SYSTEM, SkillCreate(name="Hydrology")).id
            agreement = create_agreement(s, SYSTEM, AgreementCreate(
                lender_unit_id=lender, borrower_unit_id=borrower, scope=AgreementScope.ALL,
                requires_approval=False, valid_from=date(2020, 1, 1))).id
            project = create_project(s, SYSTEM, ProjectCreate(
                name="Benchmark", code="BENCH", lead_unit_id=borrower, lead_user_id=user.id,
                start_date=date(2020, 1, 1), end_date=date(2035, 12, 31), currency="EUR",
                shares=[ShareTerm(unit_id=borrower, share_bp=10_000)],
                member_ids=[user.id])).id
            experts = [Expert(unit_id=lender, name=f"Expert {i:04d}", time_zone="Europe/Berlin",
                              working_hours=HOURS, lending_cap_bp=10_000, hourly_rate=0)
                       for i in range(EXPERTS)]
            s.add_all(experts)
            s.flush()
            s.add_all(ExpertSkill(resource_id=e.id, skill_id=skill, level=1 + i % 5)
                      for i, e in enumerate(experts))
            ids = [e.id for e in experts]
            return World(token=token, skill=skill, project=project, agreement=agreement,
                         lender=lender, borrower=borrower, user=user.id, experts=ids)
    finally:
        engine.dispose()


def _weekdays_outward(start: date) -> Iterator[date]:
    """Weekdays nearest ``start`` first: start, the one before, the one after, …"""
    after = start
    before = start - timedelta(days=1)
    while True:
        while after.weekday() >= 5:
            after += timedelta(days=1)
        yield after
        after += timedelta(days=1)
        while before.weekday() >= 5:
            before -= timedelta(days=1)
        yield before
        before -= timedelta(days=1)


def existing_bookings(world: World, first: int, count: int) -> Iterator[dict[str, Any]]:
    """Bookings ``first`` … ``first + count`` of one endless deterministic sequence.

    Round-robin over the experts; each expert's mornings fill outward from the search
    window, two bookings a weekday; one in ten is cancelled. The 10k prefix is therefore a
    subset of the 1M set, which adds years of history and future around the window.
    """
    days = list(itertools.islice(_weekdays_outward(WINDOW_START + timedelta(days=10)),
                                 (first + count) // (2 * EXPERTS) + 2))
    now = datetime.now(UTC)
    common = {"project_id": world.project, "agreement_id": world.agreement,
              "borrower_unit_id": world.borrower, "lender_unit_id": world.lender,
              "created_by": world.user, "title": "existing", "status_reason": "",
              "sequence": 0, "request_id": None, "requirement_id": None, "series_id": None,
              "checked_in_at": None, "cancelled_at": None, "created_at": now, "updated_at": now}
    for n in range(first, first + count):
        expert = world.experts[n % EXPERTS]
        k = n // EXPERTS
        day = days[k // 2]
        s_local, e_local = MORNING[k % 2]
        start = datetime.combine(day, s_local, ZONE).astimezone(UTC)
        end = datetime.combine(day, e_local, ZONE).astimezone(UTC)
        yield {**common, "id": uuid.uuid4(), "resource_id": expert, "start": start, "end": end,
               "block_start": start, "block_end": end,
               "status": "cancelled" if n % 10 == 9 else "confirmed"}


BOOKING_COLUMNS = ["id", "resource_id", "project_id", "request_id", "requirement_id",
                   "series_id", "agreement_id", "borrower_unit_id", "lender_unit_id",
                   "created_by", "title", "start", "end", "block_start", "block_end", "status",
                   "status_reason", "sequence", "checked_in_at", "cancelled_at", "created_at",
                   "updated_at"]


def bulk_insert(url: str, world: World, first: int, count: int) -> float:
    """Insert existing bookings fast (COPY on PostgreSQL, executemany on SQLite); seconds."""
    started = time.perf_counter()
    rows = existing_bookings(world, first, count)
    if url.startswith("postgresql"):
        engine = create_engine(url)
        with engine.begin() as conn:
            raw: Any = conn.connection.driver_connection
            columns = ", ".join(f'"{c}"' for c in BOOKING_COLUMNS)
            with raw.cursor() as cur, cur.copy(f"COPY bookings ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[c] for c in BOOKING_COLUMNS])
            conn.execute(text("ANALYZE bookings"))
        engine.dispose()
    else:
        engine = make_engine(url)
        table = insert(Booking)
        with engine.begin() as conn:
            while True:
                chunk = list(itertools.islice(rows, 20_000))
                if not chunk:
                    break
                conn.execute(table, chunk)
            conn.exec_driver_sql("ANALYZE")
        engine.dispose()
    return time.perf_counter() - started


# --- databases and the server -----------------------------------------------------------


@contextmanager
def fresh_database(kind: str, pg_url: str | None, workdir: Path) -> Iterator[str]:
    """A new, migrated database; a PostgreSQL one is dropped afterwards."""
    if kind == "sqlite":
        path = workdir / "bench.db"
        url = f"sqlite:///{path}"
        upgrade(url)
        yield url
        return
    assert pg_url
    server = make_url(pg_url)
    name = f"copool_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = server.set(database=name).render_as_string(hide_password=False)
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(url: str, workers: int, commit_on_loop: bool, log: Path) -> Iterator[str]:
    """uvicorn with the benchmark app on 127.0.0.1; always stopped on the way out."""
    port = _free_port()
    env = {**os.environ, "COPOOL_DATABASE_URL": url, "COPOOL_LOG_LEVEL": "WARNING",
           "COPOOL_DB_POOL_SIZE": "40", "COPOOL_DB_MAX_OVERFLOW": "10",
           "COPOOL_BENCH_COMMIT_ON_LOOP": "1" if commit_on_loop else "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-m", "uvicorn", "--factory", "benchmarks._booking_app:app_factory",
               "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
               "--log-level", "warning", "--no-access-log"]
    with log.open("wb") as sink:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=sink, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start within 60 s")
            time.sleep(0.1)
        yield base
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


# --- load -------------------------------------------------------------------------------


def afternoon_slots(world: World, seed: int = 3) -> list[tuple[uuid.UUID, datetime, datetime]]:
    """Every free afternoon hour of every expert in the window, shuffled."""
    slots: list[tuple[uuid.UUID, datetime, datetime]] = []
    for offset in range(WINDOW_DAYS):
        day = WINDOW_START + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for hour in AFTERNOON:
            start = datetime.combine(day, hour, ZONE).astimezone(UTC)
            slots.extend((e, start, start + timedelta(hours=1)) for e in world.experts)
    random.Random(seed).shuffle(slots)
    return slots


def run_concurrent(base: str, headers: dict[str, str], requests: list[tuple[str, dict[str, Any]]],
                   connections: int) -> tuple[float, list[float], dict[int, int]]:
    """POST every request over ``connections`` keep-alive connections; rps, latencies, statuses."""
    cursor = itertools.count()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    barrier = threading.Barrier(connections + 1)

    def worker() -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
            client.get("/health")
            barrier.wait()
            while True:
                i = next(cursor)
                if i >= len(requests):
                    return
                path, body = requests[i]
                t0 = time.perf_counter()
                try:
                    status = client.post(path, json=body).status_code
                except httpx.HTTPError:
                    status = 0
                elapsed = (time.perf_counter() - t0) * 1000
                with lock:
                    latencies.append(elapsed)
                    statuses[status] = statuses.get(status, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for thread in threads:
        thread.start()
    barrier.wait()
    t0 = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - t0
    return len(requests) / wall, latencies, statuses


def percentile(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))]


def measure(base: str, world: World, slots: Iterator[tuple[uuid.UUID, datetime, datetime]],
            n_book: int, n_search: int) -> dict[str, Any]:
    """Anchor, booking and search figures at the database's current size."""
    headers = {"Authorization": f"Bearer {world.token}"}

    def booking(slot: tuple[uuid.UUID, datetime, datetime]) -> tuple[str, dict[str, Any]]:
        return "/bookings", {"resource_id": str(slot[0]), "project_id": str(world.project),
                             "start": slot[1].isoformat(), "end": slot[2].isoformat(),
                             "title": "bench"}

    def anchor(slot: tuple[uuid.UUID, datetime, datetime]) -> tuple[str, dict[str, Any]]:
        return "/bench/anchor", {
            "resource_id": str(slot[0]), "project_id": str(world.project),
            "agreement_id": str(world.agreement), "borrower_unit_id": str(world.borrower),
            "lender_unit_id": str(world.lender), "created_by": str(world.user),
            "start": slot[1].isoformat(), "end": slot[2].isoformat()}

    def take(make: Callable[[Any], tuple[str, dict[str, Any]]], n: int
             ) -> list[tuple[str, dict[str, Any]]]:
        return [make(next(slots)) for _ in range(n)]

    # warm both routes (imports, caches, connection pools)
    run_concurrent(base, headers, take(anchor, CONNECTIONS), CONNECTIONS)
    run_concurrent(base, headers, take(booking, CONNECTIONS), CONNECTIONS)
    anchor_rps, anchor_lat, anchor_status = run_concurrent(
        base, headers, take(anchor, n_book), CONNECTIONS)
    booking_rps, booking_lat, booking_status = run_concurrent(
        base, headers, take(booking, n_book), CONNECTIONS)

    params: dict[str, str | int] = {"skill_id": str(world.skill), "duration_minutes": 60,
              "start": datetime.combine(WINDOW_START, clock(0), ZONE).isoformat(),
              "end": datetime.combine(WINDOW_START + timedelta(days=WINDOW_DAYS), clock(0),
                                      ZONE).isoformat(), "limit": 20}
    search_lat = []
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        first = client.get("/availability/slots", params=params)
        first.raise_for_status()
        found = len(first.json())
        for _ in range(n_search):
            t0 = time.perf_counter()
            client.get("/availability/slots", params=params).raise_for_status()
            search_lat.append((time.perf_counter() - t0) * 1000)
    return {
        "anchor_rps": round(anchor_rps, 1),
        "anchor_p50_ms": round(percentile(anchor_lat, 0.5), 1),
        "anchor_p99_ms": round(percentile(anchor_lat, 0.99), 1),
        "booking_rps": round(booking_rps, 1),
        "booking_p50_ms": round(percentile(booking_lat, 0.5), 1),
        "booking_p99_ms": round(percentile(booking_lat, 0.99), 1),
        "booking_ratio_to_anchor": round(booking_rps / anchor_rps, 3),
        "search_p50_ms": round(percentile(search_lat, 0.5), 1),
        "search_p99_ms": round(percentile(search_lat, 0.99), 1),
        "search_slots_found": found,
        "statuses": {"anchor": anchor_status, "booking": booking_status},
        "requests": n_book, "searches": n_search,
    }


def bench_database(kind: str, pg_url: str | None, sizes: list[int], n_book: int, n_search: int,
                   workers: int, commit_on_loop: bool) -> dict[str, Any]:
    """Every figure of one database."""
    with tempfile.TemporaryDirectory(prefix="copool-bench-") as tmp, \
            fresh_database(kind, pg_url, Path(tmp)) as url:
        world = seed(url)
        slots = iter(afternoon_slots(world))
        per_size: dict[str, Any] = {}
        loaded = 0
        log = Path(tmp) / "uvicorn.log"
        with server(url, workers, commit_on_loop, log) as base:
            for size in sizes:
                seconds = bulk_insert(url, world, loaded, size - loaded)
                loaded = size
                print(f"  {kind}: {size:,} existing bookings loaded in {seconds:.1f} s",
                      file=sys.stderr)
                per_size[str(size)] = measure(base, world, slots, n_book, n_search)
        errors = [line for line in log.read_text(errors="replace").splitlines()
                  if "Error" in line or "Traceback" in line]
    small, large = per_size[str(sizes[0])], per_size[str(sizes[-1])]
    growth = max(large["booking_p99_ms"] / small["booking_p99_ms"],
                 small["booking_rps"] / large["booking_rps"],
                 large["search_p99_ms"] / small["search_p99_ms"])
    return {
        **{k: large[k] for k in ("booking_rps", "anchor_rps", "booking_ratio_to_anchor",
                                 "booking_p50_ms", "booking_p99_ms", "search_p99_ms")},
        "growth_1m_over_10k": round(growth, 3),
        "sizes": per_size,
        "server_errors_logged": len(errors),
    }


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def print_table(results: dict[str, Any], sizes: list[int]) -> None:
    """A table per database and size, then the goals."""
    header = (f"{'database':<11}{'existing':>10}{'book rps':>10}{'anchor rps':>11}{'ratio':>7}"
              f"{'p50 ms':>8}{'p99 ms':>8}{'anch p99':>9}{'search p50':>11}{'search p99':>11}")
    print(header)
    print("-" * len(header))
    for db, res in results.items():
        for size, row in res["sizes"].items():
            print(f"{db:<11}{int(size):>10,}{row['booking_rps']:>10.1f}{row['anchor_rps']:>11.1f}"
                  f"{row['booking_ratio_to_anchor']:>7.2f}{row['booking_p50_ms']:>8.1f}"
                  f"{row['booking_p99_ms']:>8.1f}{row['anchor_p99_ms']:>9.1f}"
                  f"{row['search_p50_ms']:>11.1f}{row['search_p99_ms']:>11.1f}")
    print()
    big = f"{sizes[-1]:,}"
    for db, res in results.items():
        p99_goal = P99_GOAL_MS[db]
        print(f"{db} at {big} bookings: "
              f"ratio {res['booking_ratio_to_anchor']:.2f} (≥ {GOALS['ratio']}) "
              f"{_verdict(res['booking_ratio_to_anchor'] >= GOALS['ratio'])}; "
              f"p99 {res['booking_p99_ms']:.0f} ms (≤ {p99_goal:.0f}) "
              f"{_verdict(res['booking_p99_ms'] <= p99_goal)}; "
              f"search p99 {res['search_p99_ms']:.0f} ms (≤ {GOALS['search_p99_ms']:.0f}) "
              f"{_verdict(res['search_p99_ms'] <= GOALS['search_p99_ms'])}; "
              f"growth {res['growth_1m_over_10k']:.2f}× (≤ {GOALS['growth']}) "
              f"{_verdict(res['growth_1m_over_10k'] <= GOALS['growth'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="10k and 50k existing bookings, fewer requests (< 1 min)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--postgres-url", default=os.environ.get("COPOOL_BENCH_POSTGRES_URL"),
                        help="PostgreSQL server (default $COPOOL_BENCH_POSTGRES_URL)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--as-shipped", action="store_true",
                        help="keep the session commit in a worker thread (deadlocks under load)")
    args = parser.parse_args(argv)

    sizes = [10_000, 50_000] if args.quick else [10_000, 1_000_000]
    n_book, n_search = (200, 15) if args.quick else (2000, 100)
    databases = ["sqlite"]
    if args.postgres_url:
        databases.append("postgresql")
    else:
        print("PostgreSQL skipped: give --postgres-url or set COPOOL_BENCH_POSTGRES_URL",
              file=sys.stderr)
    if args.quick:
        print(f"quick mode: {sizes[0]:,} and {sizes[1]:,} existing bookings (not 1,000,000), "
              f"{n_book} bookings per route, {n_search} searches", file=sys.stderr)
    results = {db: bench_database(db, args.postgres_url, sizes, n_book, n_search, args.workers,
                                  commit_on_loop=not args.as_shipped)
               for db in databases}
    print_table(results, sizes)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "booking", "quick": args.quick, "existing_bookings": sizes,
            "connections": CONNECTIONS, "experts": EXPERTS, "workers": args.workers,
            "commit_on_loop": not args.as_shipped, "goals": GOALS,
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            **results,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
