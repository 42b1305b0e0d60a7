"""Golden feeds: any change to the rendered bytes shows up as a diff to review.

Regenerate after an intended change with ``COPOOL_UPDATE_GOLDEN=1 pytest tests/calendars``
and read the diff before committing it (bump ``calendars.feed.FORMAT_VERSION`` too).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from calendars import BookingStatus, FeedSpec, Recurrence, render_feed
from tests.calendars.factories import NOW, booking, feed, weekly_berlin

GOLDEN = Path(__file__).parent / "golden"


def device_feed() -> bytes:
    return render_feed(
        feed(description="Bookings of the shared mass spectrometer; lent by Unit 3"),
        [
            weekly_berlin(sequence=2),
            booking(1, status=BookingStatus.PENDING_APPROVAL, summary="Flood model, calibration"),
            booking(2, summary="Überprüfung der Ionenquelle 🧪 für das gemeinsame Ostsee-Projekt"),
            booking(
                3,
                status=BookingStatus.CANCELLED,
                sequence=1,
                cancelled_at=NOW - timedelta(days=1),
                description="Moved to March;\nsee ticket 12, part 2",
            ),
            booking(4, busy_only=True),
        ],
        now=NOW,
    )


def expert_feed_new_york() -> bytes:
    start = datetime(2025, 3, 3, 14, 30, tzinfo=UTC)
    return render_feed(
        FeedSpec(name="Ada Lovelace: my bookings", display_tz="America/New_York"),
        [
            booking(
                7,
                uid="series-7@copool.test",
                start=start,
                end=start + timedelta(hours=1),
                recurrence=Recurrence(
                    "FREQ=DAILY;COUNT=10;BYDAY=MO,TU,WE,TH,FR", "America/New_York"
                ),
            )
        ],
        now=NOW,
    )


@pytest.mark.parametrize(
    ("name", "render"),
    [("device_feed.ics", device_feed), ("expert_feed_new_york.ics", expert_feed_new_york)],
)
def test_feed_matches_golden_file(name: str, render: object) -> None:
    assert callable(render)
    body = render()
    path = GOLDEN / name
    if os.environ.get("COPOOL_UPDATE_GOLDEN") == "1":
        path.write_bytes(body)
    assert path.exists(), f"{path} missing: run with COPOOL_UPDATE_GOLDEN=1"
    assert body == path.read_bytes()
