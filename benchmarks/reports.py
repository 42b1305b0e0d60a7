"""Reports benchmark (issue 14): every report over a year of bookings, p50/p95 per report.

Each database (SQLite; PostgreSQL with ``--postgres-url`` or ``COPOOL_BENCH_POSTGRES_URL``)
gets a fresh, migrated database seeded by benchmarks/booking.py's own helpers (units,
agreements with caps and rate cards, four funded projects, 2,000 experts, 70 % lending
caps) and its deterministic stream of existing bookings (two mornings a weekday per
expert, fanning out from June 2027; one in ten cancelled): 1,000,000 bookings (about a
year) in full mode, 10,000 with ``--quick``. One booking in ten belongs to a request
(bulk-inserted beside it) and every expert has a week of leave, so fulfilment and
available hours have rows to read.

Each report is then called as the dashboard will call it (the service function, in a
fresh session, as an admin, so over every unit) over the year around the data's centre;
one warm-up call, then ``--repeats`` timed ones. The table gives rows returned, p50 and
p95 per report, and the CPU per call of this process and of the PostgreSQL backend and
parallel workers serving it (read from /proc when the server runs here): a figure that a
shared machine's load does not inflate, with the load average beside it;
``--json PATH`` writes the same. Goal: p95 ≤ 1 s on both. PostgreSQL is vacuumed and
analysed after seeding, as autovacuum would leave a live database.

``--database URL`` times a database kept between runs (seeded first when it has no
bookings); ``--only NAME…`` times only some reports.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts benchmarks/ first on sys.path, where benchmarks/ledger.py
# would hide the ledger package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, insert, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.auth.actor import SYSTEM  # noqa: E402
from app.bookings.models import Booking, Request, Requirement  # noqa: E402
from app.catalog.models import Unavailability  # noqa: E402
from app.db import make_engine, make_session_factory  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.reports import caps, fulfilment, money, noshows, reciprocity, utilisation  # noqa: E402
from app.reports.scope import Grouping, ReportFilter  # noqa: E402
from benchmarks import booking  # noqa: E402

GOAL_P95_S = 1.0
REQUEST_EVERY = 10
"""One booking in this many serves a request."""
NAMESPACE = uuid.UUID("6f1d7a52-3c1e-4a5e-9a57-2d4c1e0f0a14")


def _request_id(n: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, str(n))


def _with_requests(rows: Iterator[dict[str, Any]], first: int) -> Iterator[dict[str, Any]]:
    for n, row in enumerate(rows, start=first):
        if n % REQUEST_EVERY == 0:
            row["request_id"] = _request_id(n)
        yield row


def _requests(world: booking.World, count: int) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    """A request (and its one requirement) for every REQUEST_EVERY-th booking, asked 1–72 h
    before the booking was made; statuses as the booking's (confirmed) or withdrawn."""
    for n, row in enumerate(booking.existing_bookings(world, 0, count)):
        if n % REQUEST_EVERY:
            continue
        asked = row["start"] - timedelta(days=3, hours=n % 72)
        rid = _request_id(n)
        status = "cancelled" if row["status"] == "cancelled" else "confirmed"
        yield (
            {"id": rid, "project_id": row["project_id"], "unit_id": row["borrower_unit_id"],
             "created_by": row["created_by"], "title": "bench", "notes": "",
             "duration_minutes": 60, "window_start": asked, "window_end": row["end"],
             "priority": 3, "emergency": False, "status": status, "status_reason": "",
             "created_at": asked, "updated_at": asked},
            {"id": uuid.uuid5(NAMESPACE, f"q{n}"), "request_id": rid, "position": 0,
             "kind": "skill", "skill_id": world.morning_skill, "min_level": 1, "quantity": 1,
             "created_at": asked, "updated_at": asked},
        )  # fmt: skip


def _insert_many(url: str, table: Any, rows: Iterator[dict[str, Any]]) -> None:
    engine = make_engine(url) if url.startswith("sqlite") else create_engine(url)
    with engine.begin() as conn:
        while chunk := list(itertools.islice(rows, 20_000)):
            conn.execute(insert(table), chunk)
    engine.dispose()


def seed(url: str, count: int) -> tuple[booking.World, float]:
    """The booking benchmark's world and ``count`` bookings, requests and leave; seconds."""
    started = time.perf_counter()
    world = booking.seed(url)
    pairs = list(_requests(world, count))
    _insert_many(url, Request, iter([p[0] for p in pairs]))
    _insert_many(url, Requirement, iter([p[1] for p in pairs]))
    centre = booking.WINDOW_START + timedelta(days=10)
    leave = (
        {"id": uuid.uuid4(), "resource_id": e.id, "kind": "leave", "note": "",
         "start": datetime.combine(centre + timedelta(weeks=i % 40 - 20), datetime.min.time(), UTC),
         "end": datetime.combine(centre + timedelta(weeks=i % 40 - 20, days=7), datetime.min.time(), UTC)}
        for i, e in enumerate(world.experts)
    )  # fmt: skip
    _insert_many(url, Unavailability, leave)
    booking.bulk_insert(url, _with_requests(booking.existing_bookings(world, 0, count), 0))
    analyse(url)
    return world, time.perf_counter() - started


def analyse(url: str) -> None:
    """Statistics for the planner; on PostgreSQL also the visibility map that index-only
    scans need (autovacuum's work on a live database, done here before timing)."""
    if url.startswith("sqlite"):
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")
    else:
        engine = create_engine(url, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")
    engine.dispose()


def reports(period: ReportFilter, weeks: ReportFilter) -> dict[str, Callable[[Any], Any]]:
    """Each report as the dashboard calls it: the service function over every unit."""
    return {
        "utilisation/resource/month": lambda s: utilisation.report(s, SYSTEM, period, "resource"),
        "utilisation/unit/week": lambda s: utilisation.report(s, SYSTEM, weeks, "unit"),
        "fulfilment": lambda s: fulfilment.report(s, SYSTEM, period),
        "reciprocity": lambda s: reciprocity.pairs(s, SYSTEM, period),
        "reciprocity/balances": lambda s: reciprocity.balances(s, SYSTEM, period),
        "caps": lambda s: caps.report(s, SYSTEM, period),
        "money": lambda s: money.report(s, SYSTEM),
        "no-shows": lambda s: noshows.report(s, SYSTEM, period),
    }


def _server_cpu(session: Any) -> Callable[[], float]:
    """CPU seconds so far of the PostgreSQL backend serving ``session`` and of its server's
    finished children (parallel workers), read from /proc when the server runs on this
    machine; 0 for SQLite, whose work is this process's own."""
    if session.get_bind().dialect.name != "postgresql":
        return lambda: 0.0
    backend = Path(f"/proc/{session.execute(select(func.pg_backend_pid())).scalar_one()}/stat")
    try:
        server = Path(f"/proc/{backend.read_text().rsplit(')', 1)[1].split()[1]}/stat")
    except OSError:
        return lambda: 0.0
    tick = os.sysconf("SC_CLK_TCK")

    def seconds() -> float:
        own = backend.read_text().rsplit(")", 1)[1].split()
        children = server.read_text().rsplit(")", 1)[1].split()
        return (int(own[11]) + int(own[12]) + int(children[13]) + int(children[14])) / tick

    return seconds


def measure(url: str, repeats: int, only: list[str] | None = None) -> dict[str, Any]:
    """p50/p95 seconds and rows of every report over the year around the data's centre."""
    centre = booking.WINDOW_START + timedelta(days=10)
    first, last = centre - timedelta(days=182), centre + timedelta(days=182)
    period = ReportFilter(first, last, group=Grouping.MONTH)
    weeks = ReportFilter(first, last, group=Grouping.WEEK)
    engine = make_engine(url)
    factory = make_session_factory(engine)
    out: dict[str, Any] = {}
    try:
        for name, call in reports(period, weeks).items():
            if only and not any(name.startswith(o) for o in only):
                continue
            times, cpu, rows = [], [], 0
            for i in range(repeats + 1):
                with factory() as s:
                    server = _server_cpu(s)
                    started, used = time.perf_counter(), time.process_time() + server()
                    rows = len(call(s).rows)
                    elapsed = time.perf_counter() - started
                    used = time.process_time() + server() - used
                    s.rollback()
                if i:  # the first call warms caches and is not counted
                    times.append(elapsed)
                    cpu.append(used)
            times.sort()
            p95 = times[min(len(times) - 1, int(0.95 * len(times) + 0.5) - 1)]
            out[name] = {"rows": rows, "p50_s": statistics.median(times), "p95_s": p95,
                         "cpu_p50_s": statistics.median(cpu), "ok": p95 <= GOAL_P95_S}  # fmt: skip
    finally:
        engine.dispose()
    return out


def reuse(url: str, count: int, repeats: int, only: list[str] | None) -> dict[str, Any]:
    """Time the reports over a database kept between runs, migrating and seeding it first
    when it has no bookings yet (to iterate on one report without seeding each time)."""
    upgrade(url)
    engine = make_engine(url)
    with engine.connect() as conn:
        seeded = conn.execute(select(func.count()).select_from(Booking)).scalar_one()
    engine.dispose()
    seconds = 0.0
    if not seeded:
        _, seconds = seed(url, count)
        print(f"{url}: seeded {count:,} bookings in {seconds:.1f} s", file=sys.stderr)
    return {"seed_s": round(seconds, 1), "reports": measure(url, repeats, only)}


def bench(kind: str, pg_url: str | None, count: int, repeats: int) -> dict[str, Any]:
    """Seed a fresh database of ``kind`` and time every report."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        booking.fresh_database(kind, pg_url, Path(tmp)) as url,
    ):
        _, seconds = seed(url, count)
        print(f"{kind}: seeded {count:,} bookings in {seconds:.1f} s", file=sys.stderr)
        return {"seed_s": round(seconds, 1), "reports": measure(url, repeats)}


def print_table(results: dict[str, Any], count: int) -> None:
    """One line per database and report."""
    print(f"\nreports over {count:,} bookings (a year), p95 goal {GOAL_P95_S:g} s")
    print(f"{'database':<11}{'report':<28}{'rows':>7}{'p50 s':>9}{'p95 s':>9}{'cpu s':>8}  goal")
    for db, result in results.items():
        for name, r in result["reports"].items():
            print(f"{db:<11}{name:<28}{r['rows']:>7}{r['p50_s']:>9.3f}{r['p95_s']:>9.3f}"
                  f"{r['cpu_p50_s']:>8.3f}  {'ok' if r['ok'] else 'MISSED'}")  # fmt: skip
    print(
        f"cpu s: CPU per call (p50) of this process and, on PostgreSQL, of its server backend "
        f"and workers; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 bookings, 3 repeats")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--repeats", type=int, help="timed calls per report (default 20; 3 quick)")
    parser.add_argument("--postgres-url", default=os.environ.get("COPOOL_BENCH_POSTGRES_URL"),
                        help="PostgreSQL server (default $COPOOL_BENCH_POSTGRES_URL)")  # fmt: skip
    parser.add_argument("--database", metavar="URL",
                        help="time this database, seeding it first if it has no bookings "
                        "(kept afterwards; instead of fresh ones)")  # fmt: skip
    parser.add_argument(
        "--only",
        nargs="+",
        metavar="REPORT",
        help="time only the reports whose names start so (e.g. caps)",
    )
    args = parser.parse_args(argv)
    count = 10_000 if args.quick else 1_000_000
    repeats = args.repeats or (3 if args.quick else 20)
    if args.database:
        kind = make_url(args.database).get_backend_name()
        print_table({kind: reuse(args.database, count, repeats, args.only)}, count)
        return 0
    databases = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    if not args.postgres_url:
        print("PostgreSQL skipped: give --postgres-url or set COPOOL_BENCH_POSTGRES_URL",
              file=sys.stderr)  # fmt: skip
    results = {db: bench(db, args.postgres_url, count, repeats) for db in databases}
    print_table(results, count)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "reports", "quick": args.quick, "bookings": count, "repeats": repeats,
            "goal_p95_s": GOAL_P95_S, "period": "the year around 2027-06-17",
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            **results,
        }, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
