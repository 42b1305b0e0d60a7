"""Busy time from an uploaded ``.ics`` (an expert's own calendar), as UTC intervals."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events

from calendars.errors import InvalidFeedInput, MalformedCalendar, TooManyOccurrences
from calendars.records import BusyInterval, _utc, zone

MAX_INTERVALS = 20_000
"""Default cap on occurrences expanded from one upload (a FREQ=MINUTELY rule is cheap to
write and expensive to expand)."""

# What a broken upload can raise inside icalendar, dateutil or recurring-ical-events.
_PARSE_ERRORS = (ValueError, TypeError, KeyError, IndexError, AttributeError, OverflowError)


def _instant(value: date | datetime, floating_tz: ZoneInfo) -> datetime:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=floating_tz)).astimezone(UTC)
    # An all-day date is the whole local day in the calendar owner's zone.
    return datetime.combine(value, time(), floating_tz).astimezone(UTC)


def _is_free(event: icalendar.cal.Component) -> bool:
    if str(event.get("TRANSP", "OPAQUE")).upper() == "TRANSPARENT":
        return True
    if str(event.get("STATUS", "")).upper() == "CANCELLED":
        return True
    return str(event.get("X-MICROSOFT-CDO-BUSYSTATUS", "")).upper() == "FREE"


def _span(event: icalendar.cal.Component, floating_tz: ZoneInfo) -> tuple[datetime, datetime]:
    if "DTSTART" not in event:
        raise MalformedCalendar(f"event {event.get('UID', '?')!s} has no DTSTART")
    raw_start: date | datetime = event.decoded("DTSTART")
    raw_end: date | datetime
    if "DTEND" in event:
        raw_end = event.decoded("DTEND")
    elif "DURATION" in event:
        raw_end = raw_start + event.decoded("DURATION")
    elif isinstance(raw_start, datetime):
        raw_end = raw_start  # RFC 5545: a DTSTART-only timed event takes no time
    else:
        raw_end = raw_start + timedelta(days=1)  # ... and a date-only one takes that day
    if not isinstance(raw_start, date) or not isinstance(raw_end, date):
        raise MalformedCalendar(f"event {event.get('UID', '?')!s} has an unusable start or end")
    return _instant(raw_start, floating_tz), _instant(raw_end, floating_tz)


def _merge(intervals: list[BusyInterval]) -> list[BusyInterval]:
    merged: list[BusyInterval] = []
    for iv in sorted(intervals):
        if merged and iv.start <= merged[-1].end:
            if iv.end > merged[-1].end:
                merged[-1] = BusyInterval(merged[-1].start, iv.end)
        else:
            merged.append(iv)
    return merged


def _occurrences(cal: icalendar.Calendar, start: datetime) -> Iterator[icalendar.cal.Component]:
    return recurring_ical_events.of(cal, components=["VEVENT"]).after(start)


def parse_busy(
    ics: bytes | str,
    window_start: datetime,
    window_end: datetime,
    *,
    floating_tz: str = "UTC",
    max_intervals: int = MAX_INTERVALS,
) -> list[BusyInterval]:
    """Busy intervals of an iCalendar upload inside ``[window_start, window_end)``.

    Repeating events are expanded; transparent (free), cancelled and Outlook-"free" events
    are skipped; all-day events block their whole day. Floating times and dates are read in
    ``floating_tz``. The result is in UTC, clipped to the window, sorted, with overlapping
    or touching intervals merged. Unreadable input raises :class:`MalformedCalendar`.
    """
    lo = _utc(window_start, "window_start")
    hi = _utc(window_end, "window_end")
    if hi <= lo:
        raise InvalidFeedInput("window_end must be after window_start")
    tz = zone(floating_tz)
    if isinstance(ics, str):
        ics = ics.encode("utf-8")
    if not ics.strip():
        raise MalformedCalendar("the upload is empty")
    try:
        cal = icalendar.Calendar.from_ical(ics)
    except _PARSE_ERRORS as exc:
        raise MalformedCalendar(f"not a readable iCalendar file: {exc}") from exc
    if not isinstance(cal, icalendar.Calendar) or cal.name != "VCALENDAR":
        raise MalformedCalendar("the upload does not start with BEGIN:VCALENDAR")

    found: list[BusyInterval] = []
    count = 0
    try:
        for event in _occurrences(cal, lo):
            start, end = _span(event, tz)
            if start >= hi:
                break  # occurrences come in order of start
            count += 1
            if count > max_intervals:
                raise TooManyOccurrences(max_intervals)
            if _is_free(event):
                continue
            start, end = max(start, lo), min(end, hi)
            if start < end:
                found.append(BusyInterval(start, end))
    except (MalformedCalendar, TooManyOccurrences):
        raise
    except _PARSE_ERRORS as exc:
        raise MalformedCalendar(f"cannot expand the calendar's events: {exc}") from exc
    return _merge(found)
