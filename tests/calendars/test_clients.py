"""The feed as real clients read it: ical.js (Thunderbird), vobject, recurring-ical-events.

The case that matters: a weekly 10:00 Europe/Berlin booking must stay at 10:00 local, so
its UTC instant moves from 09:00Z to 08:00Z at the end of March and back at the end of
October. A VTIMEZONE that a client misreads shows summer occurrences an hour off.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
import vobject

from calendars import Recurrence, render_feed
from tests.calendars.factories import NOW, booking, feed, weekly_berlin

NODE_DIR = Path(__file__).parent / "node"
CANCELLED = datetime(2025, 4, 7, 8, 0, tzinfo=UTC)


def weekly_instants(zone: str, first: tuple[int, int, int, int], until_year: int) -> list[datetime]:
    """UTC instants of one wall-clock time (y, m, d, hour) weekly in ``zone`` to ``until_year``."""
    tz = ZoneInfo(zone)
    day = datetime(*first, tzinfo=tz)
    out = []
    while day.year <= until_year:
        out.append(day.astimezone(UTC))
        day += timedelta(days=7)  # aware + timedelta keeps the wall-clock time
    return out


EXPECTED_BERLIN = [
    t for t in weekly_instants("Europe/Berlin", (2025, 1, 6, 10), 2025) if t != CANCELLED
]


def test_expected_instants_cross_both_changes() -> None:
    by_day = {t.date().isoformat(): t.strftime("%H:%MZ") for t in EXPECTED_BERLIN}
    assert by_day["2025-03-24"] == "09:00Z"
    assert by_day["2025-03-31"] == "08:00Z"
    assert by_day["2025-10-20"] == "08:00Z"
    assert by_day["2025-10-27"] == "09:00Z"
    assert "2025-04-07" not in by_day
    assert len(EXPECTED_BERLIN) == 51


def body_with_series() -> bytes:
    extra = [
        booking(
            1,
            uid="nyc@copool.test",
            start=datetime(2025, 1, 6, 15, 0, tzinfo=UTC),  # 10:00 in New York (EST)
            end=datetime(2025, 1, 6, 16, 0, tzinfo=UTC),
            recurrence=Recurrence("FREQ=WEEKLY;UNTIL=20251231T235959", "America/New_York"),
        ),
        booking(
            2,
            uid="sydney@copool.test",
            start=datetime(2025, 1, 5, 23, 0, tzinfo=UTC),  # 10:00 Monday in Sydney (AEDT)
            end=datetime(2025, 1, 6, 0, 0, tzinfo=UTC),
            recurrence=Recurrence("FREQ=WEEKLY;UNTIL=20251231T235959", "Australia/Sydney"),
        ),
        booking(3),  # a single booking, written in UTC
    ]
    return render_feed(feed(), [weekly_berlin(), *extra], now=NOW)


EXPECTED = {
    "weekly-calibration@copool.test": EXPECTED_BERLIN,
    "nyc@copool.test": weekly_instants("America/New_York", (2025, 1, 6, 10), 2025),
    "sydney@copool.test": weekly_instants("Australia/Sydney", (2025, 1, 6, 10), 2025),
}


def starts_by_uid(pairs: list[tuple[str, datetime]]) -> dict[str, list[datetime]]:
    out: dict[str, list[datetime]] = {}
    for uid, start in sorted(pairs, key=lambda p: p[1]):
        out.setdefault(uid, []).append(start)
    return out


def run_ical_js(body: bytes) -> dict[str, Any]:
    if shutil.which("node") is None:
        pytest.skip("node is not on PATH: install Node 20 to run the ical.js client test")
    if not (NODE_DIR / "node_modules" / "ical.js").is_dir():
        pytest.skip("ical.js is not installed: run `npm ci --prefix tests/calendars/node`")
    done = subprocess.run(
        ["node", str(NODE_DIR / "expand.mjs"), "2026-01-01T00:00:00Z"],
        input=body,
        capture_output=True,
        check=True,
        timeout=60,
    )
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_ical_js_reads_the_right_utc_instants_across_dst() -> None:
    result = run_ical_js(body_with_series())
    got = starts_by_uid([(e["uid"], parse_iso(e["start"])) for e in result["events"]])
    for uid, expected in EXPECTED.items():
        assert got[uid] == expected, uid
    ends = {
        parse_iso(e["start"]): parse_iso(e["end"])
        for e in result["events"]
        if e["uid"] == "weekly-calibration@copool.test"
    }
    assert all(end - start == timedelta(minutes=90) for start, end in ends.items())
    assert got["booking-3@copool.test"] == [booking(3).start]


def test_ical_js_sees_status_and_summary() -> None:
    result = run_ical_js(render_feed(feed(), [booking(1, summary="Prüfung, Teil 2")], now=NOW))
    assert result["events"] == [
        {
            "uid": "booking-1@copool.test",
            "status": "CONFIRMED",
            "summary": "Prüfung, Teil 2",
            "start": "2025-02-02T09:00:00.000Z",
            "end": "2025-02-02T11:00:00.000Z",
        }
    ]


def test_vobject_reads_the_right_utc_instants_across_dst() -> None:
    cal = vobject.readOne(body_with_series().decode("utf-8"))
    pairs = []
    for vevent in cal.vevent_list:
        uid = vevent.uid.value
        if not hasattr(vevent, "rrule"):
            pairs.append((uid, vevent.dtstart.value.astimezone(UTC)))
            continue
        # vobject builds the zone from our VTIMEZONE, not from zoneinfo.
        assert not isinstance(vevent.dtstart.value.tzinfo, ZoneInfo)
        pairs += [(uid, start.astimezone(UTC)) for start in vevent.getrruleset(addRDate=True)]
    got = starts_by_uid(pairs)
    for uid, expected in EXPECTED.items():
        assert got[uid] == expected, uid


def test_recurring_ical_events_reads_the_right_utc_instants_across_dst() -> None:
    cal = icalendar.Calendar.from_ical(body_with_series())
    occurrences = recurring_ical_events.of(cal).between(
        datetime(2025, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC)
    )
    got = starts_by_uid(
        [(str(o["UID"]), o.decoded("DTSTART").astimezone(UTC)) for o in occurrences]
    )
    for uid, expected in EXPECTED.items():
        assert got[uid] == expected, uid
