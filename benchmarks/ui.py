"""Dashboard benchmark (issue 14): server time of each /ui/ page, p50/p95.

Each database (SQLite; PostgreSQL with ``--postgres-url`` or ``COPOOL_BENCH_POSTGRES_URL``)
gets a fresh, migrated database seeded exactly as benchmarks/reports.py seeds it (the
booking benchmark's units, agreements, funded projects and 2,000 experts, with its stream
of bookings, requests and leave): 1,000,000 bookings in full mode, 10,000 with ``--quick``.

The app runs in process (Litestar's TestClient: no network, no uvicorn), signed in through
the sign-in form as a requester and project lead of the borrowing unit (which borrows every
booking) and, for the audit log, as an admin. Each page is requested a few times to warm
up, then ``--repeats`` timed ones; the time is from sending the request to the last byte
of the answer. Goal: p95 ≤ 300 ms per page at 1M bookings.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from litestar.testing import TestClient  # noqa: E402

from app.auth import services as auth  # noqa: E402
from app.auth.actor import SYSTEM  # noqa: E402
from app.auth.models import Role  # noqa: E402
from app.auth.schemas import UserCreate  # noqa: E402
from app.db import make_engine, make_session_factory, session_scope  # noqa: E402
from app.main import create_app  # noqa: E402
from app.settings import Settings  # noqa: E402
from benchmarks import booking  # noqa: E402
from benchmarks import reports as report_bench  # noqa: E402

GOAL_P95_S = 0.300
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def admin_key(url: str, world: booking.World) -> str:
    """An admin of the borrowing unit, for the audit log; its API key."""
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            user = auth.create_user(s, SYSTEM, UserCreate(
                unit_id=world.borrower, name="Bench admin", email="admin@borr.example.org",
                roles=[Role.ADMIN]))  # fmt: skip
            return auth.issue_key(s, SYSTEM, user.id, "bench")[1]
    finally:
        engine.dispose()


def sign_in(client: TestClient[Any], key: str) -> None:
    """Sign in through the dashboard's form."""
    form = client.get("/ui/login")
    token = CSRF.search(form.text)
    assert token, "no CSRF token on the sign-in form"
    answer = client.post("/ui/login", data={"csrf": token.group(1), "api_key": key},
                         follow_redirects=False)  # fmt: skip
    assert answer.status_code == 303, answer.text


def pages(world: booking.World) -> dict[str, str]:
    """The pages a unit lead opens, at the busiest week of the data."""
    centre = booking.WINDOW_START + timedelta(days=10)
    period = f"from={centre - timedelta(days=182)}&to={centre + timedelta(days=182)}"
    month = f"from={centre.replace(day=1)}&to={centre.replace(day=30)}"
    return {
        "home (week)": f"/ui/?at={centre}",
        "home (month)": f"/ui/?view=month&at={centre}",
        "feeds": "/ui/feeds",
        "resources": "/ui/resources",
        "resource (week)": f"/ui/resources/{world.morning[-1].id}?at={centre}",
        "approvals": "/ui/approvals",
        "projects": "/ui/projects",
        "funds": f"/ui/projects/{world.projects[0]}/funds",
        "report utilisation (month)": f"/ui/reports?name=utilisation&{month}",
        "report utilisation (year)": f"/ui/reports?name=utilisation&{period}",
        "report fulfilment (year)": f"/ui/reports?name=fulfilment&{period}",
        "report money": f"/ui/reports?name=money&{period}",
        "runs": "/ui/runs",
    }


def _timed(client: TestClient[Any], path: str, repeats: int) -> tuple[list[float], int]:
    times, status = [], 0
    for i in range(repeats + 2):
        started = time.perf_counter()
        answer = client.get(path)
        elapsed = time.perf_counter() - started
        status = answer.status_code
        if i >= 2:  # two warm-up calls
            times.append(elapsed)
    return sorted(times), status


def measure(url: str, world: booking.World, admin: str, repeats: int) -> dict[str, Any]:
    """p50/p95 seconds of every page."""
    app = create_app(Settings(database_url=url, log_level="WARNING"))
    out: dict[str, Any] = {}
    try:
        with TestClient(app=app) as client:
            sign_in(client, world.tokens[0])
            todo = list(pages(world).items())
            for name, path in todo:
                out[name] = _figures(*_timed(client, path, repeats))
            client.cookies.clear()
            sign_in(client, admin)
            out["audit"] = _figures(*_timed(client, "/ui/audit", repeats))
    finally:
        app.state.engine.dispose()
    return out


def _figures(times: list[float], status: int) -> dict[str, Any]:
    p95 = times[min(len(times) - 1, int(0.95 * len(times) + 0.5) - 1)]
    return {"status": status, "p50_s": statistics.median(times), "p95_s": p95,
            "ok": status == 200 and p95 <= GOAL_P95_S}  # fmt: skip


def bench(kind: str, pg_url: str | None, count: int, repeats: int) -> dict[str, Any]:
    """Seed a fresh database of ``kind`` and time every page."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        booking.fresh_database(kind, pg_url, Path(tmp)) as url,
    ):
        world, seconds = report_bench.seed(url, count)
        print(f"{kind}: seeded {count:,} bookings in {seconds:.1f} s", file=sys.stderr)
        return {"seed_s": round(seconds, 1), "pages": measure(url, world, admin_key(url, world), repeats)}


def print_table(results: dict[str, Any], count: int) -> None:
    """One line per database and page."""
    print(f"\ndashboard pages over {count:,} bookings, server time, p95 goal {GOAL_P95_S * 1000:g} ms")
    print(f"{'database':<11}{'page':<28}{'status':>7}{'p50 ms':>9}{'p95 ms':>9}  goal")
    for db, result in results.items():
        for name, r in result["pages"].items():
            print(f"{db:<11}{name:<28}{r['status']:>7}{r['p50_s'] * 1000:>9.1f}"
                  f"{r['p95_s'] * 1000:>9.1f}  {'ok' if r['ok'] else 'MISSED'}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 bookings, 10 repeats")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--repeats", type=int, help="timed requests per page (default 20; 10 quick)")
    parser.add_argument("--postgres-url", default=os.environ.get("COPOOL_BENCH_POSTGRES_URL"),
                        help="PostgreSQL server (default $COPOOL_BENCH_POSTGRES_URL)")  # fmt: skip
    args = parser.parse_args(argv)
    count = 10_000 if args.quick else 1_000_000
    repeats = args.repeats or (10 if args.quick else 20)
    databases = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    if not args.postgres_url:
        print("PostgreSQL skipped: give --postgres-url or set COPOOL_BENCH_POSTGRES_URL",
              file=sys.stderr)  # fmt: skip
    results = {db: bench(db, args.postgres_url, count, repeats) for db in databases}
    print_table(results, count)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "ui", "quick": args.quick, "bookings": count, "repeats": repeats,
            "goal_p95_s": GOAL_P95_S,
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            **results,
        }, indent=2) + "\n")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
