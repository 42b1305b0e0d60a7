"""Render a booking feed as RFC 5545 text, and version it cheaply for HTTP caching.

The same selection step feeds both :func:`render_feed` and :func:`feed_version`, so an ETag
computed without rendering changes exactly when the rendered bytes may change.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from calendars.errors import InvalidFeedInput
from calendars.icstext import content, duration, escape_text, local_stamp, utc_stamp
from calendars.records import BookingRecord, BookingStatus, FeedSpec, _utc, zone
from calendars.timezones import vtimezone_lines

PRODID = "-//copool//calendars 1//EN"
FORMAT_VERSION = "1"
"""Bump when the rendered form changes, so every ETag changes with it."""

_STATUS = {
    BookingStatus.TENTATIVE: "TENTATIVE",
    BookingStatus.PENDING_APPROVAL: "TENTATIVE",
    BookingStatus.CONFIRMED: "CONFIRMED",
    BookingStatus.COMPLETED: "CONFIRMED",
    BookingStatus.CANCELLED: "CANCELLED",
    BookingStatus.DECLINED: "CANCELLED",
}
_WITHDRAWN_PREFIX = {BookingStatus.CANCELLED: "Cancelled: ", BookingStatus.DECLINED: "Declined: "}
BUSY_SUMMARY = "Busy"


@dataclass(frozen=True, slots=True)
class FeedVersion:
    """What HTTP caching needs to know about a feed, computed without rendering it."""

    fingerprint: str
    """Hex digest that changes whenever the rendered feed may change."""
    last_modified: datetime | None
    """Latest instant ≤ now at which the feed's content changed, as far as the records
    passed in tell (None for a feed that never showed anything). Seconds are not truncated."""

    @property
    def etag(self) -> str:
        """The strong ETag header value, quotes included."""
        return f'"{self.fingerprint}"'


@dataclass(frozen=True, slots=True)
class _Selection:
    bookings: list[BookingRecord]
    zones: tuple[str, ...]
    first_year: int
    last_year: int
    changed_at: datetime | None


def _select(feed: FeedSpec, bookings: Iterable[BookingRecord], now: datetime) -> _Selection:
    """The bookings a feed shows at ``now``, in output order, and the zones it needs."""
    now = _utc(now, "now")
    window_start, window_end = feed.window(now)
    grace = feed.cancelled_grace
    back, ahead = feed.window_back, feed.window_ahead
    kept: list[BookingRecord] = []
    seen: set[str] = set()
    changes: list[datetime] = []  # instants ≤ now at which some booking entered or left

    for b in bookings:
        if b.uid in seen:
            raise InvalidFeedInput(f"booking uid {b.uid!r} appears twice in one feed")
        seen.add(b.uid)
        withdrawn = b.withdrawn_at
        if withdrawn is not None and withdrawn + grace <= now:
            changes.append(withdrawn + grace)
            continue
        if b.start >= window_end:
            continue
        last_end: datetime | None = b.end
        if b.recurrence is not None:
            if b.recurrence.until is None:
                last_end = None
            else:
                last_end = b.recurrence.until + (b.end - b.start)
        if last_end is not None and last_end <= window_start:
            changes.append(last_end + back)
            continue
        kept.append(b)
        changes.append(b.last_modified)
        changes.append(b.start - ahead)  # when it came into the window

    kept.sort(key=lambda b: (b.start, b.uid))
    zones = {feed.display_tz}
    first_year = window_start.year
    for b in kept:
        if b.recurrence is not None:
            zones.add(b.recurrence.tzid)
            first_year = min(first_year, b.start.year)
    changed_at = max((c for c in changes if c <= now), default=None)
    return _Selection(kept, tuple(sorted(zones)), first_year - 1, window_end.year + 1, changed_at)


def _event_lines(b: BookingRecord, out: list[str]) -> None:
    out.append("BEGIN:VEVENT")
    out.append(f"UID:{escape_text(b.uid)}")
    out.append(f"DTSTAMP:{utc_stamp(b.last_modified)}")
    out.append(f"SEQUENCE:{b.sequence}")
    rec = b.recurrence
    if rec is None:
        out.append(f"DTSTART:{utc_stamp(b.start)}")
        out.append(f"DTEND:{utc_stamp(b.end)}")
    else:
        tz = zone(rec.tzid)
        out.append(f"DTSTART;TZID={rec.tzid}:{local_stamp(b.start.astimezone(tz))}")
        out.append(f"DTEND;TZID={rec.tzid}:{local_stamp(b.end.astimezone(tz))}")
        out.append(f"RRULE:{rec.rrule}")
        # One EXDATE per line, in the same form as DTSTART: some clients read only the first
        # value of a comma-separated list, and some match EXDATEs to DTSTART textually.
        for x in rec.exdates:
            out.append(f"EXDATE;TZID={rec.tzid}:{local_stamp(x.astimezone(tz))}")
    summary = BUSY_SUMMARY if b.busy_only else b.summary
    prefix = _WITHDRAWN_PREFIX.get(b.status)
    if prefix:
        summary = prefix + summary
    out.append(f"SUMMARY:{escape_text(summary)}")
    if b.busy_only:
        out.append("CLASS:PRIVATE")
    else:
        if b.description:
            out.append(f"DESCRIPTION:{escape_text(b.description)}")
        if b.location:
            out.append(f"LOCATION:{escape_text(b.location)}")
        if b.resource:
            out.append(f"RESOURCES:{escape_text(b.resource)}")
    out.append(f"STATUS:{_STATUS[b.status]}")
    if prefix:
        # A withdrawn booking no longer makes anyone busy.
        out.append("TRANSP:TRANSPARENT")
    out.append("END:VEVENT")


def render_feed(feed: FeedSpec, bookings: Iterable[BookingRecord], *, now: datetime) -> bytes:
    """The feed as UTF-8 RFC 5545 bytes: same inputs and ``now`` give the same bytes."""
    sel = _select(feed, bookings, now)
    ttl = duration(feed.refresh_interval)
    name = escape_text(feed.name)
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        f"PRODID:{PRODID}",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        f"NAME:{name}",
        f"X-WR-CALNAME:{name}",
        f"X-WR-TIMEZONE:{feed.display_tz}",
    ]
    if feed.description:
        lines.append(f"DESCRIPTION:{escape_text(feed.description)}")
        lines.append(f"X-WR-CALDESC:{escape_text(feed.description)}")
    lines.append(f"REFRESH-INTERVAL;VALUE=DURATION:{ttl}")
    lines.append(f"X-PUBLISHED-TTL:{ttl}")
    for tz_name in sel.zones:
        lines.extend(vtimezone_lines(tz_name, sel.first_year, sel.last_year))
    for b in sel.bookings:
        _event_lines(b, lines)
    lines.append("END:VCALENDAR")
    return content(lines)


def feed_version(
    feed: FeedSpec, bookings: Iterable[BookingRecord], *, now: datetime
) -> FeedVersion:
    """ETag and Last-Modified of the feed :func:`render_feed` would give, without rendering.

    The fingerprint covers the feed's settings and each shown booking's uid, sequence,
    last_modified, status and privacy; so ``last_modified`` must advance whenever anything
    shown of a booking changes.
    """
    sel = _select(feed, bookings, now)
    h = hashlib.blake2b(digest_size=16)
    h.update(
        f"{FORMAT_VERSION}\x1e{feed!r}\x1e{sel.zones}\x1e{sel.first_year}\x1e{sel.last_year}\x1e".encode()
    )
    h.update(
        "".join(
            [
                f"{b.uid}\x1f{b.sequence}\x1f{b.last_modified.timestamp()}\x1f{b.status.value}"
                f"\x1f{int(b.busy_only)}\x1e"
                for b in sel.bookings
            ]
        ).encode()
    )
    return FeedVersion(h.hexdigest(), sel.changed_at)


def feed_fingerprint(feed: FeedSpec, bookings: Iterable[BookingRecord], *, now: datetime) -> str:
    """Just the fingerprint of :func:`feed_version` (hex, no quotes)."""
    return feed_version(feed, bookings, now=now).fingerprint
