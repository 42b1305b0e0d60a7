"""Benchmark of calendar feeds at the library level (issue 6).

Full render of a 5,000-booking feed, and the "304 path": computing the ETag and
Last-Modified from the same records without rendering. Goals: render ≤ 250 ms, and the
304 path ≥ 20× faster than a full render.

    python benchmarks/feeds.py                 # full run, prints a table
    python benchmarks/feeds.py --quick --json var/bench/feeds.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
SPEEDUP_GOAL = 20.0
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (< 1 min)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--bookings", type=int, default=5000)
    args = parser.parse_args(argv)

    repeats_render, repeats_etag = (5, 50) if args.quick else (30, 500)
    spec = FeedSpec(name="Unit 12: all bookings", display_tz="Europe/Berlin")
    bookings = make_bookings(args.bookings)

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
    result = {
        "bookings": args.bookings,
        "events_in_feed": events,
        "render_ms": round(render_median, 2),
        "render_best_ms": round(render_best, 2),
        "not_modified_ms": round(etag_median, 3),
        "not_modified_best_ms": round(etag_best, 3),
        "speedup": round(render_median / etag_median, 1),
        "last_modified_ms": round(last_modified_median, 3),
        "feed_bytes": len(body),
        "bytes_per_event": round(len(body) / max(events, 1)),
        "render_goal_ms": RENDER_GOAL_MS,
        "speedup_goal": SPEEDUP_GOAL,
        "render_goal_met": render_median <= RENDER_GOAL_MS,
        "speedup_goal_met": render_median / etag_median >= SPEEDUP_GOAL,
        "quick": args.quick,
        "repeats": {"render": repeats_render, "not_modified": repeats_etag},
        "python": platform.python_version(),
        "machine": platform.machine(),
    }

    rows = [
        ("bookings / events in feed", f"{args.bookings} / {events}"),
        ("full render (median)", f"{result['render_ms']:.1f} ms  (goal ≤ {RENDER_GOAL_MS:.0f})"),
        ("304 path: ETag w/o render", f"{result['not_modified_ms']:.2f} ms"),
        ("speedup", f"{result['speedup']:.0f}×  (goal ≥ {SPEEDUP_GOAL:.0f}×)"),
        ("Last-Modified w/o render", f"{result['last_modified_ms']:.2f} ms"),
        ("feed size", f"{len(body) / 1e6:.2f} MB  ({result['bytes_per_event']} B/event)"),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"calendars feed benchmark{' (quick)' if args.quick else ''}")
    for key, value in rows:
        print(f"  {key:<{width}}  {value}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"  wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
