"""SEQUENCE rules and the ETag/Last-Modified computed without rendering."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from calendars import (
    BookingStatus,
    feed_etag,
    feed_fingerprint,
    feed_version,
    next_sequence,
    render_feed,
    sequence_must_rise,
)
from tests.calendars.factories import NOW, booking, feed, weekly_berlin


def test_sequence_rises_on_time_resource_or_status_change_only() -> None:
    b = booking(1, sequence=3)
    later = timedelta(hours=1)
    for changed in (
        replace(b, start=b.start + later, end=b.end + later),
        replace(b, end=b.end + later),
        replace(b, resource="Other device"),
        replace(b, status=BookingStatus.CANCELLED),
    ):
        assert sequence_must_rise(b, changed)
        assert next_sequence(b, changed) == 4
    for same in (replace(b, summary="New title"), replace(b, description="More notes")):
        assert not sequence_must_rise(b, same)
        assert next_sequence(b, same) == 3


def test_changing_a_booking_keeps_uid_raises_sequence_and_changes_the_etag() -> None:
    before = booking(1)
    after = replace(
        before,
        start=before.start + timedelta(hours=1),
        end=before.end + timedelta(hours=1),
        last_modified=NOW - timedelta(minutes=5),
    )
    after = replace(after, sequence=next_sequence(before, after))
    v1 = feed_version(feed(), [before], now=NOW)
    v2 = feed_version(feed(), [after], now=NOW)
    assert v1.etag != v2.etag
    assert v2.last_modified == after.last_modified
    body = render_feed(feed(), [after], now=NOW).decode()
    assert "UID:booking-1@copool.test\r\n" in body
    assert "SEQUENCE:1\r\n" in body


def test_etag_is_strong_and_the_same_for_equal_records() -> None:
    records = [booking(n) for n in range(1, 20)] + [weekly_berlin()]
    v = feed_version(feed(), records, now=NOW)
    assert v.etag.startswith('"') and v.etag.endswith('"') and not v.etag.startswith("W/")
    rebuilt = [booking(n) for n in range(1, 20)] + [weekly_berlin()]
    assert feed_version(feed(), rebuilt, now=NOW) == v
    assert feed_etag(feed(), rebuilt, now=NOW) == v.etag
    assert feed_fingerprint(feed(), records, now=NOW) == v.fingerprint
    # An hour later nothing entered or left the window: same ETag, no render needed.
    assert feed_version(feed(), records, now=NOW + timedelta(hours=1)).etag == v.etag


def test_etag_changes_with_privacy_feed_settings_and_grace_expiry() -> None:
    b = booking(1)
    base = feed_version(feed(), [b], now=NOW).etag
    assert feed_version(feed(), [replace(b, busy_only=True)], now=NOW).etag != base
    assert feed_version(feed(name="Renamed"), [b], now=NOW).etag != base
    assert feed_version(feed(display_tz="Europe/Paris"), [b], now=NOW).etag != base

    gone = booking(2, status=BookingStatus.CANCELLED, cancelled_at=NOW - timedelta(days=6))
    spec = feed()
    during = feed_version(spec, [b, gone], now=NOW)
    after = feed_version(spec, [b, gone], now=NOW + timedelta(days=1))
    assert during.etag != after.etag
    # Last-Modified moves to the moment the cancelled booking left the feed.
    assert after.last_modified == gone.cancelled_at + spec.cancelled_grace  # type: ignore[operator]


def test_equal_etags_mean_equal_bodies_as_the_window_moves() -> None:
    records = [booking(n) for n in range(-100, 600, 7)]
    spec = feed(window_back=timedelta(days=30), window_ahead=timedelta(days=60))
    seen: dict[str, bytes] = {}
    for hours in range(0, 24 * 40, 13):
        now = NOW + timedelta(hours=hours)
        etag = feed_version(spec, records, now=now).etag
        body = render_feed(spec, records, now=now)
        assert seen.setdefault(etag, body) == body
    assert len(seen) > 10
    assert len(set(seen.values())) == len(seen)  # and a new body always gets a new ETag


def test_last_modified_never_lies_in_the_future() -> None:
    future_edit = booking(1, last_modified=NOW + timedelta(days=1))
    v = feed_version(feed(), [booking(2), future_edit], now=NOW)
    assert v.last_modified is not None and v.last_modified <= NOW
