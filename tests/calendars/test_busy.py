"""Importing an expert's own calendar as busy time."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from calendars import (
    BusyInterval,
    InvalidFeedInput,
    MalformedCalendar,
    TooManyOccurrences,
    parse_busy,
)

WINDOW = (datetime(2025, 3, 1, tzinfo=UTC), datetime(2025, 5, 1, tzinfo=UTC))


def ics(*events: str, extra: str = "") -> bytes:
    body = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", extra]
    for e in events:
        body += ["BEGIN:VEVENT", *e.strip().splitlines(), "END:VEVENT"]
    body.append("END:VCALENDAR")
    return "\r\n".join(line for line in body if line).encode() + b"\r\n"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_weekly_event_in_berlin_is_expanded_in_utc_across_the_march_change() -> None:
    upload = ics(
        """
UID:w1
DTSTAMP:20250101T000000Z
DTSTART;TZID=Europe/Berlin:20250317T100000
DTEND;TZID=Europe/Berlin:20250317T110000
RRULE:FREQ=WEEKLY;COUNT=3
"""
    )
    assert parse_busy(upload, *WINDOW) == [
        BusyInterval(utc(2025, 3, 17, 9), utc(2025, 3, 17, 10)),
        BusyInterval(utc(2025, 3, 24, 9), utc(2025, 3, 24, 10)),
        BusyInterval(utc(2025, 3, 31, 8), utc(2025, 3, 31, 9)),
    ]


def test_free_and_cancelled_events_are_skipped() -> None:
    upload = ics(
        "UID:a\nDTSTAMP:20250101T000000Z\nDTSTART:20250310T090000Z\nDTEND:20250310T100000Z\nTRANSP:TRANSPARENT",
        "UID:b\nDTSTAMP:20250101T000000Z\nDTSTART:20250311T090000Z\nDTEND:20250311T100000Z\nSTATUS:CANCELLED",
        "UID:c\nDTSTAMP:20250101T000000Z\nDTSTART:20250312T090000Z\nDTEND:20250312T100000Z\n"
        "X-MICROSOFT-CDO-BUSYSTATUS:FREE",
        "UID:d\nDTSTAMP:20250101T000000Z\nDTSTART:20250313T090000Z\nDTEND:20250313T100000Z",
    )
    assert parse_busy(upload, *WINDOW) == [BusyInterval(utc(2025, 3, 13, 9), utc(2025, 3, 13, 10))]


def test_all_day_events_block_the_whole_local_day() -> None:
    upload = ics(
        "UID:leave\nDTSTAMP:20250101T000000Z\nDTSTART;VALUE=DATE:20250414\nDTEND;VALUE=DATE:20250416"
    )
    assert parse_busy(upload, *WINDOW, floating_tz="Europe/Berlin") == [
        BusyInterval(utc(2025, 4, 13, 22), utc(2025, 4, 15, 22))
    ]


def test_floating_times_are_read_in_the_given_zone_and_durations_are_used() -> None:
    upload = ics("UID:f\nDTSTAMP:20250101T000000Z\nDTSTART:20250303T090000\nDURATION:PT90M")
    assert parse_busy(upload, *WINDOW, floating_tz="America/New_York") == [
        BusyInterval(utc(2025, 3, 3, 14), utc(2025, 3, 3, 15, 30))
    ]


def test_results_are_clipped_to_the_window_and_overlaps_merged() -> None:
    upload = ics(
        "UID:1\nDTSTAMP:20250101T000000Z\nDTSTART:20250228T230000Z\nDTEND:20250301T020000Z",
        "UID:2\nDTSTAMP:20250101T000000Z\nDTSTART:20250305T090000Z\nDTEND:20250305T110000Z",
        "UID:3\nDTSTAMP:20250101T000000Z\nDTSTART:20250305T100000Z\nDTEND:20250305T120000Z",
        "UID:4\nDTSTAMP:20250101T000000Z\nDTSTART:20250305T120000Z\nDTEND:20250305T130000Z",
        "UID:5\nDTSTAMP:20250101T000000Z\nDTSTART:20250601T120000Z\nDTEND:20250601T130000Z",
    )
    assert parse_busy(upload, *WINDOW) == [
        BusyInterval(utc(2025, 3, 1), utc(2025, 3, 1, 2)),
        BusyInterval(utc(2025, 3, 5, 9), utc(2025, 3, 5, 13)),
    ]


def test_a_moved_occurrence_and_an_exdate_are_respected() -> None:
    upload = ics(
        """
UID:s
DTSTAMP:20250101T000000Z
DTSTART:20250303T090000Z
DTEND:20250303T100000Z
RRULE:FREQ=DAILY;COUNT=3
EXDATE:20250304T090000Z
""",
        """
UID:s
DTSTAMP:20250101T000000Z
RECURRENCE-ID:20250305T090000Z
DTSTART:20250305T150000Z
DTEND:20250305T160000Z
""",
    )
    assert parse_busy(upload, *WINDOW) == [
        BusyInterval(utc(2025, 3, 3, 9), utc(2025, 3, 3, 10)),
        BusyInterval(utc(2025, 3, 5, 15), utc(2025, 3, 5, 16)),
    ]


@pytest.mark.parametrize(
    "upload",
    [
        b"",
        b"hello, this is not a calendar",
        b"BEGIN:VEVENT\r\nUID:x\r\nEND:VEVENT\r\n",
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:2025-03-03\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\nDTSTART:20250303T090000Z\r\n"
        b"RRULE:FREQ=NEVER\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n",
        b"\xff\xfe\x00garbage",
    ],
)
def test_malformed_uploads_raise_malformed_calendar(upload: bytes) -> None:
    with pytest.raises(MalformedCalendar):
        parse_busy(upload, *WINDOW)


def test_expansion_is_capped() -> None:
    upload = ics(
        "UID:m\nDTSTAMP:20250101T000000Z\nDTSTART:20250301T000000Z\nDURATION:PT1M\nRRULE:FREQ=MINUTELY"
    )
    with pytest.raises(TooManyOccurrences):
        parse_busy(upload, *WINDOW, max_intervals=500)


def test_window_must_be_aware_and_ordered() -> None:
    with pytest.raises(InvalidFeedInput):
        parse_busy(ics(), WINDOW[1], WINDOW[0])
    with pytest.raises(InvalidFeedInput):
        parse_busy(ics(), datetime(2025, 1, 1), WINDOW[1])  # noqa: DTZ001
