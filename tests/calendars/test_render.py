"""What a subscriber's calendar gets: bytes, structure, statuses, window and privacy."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import icalendar
import pytest

from calendars import (
    MIN_FEED_BYTES,
    BookingRecord,
    BookingStatus,
    FeedSpec,
    InvalidFeedInput,
    Recurrence,
    UnknownTimeZone,
    render_feed,
)
from tests.calendars.factories import NOW, booking, feed, weekly_berlin


def events(body: bytes) -> dict[str, icalendar.Event]:
    cal = icalendar.Calendar.from_ical(body)
    return {str(e["UID"]): e for e in cal.walk("VEVENT")}


def unfolded_lines(body: bytes) -> list[str]:
    return body.decode("utf-8").replace("\r\n ", "").split("\r\n")


# --- byte rules -------------------------------------------------------------------------


def test_every_line_ends_in_crlf_and_no_bare_lf_or_cr() -> None:
    body = render_feed(feed(), [booking(1), weekly_berlin()], now=NOW)
    assert body.endswith(b"END:VCALENDAR\r\n")
    assert b"\n" not in body.replace(b"\r\n", b"")
    assert b"\r" not in body.replace(b"\r\n", b"")


def test_long_utf8_lines_fold_at_75_octets_without_splitting_a_character() -> None:
    summary = "Überprüfung 🧪 der Spektrometer-Kalibrierung für Ostsee-Hochwassermodell " * 4
    body = render_feed(feed(), [booking(1, summary=summary, description="ß" * 200)], now=NOW)
    physical = body.split(b"\r\n")
    assert max(len(line) for line in physical) == 75
    for line in physical:
        assert len(line) <= 75
        line.decode("utf-8")  # each physical line is valid UTF-8 on its own
    assert events(body)["booking-1@copool.test"]["SUMMARY"] == summary


def test_text_is_escaped_and_reads_back_exactly() -> None:
    text = 'Commas, semicolons; back\\slash\nnew line and "quotes"'
    body = render_feed(feed(), [booking(1, summary=text, location="A;B,C")], now=NOW)
    assert "SUMMARY:Commas\\, semicolons\\; back\\\\slash\\nnew line" in body.decode()
    event = events(body)["booking-1@copool.test"]
    assert event["SUMMARY"] == text
    assert event["LOCATION"] == "A;B,C"


def test_control_characters_and_cr_do_not_reach_the_feed() -> None:
    body = render_feed(feed(), [booking(1, summary="bell\x07 and\r\nCRLF")], now=NOW)
    assert events(body)["booking-1@copool.test"]["SUMMARY"] == "bell and\nCRLF"


# --- structure --------------------------------------------------------------------------


def test_calendar_properties_with_the_formats_clients_need() -> None:
    lines = unfolded_lines(render_feed(feed(name="Lab 4, devices"), [booking(1)], now=NOW))
    assert "NAME:Lab 4\\, devices" in lines
    assert "X-WR-CALNAME:Lab 4\\, devices" in lines
    assert "X-WR-TIMEZONE:Europe/Berlin" in lines
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT1H" in lines
    assert "X-PUBLISHED-TTL:PT1H" in lines
    assert lines[:2] == ["BEGIN:VCALENDAR", "VERSION:2.0"]


def test_refresh_interval_is_configurable() -> None:
    lines = unfolded_lines(
        render_feed(feed(refresh_interval=timedelta(minutes=90)), [booking(1)], now=NOW)
    )
    assert "REFRESH-INTERVAL;VALUE=DURATION:PT1H30M" in lines
    assert "X-PUBLISHED-TTL:PT1H30M" in lines


def test_icalendar_reads_and_validates_the_feed() -> None:
    cal = icalendar.Calendar.from_ical(render_feed(feed(), [booking(1), weekly_berlin()], now=NOW))
    cal.validate()
    for component in cal.walk():
        assert not component.errors, component.errors
    assert len(cal.walk("VEVENT")) == 2


def test_an_empty_feed_is_still_a_valid_calendar() -> None:
    cal = icalendar.Calendar.from_ical(render_feed(FeedSpec(name="Nobody"), [], now=NOW))
    cal.validate()
    assert cal.walk("VEVENT") == []


@pytest.mark.parametrize("series_zone", ["Europe/Berlin", "America/New_York", "Asia/Kolkata"])
def test_every_tzid_used_has_a_vtimezone(series_zone: str) -> None:
    rec = Recurrence("FREQ=DAILY;COUNT=3", series_zone)
    body = render_feed(feed(display_tz="Europe/Lisbon"), [booking(1, recurrence=rec)], now=NOW)
    text = body.decode().replace("\r\n ", "")
    used = set(re.findall(r";TZID=([^:;]+)", text))
    defined = set(re.findall(r"\r\nTZID:([^\r]+)", text))
    assert used == {series_zone}
    assert used | {"Europe/Lisbon"} == defined


def test_vtimezone_uses_rrules_not_comma_separated_rdates() -> None:
    text = render_feed(feed(), [weekly_berlin()], now=NOW).decode()
    assert "RDATE" not in text
    assert "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU" in text
    assert "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU" in text


def test_single_bookings_are_written_in_utc() -> None:
    b = booking(1)
    lines = unfolded_lines(render_feed(feed(), [b], now=NOW))
    assert "DTSTART:20250202T090000Z" in lines
    assert "DTEND:20250202T110000Z" in lines


def test_recurring_booking_has_local_dtstart_utc_until_and_one_exdate_per_line() -> None:
    lines = unfolded_lines(render_feed(feed(), [weekly_berlin()], now=NOW))
    assert "DTSTART;TZID=Europe/Berlin:20250106T100000" in lines
    assert "DTEND;TZID=Europe/Berlin:20250106T113000" in lines
    # UNTIL was given as Berlin wall-clock time; RFC 5545 wants it in UTC.
    assert "RRULE:FREQ=WEEKLY;UNTIL=20251231T225959Z;BYDAY=MO" in lines
    assert "EXDATE;TZID=Europe/Berlin:20250407T100000" in lines


# --- identity, sequence, status ---------------------------------------------------------


def test_two_renders_of_the_same_records_are_byte_identical_whatever_the_input_order() -> None:
    records = [booking(n) for n in range(1, 30)] + [weekly_berlin()]
    first = render_feed(feed(), records, now=NOW)
    assert render_feed(feed(), list(reversed(records)), now=NOW) == first


def test_dtstamp_is_the_last_change_and_sequence_is_the_callers() -> None:
    b = booking(1, sequence=4, last_modified=datetime(2025, 1, 20, 8, 30, 15, tzinfo=UTC))
    event = events(render_feed(feed(), [b], now=NOW))[b.uid]
    assert event.decoded("DTSTAMP") == b.last_modified
    assert event["SEQUENCE"] == 4


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (BookingStatus.TENTATIVE, "TENTATIVE"),
        (BookingStatus.PENDING_APPROVAL, "TENTATIVE"),
        (BookingStatus.CONFIRMED, "CONFIRMED"),
        (BookingStatus.COMPLETED, "CONFIRMED"),
        (BookingStatus.CANCELLED, "CANCELLED"),
        (BookingStatus.DECLINED, "CANCELLED"),
    ],
)
def test_status_maps_to_rfc5545(status: BookingStatus, expected: str) -> None:
    b = booking(1, status=status, cancelled_at=NOW - timedelta(hours=1))
    assert events(render_feed(feed(), [b], now=NOW))[b.uid]["STATUS"] == expected


def test_a_cancelled_booking_is_marked_free_and_named_so() -> None:
    b = booking(1, status=BookingStatus.CANCELLED, cancelled_at=NOW - timedelta(hours=1))
    event = events(render_feed(feed(), [b], now=NOW))[b.uid]
    assert event["TRANSP"] == "TRANSPARENT"
    assert event["SUMMARY"] == "Cancelled: Baltic flood model, run 1"


def test_cancelled_stays_for_the_grace_period_then_leaves() -> None:
    cancelled_at = NOW - timedelta(days=2)
    b = booking(5, status=BookingStatus.CANCELLED, cancelled_at=cancelled_at)
    spec = feed(cancelled_grace=timedelta(days=3))
    assert b.uid in events(render_feed(spec, [b], now=NOW))
    just_before = cancelled_at + timedelta(days=3) - timedelta(seconds=1)
    assert b.uid in events(render_feed(spec, [b], now=just_before))
    assert b.uid not in events(render_feed(spec, [b], now=cancelled_at + timedelta(days=3)))


def test_grace_period_counts_from_last_change_when_cancelled_at_is_missing() -> None:
    b = booking(5, status=BookingStatus.DECLINED, last_modified=NOW - timedelta(days=8))
    assert events(render_feed(feed(), [b], now=NOW)) == {}


def test_duplicate_uids_are_refused() -> None:
    with pytest.raises(InvalidFeedInput, match="twice"):
        render_feed(feed(), [booking(1), booking(2, uid="booking-1@copool.test")], now=NOW)


# --- window -----------------------------------------------------------------------------


def test_window_keeps_bookings_that_overlap_it_and_drops_the_rest() -> None:
    spec = feed(window_back=timedelta(days=10), window_ahead=timedelta(days=20))
    start = NOW - timedelta(days=10)
    records = [
        booking(1, uid="ended-before", start=start - timedelta(hours=3), end=start),
        booking(
            2,
            uid="overlaps-start",
            start=start - timedelta(hours=1),
            end=start + timedelta(hours=1),
        ),
        booking(3, uid="inside"),
        booking(
            4, uid="starts-at-end", start=NOW + timedelta(days=20), end=NOW + timedelta(days=21)
        ),
        booking(
            5,
            uid="before-end",
            start=NOW + timedelta(days=20, seconds=-1),
            end=NOW + timedelta(days=21),
        ),
    ]
    assert set(events(render_feed(spec, records, now=NOW))) == {
        "overlaps-start",
        "inside",
        "before-end",
    }


def test_a_series_stays_while_any_occurrence_can_fall_in_the_window() -> None:
    spec = feed(window_back=timedelta(days=30))
    june = datetime(2024, 6, 3, 8, 0, tzinfo=UTC)
    ended = weekly_berlin(
        uid="ended",
        start=june,
        end=june + timedelta(hours=1),
        recurrence=Recurrence("FREQ=WEEKLY;UNTIL=20241201T090000Z", "Europe/Berlin"),
    )
    open_ended = weekly_berlin(uid="open", recurrence=Recurrence("FREQ=WEEKLY", "Europe/Berlin"))
    got = set(events(render_feed(spec, [ended, open_ended], now=NOW)))
    assert got == {"open"}


def test_default_window_is_90_days_back_and_18_months_ahead() -> None:
    spec = FeedSpec(name="x")
    start, end = spec.window(NOW)
    assert NOW - start == timedelta(days=90)
    assert 547 <= (end - NOW).days <= 549


# --- privacy ----------------------------------------------------------------------------


def test_busy_only_bookings_show_no_details() -> None:
    b = booking(1, busy_only=True, summary="Secret audit of Unit 7", description="Case 4711")
    body = render_feed(feed(), [b], now=NOW)
    event = events(body)[b.uid]
    assert event["SUMMARY"] == "Busy"
    assert event["CLASS"] == "PRIVATE"
    for prop in ("DESCRIPTION", "LOCATION", "RESOURCES"):
        assert prop not in event
    for secret in (b"Secret", b"4711", b"Building 4", b"Mass spectrometer\r\n"):
        assert secret not in body.replace(b"\r\n ", b"")


def test_details_are_shown_when_not_busy_only() -> None:
    event = events(render_feed(feed(), [booking(1)], now=NOW))["booking-1@copool.test"]
    assert event["RESOURCES"] == "Mass spectrometer"
    assert event["LOCATION"] == "Building 4, room 2.17"


# --- bad input --------------------------------------------------------------------------


def test_naive_times_unknown_zones_and_bad_rules_are_refused() -> None:
    with pytest.raises(InvalidFeedInput, match="timezone-aware"):
        booking(1, start=datetime(2025, 3, 1, 9, 0))  # noqa: DTZ001
    with pytest.raises(InvalidFeedInput, match="not after start"):
        booking(1, end=NOW)
    with pytest.raises(UnknownTimeZone):
        FeedSpec(name="x", display_tz="Mars/Olympus_Mons")
    with pytest.raises(InvalidFeedInput, match="RRULE"):
        Recurrence("FREQ=SOMETIMES", "Europe/Berlin")
    with pytest.raises(InvalidFeedInput, match="UNTIL and COUNT"):
        Recurrence("FREQ=DAILY;COUNT=2;UNTIL=20250101T000000Z", "Europe/Berlin")
    with pytest.raises(InvalidFeedInput, match="status"):
        booking(1, status="maybe")
    with pytest.raises(InvalidFeedInput, match="sequence"):
        booking(1, sequence=-1)


def test_a_date_until_includes_that_local_day() -> None:
    rec = Recurrence("FREQ=WEEKLY;UNTIL=20250630", "Europe/Berlin")
    assert rec.until == datetime(2025, 6, 30, 21, 59, 59, tzinfo=UTC)


def test_a_busy_resource_feed_stays_well_under_a_megabyte() -> None:
    # Four bookings a working day for the whole default window: a very busy device.
    start = NOW - timedelta(days=90)
    records = []
    for day in range(90 + 548):
        d = start + timedelta(days=day)
        if d.weekday() >= 5:
            continue
        for slot in range(4):
            s = d.replace(hour=7 + 2 * slot, minute=0)
            records.append(
                booking(1, uid=f"b-{day}-{slot}@copool.test", start=s, end=s + timedelta(hours=2))
            )
    body = render_feed(feed(), records, now=NOW)
    assert len(records) > 1800
    assert len(body) < 800_000


# --- size cap ---------------------------------------------------------------------------


def every_three_hours(n: int) -> list[BookingRecord]:
    """``n`` two-hour bookings, one every three hours from a day after NOW."""
    out = []
    for i in range(n):
        start = NOW + timedelta(days=1, hours=3 * i)
        out.append(
            booking(1, uid=f"b-{i:03d}@copool.test", start=start, end=start + timedelta(hours=2))
        )
    return out


def test_a_capped_feed_leaves_out_the_bookings_that_start_last_and_says_so() -> None:
    records = every_three_hours(200)
    spec = feed(max_bytes=MIN_FEED_BYTES)
    body = render_feed(spec, records, now=NOW)
    assert len(body) <= MIN_FEED_BYTES
    # filled up to the cap, less than one event (and the note's slack) short of it
    assert len(body) > MIN_FEED_BYTES - 600

    cal = icalendar.Calendar.from_ical(body)
    cal.validate()
    shown = {str(e["UID"]) for e in cal.walk("VEVENT")}
    by_start = sorted(records, key=lambda r: (r.start, r.uid))
    kept = len(shown)
    assert 0 < kept < len(records)
    assert shown == {r.uid for r in by_start[:kept]}
    note = str(cal["X-WR-CALDESC"])
    assert str(cal["DESCRIPTION"]) == note
    assert f"under {MIN_FEED_BYTES} bytes" in note
    assert f"the {len(records) - kept} bookings that start last" in note
    assert f"from {by_start[kept].start:%Y-%m-%d %H:%M} UTC on" in note
    # the cut is deterministic: the same records in another order give the same bytes
    assert render_feed(spec, list(reversed(records)), now=NOW) == body


def test_a_feed_within_its_cap_is_rendered_whole() -> None:
    records = every_three_hours(10)
    capped = render_feed(feed(max_bytes=MIN_FEED_BYTES), records, now=NOW)
    assert capped == render_feed(feed(), records, now=NOW)
    assert b"X-WR-CALDESC" not in capped


def test_a_capped_feed_keeps_its_own_description_before_the_note() -> None:
    spec = feed(max_bytes=MIN_FEED_BYTES, description="Lab 4; shared")
    cal = icalendar.Calendar.from_ical(render_feed(spec, every_three_hours(200), now=NOW))
    first, note = str(cal["DESCRIPTION"]).split("\n")
    assert first == "Lab 4; shared"
    assert str(cal["X-WR-CALDESC"]).startswith("Lab 4\\; shared\\nCut to stay under")
    assert note.startswith("Cut to stay under")


def test_a_cap_too_small_for_any_feed_is_refused() -> None:
    with pytest.raises(InvalidFeedInput):
        feed(max_bytes=MIN_FEED_BYTES - 1)
