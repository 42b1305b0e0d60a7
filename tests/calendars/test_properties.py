"""Round-trips: whatever we render, a parser reads back the same instants and text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import icalendar
import recurring_ical_events
from hypothesis import given, settings
from hypothesis import strategies as st

from calendars import BookingRecord, BookingStatus, FeedSpec, Recurrence, render_feed

NOW = datetime(2025, 6, 1, tzinfo=UTC)
ZONES = ["Europe/Berlin", "America/New_York", "Australia/Sydney", "Asia/Kolkata", "UTC"]

texts = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r"), max_size=120
)
instants = st.integers(min_value=-80 * 24 * 60, max_value=500 * 24 * 60).map(
    lambda minutes: NOW + timedelta(minutes=minutes)
)


@st.composite
def records(draw: st.DrawFn) -> list[BookingRecord]:
    out = []
    for i in range(draw(st.integers(min_value=1, max_value=6))):
        start = draw(instants)
        out.append(
            BookingRecord(
                uid=f"b{i}-" + draw(st.text("abc,;:\\ é", max_size=8)),
                resource=draw(texts),
                summary=draw(texts),
                description=draw(texts),
                location=draw(texts),
                start=start,
                end=start + timedelta(minutes=draw(st.integers(1, 60 * 24 * 3))),
                status=draw(st.sampled_from([BookingStatus.CONFIRMED, BookingStatus.TENTATIVE])),
                sequence=draw(st.integers(0, 50)),
                last_modified=NOW - timedelta(seconds=draw(st.integers(0, 10**7))),
            )
        )
    return out


def expected_text(value: str) -> str:
    return "".join(c for c in value if c in "\t\n" or not (ord(c) < 32 or ord(c) == 127))


@settings(max_examples=60, deadline=None)
@given(records())
def test_render_then_parse_gives_the_same_instants_and_text(bookings: list[BookingRecord]) -> None:
    body = render_feed(FeedSpec(name="p"), bookings, now=NOW)
    for line in body.split(b"\r\n"):
        assert len(line) <= 75
        line.decode("utf-8")
    parsed = {str(e["UID"]): e for e in icalendar.Calendar.from_ical(body).walk("VEVENT")}
    assert set(parsed) == {b.uid for b in bookings}
    for b in bookings:
        e = parsed[b.uid]
        assert e.decoded("DTSTART") == b.start.replace(microsecond=0)
        assert e.decoded("DTEND") == b.end.replace(microsecond=0)
        assert str(e["SUMMARY"]) == expected_text(b.summary)
        if b.description:
            assert str(e["DESCRIPTION"]) == expected_text(b.description)


@settings(max_examples=40, deadline=None)
@given(
    zone=st.sampled_from(ZONES),
    first=st.integers(0, 365 * 24).map(
        lambda h: datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=h)
    ),
    freq=st.sampled_from(["DAILY", "WEEKLY", "MONTHLY"]),
    count=st.integers(1, 40),
)
def test_a_series_expands_to_the_same_wall_clock_time_in_its_zone(
    zone: str, first: datetime, freq: str, count: int
) -> None:
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    local_first = first.astimezone(tz)
    b = BookingRecord(
        uid="s",
        resource="r",
        summary="s",
        start=first,
        end=first + timedelta(minutes=30),
        status=BookingStatus.CONFIRMED,
        sequence=0,
        last_modified=NOW,
        recurrence=Recurrence(f"FREQ={freq};COUNT={count}", zone),
    )
    body = render_feed(FeedSpec(name="p"), [b], now=NOW)
    starts = [
        o.decoded("DTSTART")
        for o in recurring_ical_events.of(icalendar.Calendar.from_ical(body)).between(
            first - timedelta(days=1), first + timedelta(days=count * 62 + 2)
        )
    ]
    assert len(starts) == count
    for s in starts:
        local = s.astimezone(tz)
        # Same wall-clock time every time unless that time does not exist that day.
        if (local.hour, local.minute) != (local_first.hour, local_first.minute):
            gap = datetime.combine(local.date(), local_first.timetz().replace(tzinfo=None), tz)
            assert gap.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != gap.replace(
                tzinfo=None
            )
