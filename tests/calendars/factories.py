"""Small record factories with defaults for the calendars tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from calendars import BookingRecord, BookingStatus, FeedSpec, Recurrence

NOW = datetime(2025, 2, 1, 12, 0, tzinfo=UTC)
"""The instant every test renders at, unless it says otherwise."""


def feed(**overrides: Any) -> FeedSpec:
    """A feed for one device, displayed in Berlin time."""
    values: dict[str, Any] = {"name": "Mass spectrometer (Lab 4)", "display_tz": "Europe/Berlin"}
    values.update(overrides)
    return FeedSpec(**values)


def booking(n: int = 1, **overrides: Any) -> BookingRecord:
    """A confirmed two-hour booking ``n`` days after NOW."""
    start = NOW + timedelta(days=n, hours=-3)
    values: dict[str, Any] = {
        "uid": f"booking-{n}@copool.test",
        "resource": "Mass spectrometer",
        "summary": f"Baltic flood model, run {n}",
        "description": "Sample series A",
        "location": "Building 4, room 2.17",
        "start": start,
        "end": start + timedelta(hours=2),
        "status": BookingStatus.CONFIRMED,
        "sequence": 0,
        "last_modified": NOW - timedelta(days=3),
    }
    values.update(overrides)
    return BookingRecord(**values)


WEEKLY_START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)  # Monday 10:00 in Berlin (CET)


def weekly_berlin(**overrides: Any) -> BookingRecord:
    """Every Monday 10:00 to 11:30 Europe/Berlin through 2025; 7 April cancelled."""
    recurrence = overrides.pop(
        "recurrence",
        Recurrence(
            "FREQ=WEEKLY;BYDAY=MO;UNTIL=20251231T235959",
            "Europe/Berlin",
            exdates=(datetime(2025, 4, 7, 8, 0, tzinfo=UTC),),
        ),
    )
    values: dict[str, Any] = {
        "uid": "weekly-calibration@copool.test",
        "summary": "Weekly calibration",
        "start": WEEKLY_START,
        "end": WEEKLY_START + timedelta(minutes=90),
        "recurrence": recurrence,
    }
    values.update(overrides)
    return booking(**values)


def berlin_mondays_utc(year: int = 2025) -> list[datetime]:
    """The UTC instants of 10:00 Berlin time on every Monday of ``year`` from 6 January."""
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    out = []
    day = datetime(year, 1, 6, 10, 0, tzinfo=berlin)
    while day.year == year:
        out.append(day.astimezone(UTC))
        day = (day + timedelta(days=7)).replace(tzinfo=berlin)
    return out
