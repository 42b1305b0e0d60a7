"""Benchmark of calendar feeds (issue 6): through the app over HTTP, and in the library.

HTTP: 5,000 bookings of one unit's ten experts are seeded into a fresh, migrated SQLite
database (and PostgreSQL when ``COPOOL_BENCH_POSTGRES_URL`` names a server: a throwaway
database is made there), a unit feed is made over them, and ``GET /feeds/{token}.ics`` is
timed through the app in-process (Litestar's TestClient, so no network): the cold full
answer (query, records, render; the process's caches of versions and bodies emptied before
each fetch), the same fetch again without validators (the body cached for the current
version, which is what Google's validator-less polls get), and the 304 path
(``If-None-Match`` with the current ETag: answered from the worker's memory of the token's
last ETag, no database read and no render). A second feed
covers one busy expert with 5,000 bookings of their own, for its size.
Library: render and ETag on 5,000 in-memory records, without database or HTTP.
Goals: cold full render ≤ 250 ms; the 304 path ≥ 40× faster than the cold full render;
bodies under 1 MB (the app caps them at ``app.feeds.services.MAX_FEED_BYTES``).

    python benchmarks/feeds.py                 # full run, prints a table
    python benchmarks/feeds.py --quick --json var/bench/feeds.json

JSON: ``render_ms`` (cold), ``not_modified_ms``, ``speedup``, ``feed_bytes`` are the HTTP
figures of the unit feed on SQLite, ``cached_render_ms`` the repeated fetch, ``uncapped_bytes``
the size without the cap, ``expert_feed`` the busy expert's feed; ``http_postgresql`` holds
the same for PostgreSQL, ``library`` the library-level figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

# Run as a script, Python puts benchmarks/ first on sys.path, where benchmarks/ledger.py
# would shadow the ledger package that the app imports.
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)

from calendars import (
    BookingRecord,
    BookingStatus,
    FeedSpec,
    Recurrence,
    feed_etag,
    feed_last_modified,
    render_feed,
)

RENDER_GOAL_MS = 250.0
SPEEDUP_GOAL = 40.0
SIZE_GOAL_BYTES = 1_000_000
"""Google drops subscriptions over about 1 MB."""
NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def make_bookings(n: int, seed: int = 6) -> list[BookingRecord]:
    """``n`` bookings of a busy unit feed spread over the default window, with some
    recurring, cancelled, tentative and busy-only ones, and non-ASCII text."""
    rng = random.Random(seed)
    start_of_window = NOW - timedelta(days=90)
    statuses = [BookingStatus.CONFIRMED] * 6 + [
        BookingStatus.TENTATIVE,
        BookingStatus.PENDING_APPROVAL,
        BookingStatus.COMPLETED,
        BookingStatus.CANCELLED,
    ]
    out = []
    for i in range(n):
        day = rng.randrange(0, 90 + 540)
        start = start_of_window + timedelta(days=day, hours=rng.randrange(6, 16))
        status = rng.choice(statuses)
        recurrence = None
        if i % 50 == 0:
            recurrence = Recurrence(
                "FREQ=WEEKLY;BYDAY=MO,WE;UNTIL=20260630T235959",
                "Europe/Berlin",
                exdates=(start + timedelta(days=14),),
            )
        out.append(
            BookingRecord(
                uid=f"booking-{i:06d}@copool.example",
                resource=rng.choice(["Mass spectrometer MS-4", "Dr. Jürgen Weiß", "Drone DJI-7"]),
                summary=f"Joint project Ostsee-Hochwasser, work package {i % 37}",
                description="Requested by Unit 12 (Hydrology); approved under agreement A-2025-07",
                location="Building 4, room 2.17",
                start=start,
                end=start + timedelta(hours=rng.choice([1, 2, 4])),
                status=status,
                sequence=rng.randrange(0, 4),
                last_modified=NOW - timedelta(minutes=rng.randrange(1, 200_000)),
                cancelled_at=NOW - timedelta(days=rng.randrange(0, 6))
                if status is BookingStatus.CANCELLED
                else None,
                recurrence=recurrence,
                busy_only=i % 7 == 0,
            )
        )
    return out


def best_and_median_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    fn()  # warm caches (VTIMEZONE, zoneinfo)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return min(times), statistics.median(times)


def library_bench(n: int, quick: bool) -> dict[str, Any]:
    """Render vs ETag on ``n`` in-memory records: the library's share of a fetch."""
    repeats_render, repeats_etag = (5, 50) if quick else (30, 500)
    spec = FeedSpec(name="Unit 12: all bookings", display_tz="Europe/Berlin")
    bookings = make_bookings(n)

    body = render_feed(spec, bookings, now=NOW)
    render_best, render_median = best_and_median_ms(
        lambda: render_feed(spec, bookings, now=NOW), repeats_render
    )
    # The 304 path: If-None-Match is compared with the ETag computed from the records.
    etag_best, etag_median = best_and_median_ms(
        lambda: feed_etag(spec, bookings, now=NOW), repeats_etag
    )
    _, last_modified_median = best_and_median_ms(
        lambda: feed_last_modified(spec, bookings, now=NOW), repeats_etag
    )
    events = body.count(b"BEGIN:VEVENT")
    return {
        "bookings": n,
        "events_in_feed": events,
        "render_ms": round(render_median, 2),
        "render_best_ms": round(render_best, 2),
        "not_modified_ms": round(etag_median, 3),
        "not_modified_best_ms": round(etag_best, 3),
        "speedup": round(render_median / etag_median, 1),
        "last_modified_ms": round(last_modified_median, 3),
        "feed_bytes": len(body),
        "bytes_per_event": round(len(body) / max(events, 1)),
        "repeats": {"render": repeats_render, "not_modified": repeats_etag},
    }


# --- through the app ----------------------------------------------------------------------


def seed(url: str, n: int) -> dict[str, str]:
    """Migrate ``url`` and fill it with ``n`` bookings of one lending unit's ten experts and
    ``n`` more of one busy expert of another unit, ~40% of them in series of 40; returns the
    tokens of a unit feed over the first (``unit``) and of the busy expert's feed
    (``expert``)."""
    from app.auth import services as auth
    from app.auth.actor import SYSTEM, Actor
    from app.auth.models import Role
    from app.auth.schemas import UserCreate
    from app.bookings.models import Booking, BookingSeries, BookingStatus
    from app.catalog.models import Expert
    from app.db import make_engine, make_session_factory, session_scope
    from app.feeds import services as feeds
    from app.feeds.models import FeedKind
    from app.feeds.schemas import FeedCreate
    from app.migrate import upgrade
    from app.projects.models import Project, ProjectShare
    from app.units.models import Unit

    upgrade(url)
    engine = make_engine(url)
    rng = random.Random(6)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    statuses = [BookingStatus.CONFIRMED] * 6 + [
        BookingStatus.TENTATIVE,
        BookingStatus.PENDING_APPROVAL,
        BookingStatus.COMPLETED,
        BookingStatus.CANCELLED,
    ]

    def manager(s: Any, unit: Any, name: str, email: str) -> Actor:
        user = auth.create_user(
            s,
            SYSTEM,
            UserCreate(unit_id=unit.id, name=name, email=email, roles=[Role.UNIT_MANAGER]),
        )
        return Actor(
            user_id=user.id, unit_id=unit.id, roles=frozenset({Role.UNIT_MANAGER}), name=name
        )

    def bookings(
        s: Any, experts: list[Any], per_expert: int, project: Any, owner: Actor, units: tuple
    ) -> list[Any]:
        borrower, lender = units
        first = now - timedelta(days=85)
        rows: list[Booking] = []
        for e_index, expert in enumerate(experts):
            # Slots three hours apart keep each expert's bookings apart (the PostgreSQL
            # exclusion constraint would refuse overlaps); 500 of them span ~62 days × 10.
            step = timedelta(hours=3 * len(experts))
            offset = timedelta(hours=3 * e_index)
            series_left = 0
            series_id = None
            for i in range(per_expert):
                start = first + offset + i * step
                if series_left == 0 and i % 100 == 0:
                    series = BookingSeries(
                        resource_id=expert.id,
                        project_id=project.id,
                        created_by=owner.user_id,
                        title="Weekly sounding",
                        rrule="FREQ=DAILY;INTERVAL=30;COUNT=40",
                        time_zone="Europe/Berlin",
                        local_start=start.astimezone(ZoneInfo("Europe/Berlin"))
                        .replace(tzinfo=None)
                        .isoformat(timespec="seconds"),
                        duration_minutes=60,
                        skipped=[],
                    )
                    s.add(series)
                    s.flush()
                    series_id, series_left = series.id, 40
                in_series = series_left > 0
                status = BookingStatus.CONFIRMED if in_series else rng.choice(statuses)
                end = start + timedelta(hours=1 if in_series else rng.choice([1, 2]))
                rows.append(
                    Booking(
                        resource_id=expert.id,
                        project_id=project.id,
                        created_by=owner.user_id,
                        series_id=series_id if in_series else None,
                        borrower_unit_id=borrower.id if rng.random() < 0.8 else lender.id,
                        lender_unit_id=lender.id,
                        title=f"Work package {i % 37}: Pegelmessung",
                        start=start,
                        end=end,
                        block_start=start,
                        block_end=end,
                        status=status.value,
                        sequence=rng.randrange(0, 4),
                        cancelled_at=now - timedelta(days=rng.randrange(0, 6))
                        if status is BookingStatus.CANCELLED
                        else None,
                    )
                )
                series_left = max(series_left - 1, 0)
        return rows

    with session_scope(make_session_factory(engine)) as s:
        lender = Unit(name="Unit 12 (Hydrology)", code="U12", description="")
        borrower = Unit(name="Unit 7 (Coast guard)", code="U7", description="")
        busy_unit = Unit(name="Unit 3 (Geodesy)", code="U3", description="")
        s.add_all([lender, borrower, busy_unit])
        s.flush()
        owner = manager(s, lender, "Dr. Jürgen Weiß", "jw@u12.example.org")
        busy_owner = manager(s, busy_unit, "Dr. Ada Brandt", "ab@u3.example.org")
        experts = [
            Expert(
                unit_id=lender.id,
                name=f"Expert {i} Weiß",
                time_zone="Europe/Berlin",
                working_hours=None,
            )
            for i in range(10)
        ]
        busy_expert = Expert(
            unit_id=busy_unit.id,
            name="Busy expert Müller",
            time_zone="Europe/Berlin",
            working_hours=None,
        )
        project = Project(
            name="Ostsee-Hochwasser",
            code="OH-25",
            lead_unit_id=borrower.id,
            lead_user_id=owner.user_id,
            start_date=(now - timedelta(days=400)).date(),
            end_date=(now + timedelta(days=800)).date(),
            currency="EUR",
        )
        s.add_all([*experts, busy_expert, project])
        s.flush()
        s.add_all(
            [
                ProjectShare(project_id=project.id, unit_id=u, share_bp=5000)
                for u in (lender.id, borrower.id)
            ]
        )
        s.add_all(bookings(s, experts, n // len(experts), project, owner, (borrower, lender)))
        s.add_all(bookings(s, [busy_expert], n, project, busy_owner, (borrower, busy_unit)))
        s.flush()
        _, unit_token = feeds.create_feed(
            s, owner, FeedCreate(kind=FeedKind.UNIT, target_id=lender.id)
        )
        _, expert_token = feeds.create_feed(
            s, busy_owner, FeedCreate(kind=FeedKind.EXPERT, target_id=busy_expert.id)
        )
    if engine.dialect.name == "postgresql":
        # What autovacuum does soon after a bulk load; without statistics the planner
        # guesses, and the aggregate behind a 304 took twice as long.
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
            conn.commit()
    engine.dispose()
    return {"unit": unit_token, "expert": expert_token}


def _left_out(body: bytes) -> int:
    """How many events a capped feed says it left out (0 if it is not capped)."""
    text = body.decode("utf-8").replace("\r\n ", "")
    marker = "X-WR-CALDESC:"
    for line in text.split("\r\n"):
        if line.startswith(marker) and "bookings that start last" in line:
            return int(line.split("the ", 1)[1].split(" ", 1)[0])
    return 0


def http_bench(url: str, n: int, quick: bool) -> dict[str, Any]:
    """Seed ``url`` and time cold, cached and 304 answers of ``GET /feeds/{token}.ics``."""
    import logging

    from litestar.testing import TestClient

    from app.feeds import services
    from app.main import create_app
    from app.settings import Settings

    logging.getLogger("httpx").setLevel(logging.WARNING)  # it logs every URL, token included
    t0 = time.perf_counter()
    tokens = seed(url, n)
    seed_s = time.perf_counter() - t0
    app = create_app(Settings(database_url=url, log_level="WARNING"))
    repeats_render, repeats_304 = (7, 50) if quick else (30, 300)
    path = f"/feeds/{tokens['unit']}.ics"
    expert_path = f"/feeds/{tokens['expert']}.ics"

    def forget() -> None:
        services.RENDERED_BODIES.clear()
        services.KNOWN_VERSIONS.clear()
        services.RECENT_ETAGS.clear()

    try:
        with TestClient(app=app) as client:
            full = client.get(path)
            assert full.status_code == 200, full.text
            etag, last_modified = full.headers["etag"], full.headers["last-modified"]

            def cold() -> None:
                forget()
                assert client.get(path).status_code == 200

            def cached() -> None:
                assert client.get(path).content == full.content

            def not_modified() -> None:
                assert client.get(path, headers={"If-None-Match": etag}).status_code == 304

            def not_modified_since() -> None:
                answer = client.get(path, headers={"If-Modified-Since": last_modified})
                assert answer.status_code == 304

            render_best, render_median = best_and_median_ms(cold, repeats_render)
            cached_best, cached_median = best_and_median_ms(cached, repeats_304)
            nm_best, nm_median = best_and_median_ms(not_modified, repeats_304)
            _, ims_median = best_and_median_ms(not_modified_since, repeats_304)
            _, health_median = best_and_median_ms(lambda: client.get("/health"), repeats_304)

            expert = client.get(expert_path)
            assert expert.status_code == 200, expert.text

            def expert_cold() -> None:
                forget()
                assert client.get(expert_path).status_code == 200

            expert_best, expert_median = best_and_median_ms(expert_cold, repeats_render)
            # The same two feeds without the size cap, for what the cap leaves out.
            cap = services.MAX_FEED_BYTES
            services.MAX_FEED_BYTES = None  # type: ignore[assignment]
            try:
                forget()
                uncapped = len(client.get(path).content)
                expert_uncapped = client.get(expert_path).content
            finally:
                services.MAX_FEED_BYTES = cap
                forget()
    finally:
        app.state.engine.dispose()
    body = full.content
    events = body.count(b"BEGIN:VEVENT")
    expert_events = expert.content.count(b"BEGIN:VEVENT")
    return {
        "bookings": n,
        "events_in_feed": events,
        "events_left_out": _left_out(body),
        "render_ms": round(render_median, 2),
        "render_best_ms": round(render_best, 2),
        "cached_render_ms": round(cached_median, 3),
        "cached_render_best_ms": round(cached_best, 3),
        "not_modified_ms": round(nm_median, 3),
        "not_modified_best_ms": round(nm_best, 3),
        "not_modified_since_ms": round(ims_median, 3),
        "speedup": round(render_median / nm_median, 1),
        "feed_bytes": len(body),
        "uncapped_bytes": uncapped,
        "max_feed_bytes": cap,
        "bytes_per_event": round(len(body) / max(events, 1)),
        "expert_feed": {
            "bookings": n,
            "events_in_feed": expert_events,
            "events_left_out": _left_out(expert.content),
            "render_ms": round(expert_median, 2),
            "render_best_ms": round(expert_best, 2),
            "feed_bytes": len(expert.content),
            "uncapped_bytes": len(expert_uncapped),
            "uncapped_events": expert_uncapped.count(b"BEGIN:VEVENT"),
        },
        "client_overhead_ms": round(health_median, 3),
        "seed_s": round(seed_s, 1),
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "repeats": {"render": repeats_render, "not_modified": repeats_304},
    }


@contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """A throwaway database on the server at ``server_url``, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    server = make_url(server_url)
    name = f"copool_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _goals(r: dict[str, Any]) -> dict[str, bool]:
    goals = {
        "render_goal_met": r["render_ms"] <= RENDER_GOAL_MS,
        "speedup_goal_met": r["speedup"] >= SPEEDUP_GOAL,
    }
    if "expert_feed" in r:
        largest = max(r["feed_bytes"], r["expert_feed"]["feed_bytes"])
        goals["size_goal_met"] = largest < SIZE_GOAL_BYTES
    return goals


def _rows(label: str, r: dict[str, Any]) -> list[tuple[str, str]]:
    rows = [
        (f"{label}: bookings / events", f"{r['bookings']} / {r['events_in_feed']}"),
        (
            f"{label}: full render, cold (median)",
            f"{r['render_ms']:.1f} ms  (goal ≤ {RENDER_GOAL_MS:.0f})",
        ),
    ]
    if "cached_render_ms" in r:
        rows.append((f"{label}: same body again, cached", f"{r['cached_render_ms']:.2f} ms"))
    rows += [
        (f"{label}: 304 (median)", f"{r['not_modified_ms']:.2f} ms"),
        (f"{label}: speedup", f"{r['speedup']:.0f}×  (goal ≥ {SPEEDUP_GOAL:.0f}×)"),
        (
            f"{label}: feed size",
            f"{r['feed_bytes'] / 1e6:.2f} MB  ({r['bytes_per_event']} B/event)",
        ),
    ]
    if "uncapped_bytes" in r:
        rows.append(
            (
                f"{label}: uncapped / left out",
                f"{r['uncapped_bytes'] / 1e6:.2f} MB / {r['events_left_out']} events",
            )
        )
    expert = r.get("expert_feed")
    if expert:
        rows.append(
            (
                f"{label}: one busy expert",
                f"{expert['render_ms']:.1f} ms cold, {expert['feed_bytes'] / 1e6:.2f} MB, "
                f"{expert['events_in_feed']} events ({expert['events_left_out']} left out; "
                f"uncapped {expert['uncapped_bytes'] / 1e6:.2f} MB)",
            )
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (< 1 min)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--bookings", type=int, default=5000)
    parser.add_argument("--library-only", action="store_true", help="skip the HTTP runs")
    args = parser.parse_args(argv)

    library = library_bench(args.bookings, args.quick)
    rows = _rows("library", library)
    result: dict[str, Any] = {}
    if not args.library_only:
        with tempfile.TemporaryDirectory() as tmp:
            sqlite = http_bench(f"sqlite:///{Path(tmp) / 'bench.db'}", args.bookings, args.quick)
        result.update(sqlite)
        result.update(_goals(sqlite))
        rows = _rows("HTTP SQLite", sqlite) + rows
        pg_server = os.environ.get("COPOOL_BENCH_POSTGRES_URL")
        if pg_server:
            with postgres_database(pg_server) as pg_url:
                pg = http_bench(pg_url, args.bookings, args.quick)
            result["http_postgresql"] = {**pg, **_goals(pg)}
            sqlite_rows = len(_rows("HTTP SQLite", sqlite))
            rows = rows[:sqlite_rows] + _rows("HTTP PostgreSQL", pg) + rows[sqlite_rows:]
    else:
        result.update(
            {k: library[k] for k in ("render_ms", "not_modified_ms", "speedup", "feed_bytes")}
        )
    result["library"] = {**library, **_goals(library)}
    result.update(
        {
            "render_goal_ms": RENDER_GOAL_MS,
            "speedup_goal": SPEEDUP_GOAL,
            "quick": args.quick,
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
    )

    width = max(len(k) for k, _ in rows)
    print(f"calendar feed benchmark{' (quick)' if args.quick else ''}")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"  wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
