"""Render a booking feed as RFC 5545 text, and version it cheaply for HTTP caching.

The same selection step feeds both :func:`render_feed` and :func:`feed_version`, so an ETag
computed without rendering changes exactly when the rendered bytes may change.

Size cap: a feed whose :attr:`~FeedSpec.max_bytes` is set never renders larger. If all its
events do not fit, the events that start last are left out (ordered by start, then UID, so
the cut is deterministic) and the calendar's DESCRIPTION and X-WR-CALDESC say how many and
from which instant on. Google drops subscriptions over about 1 MB.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from calendars.errors import InvalidFeedInput
from calendars.icstext import duration, escape_text, fold_text, local_stamp, utc_stamp
from calendars.records import _ONE_US, BookingRecord, BookingStatus, FeedSpec, _micros, _utc, zone
from calendars.series import expand, pinned
from calendars.timezones import vtimezone_lines

PRODID = "-//copool//calendars 1//EN"
FORMAT_VERSION = "2"
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


@dataclass(frozen=True, slots=True)
class _Bounds:
    """The feed's window and grace period at ``now``, in microseconds since the epoch."""

    now: datetime
    window_start: datetime
    window_end: datetime
    now_us: int
    start_us: int
    end_us: int
    grace_us: int

    @classmethod
    def at(cls, feed: FeedSpec, now: datetime) -> _Bounds:
        now = _utc(now, "now")
        start, end = feed.window(now)
        return cls(
            now,
            start,
            end,
            _micros(now),
            _micros(start),
            _micros(end),
            feed.cancelled_grace // _ONE_US,
        )

    def shows(self, b: BookingRecord) -> bool:
        """Whether the feed shows ``b``: in the window, and not withdrawn past the grace."""
        return (
            b.withdrawn_us + self.grace_us > self.now_us
            and b.start_us < self.end_us
            and b.last_end_us > self.start_us
        )


def _select(feed: FeedSpec, bookings: Iterable[BookingRecord], now: datetime) -> _Selection:
    """The bookings a feed shows at ``now``, in output order, and the zones it needs."""
    bounds = _Bounds.at(feed, now)
    kept: list[BookingRecord] = []
    seen: set[str] = set()
    for b in bookings:
        if b.uid in seen:
            raise InvalidFeedInput(f"booking uid {b.uid!r} appears twice in one feed")
        seen.add(b.uid)
        if bounds.shows(b):
            kept.append(b)
    kept.sort(key=lambda b: (b.start, b.uid))
    zones = {feed.display_tz}
    first_year = bounds.window_start.year
    for b in kept:
        if b.recurrence is not None:
            zones.add(b.recurrence.tzid)
            first_year = min(first_year, b.start.year)
    return _Selection(kept, tuple(sorted(zones)), first_year - 1, bounds.window_end.year + 1)


def _event(b: BookingRecord, horizon: datetime) -> str:
    """One VEVENT as folded text, CRLF after each line (the caller encodes whole feeds); a
    series is followed by its overrides, gap and fold occurrences pinned (calendars.series)."""
    out = [
        "BEGIN:VEVENT",
        fold_text(f"UID:{escape_text(b.uid)}"),
        f"DTSTAMP:{utc_stamp(b.last_modified)}",
        f"SEQUENCE:{b.sequence}",
    ]
    rec = b.recurrence
    if rec is None:
        out.append(f"DTSTART:{utc_stamp(b.start)}")
        out.append(f"DTEND:{utc_stamp(b.end)}")
        return "\r\n".join([*out, *_details(b, b.summary)])
    tz = zone(rec.tzid)
    out.append(fold_text(f"DTSTART;TZID={rec.tzid}:{local_stamp(b.start.astimezone(tz))}"))
    out.append(fold_text(f"DTEND;TZID={rec.tzid}:{local_stamp(b.end.astimezone(tz))}"))
    out.append(fold_text(f"RRULE:{rec.rrule}"))
    last = rec.until or horizon
    wanted = [*rec.exdates, *(o.recurrence_id for o in rec.overrides)]
    expansion = expand(rec.rrule, rec.tzid, b.start, max([last, *wanted]))
    # One EXDATE per line, in the same form as DTSTART: some clients read only the first
    # value of a comma-separated list, and some match EXDATEs to DTSTART textually.
    for x in rec.exdates:
        wall = expansion.wall_clock.get(x) or x.astimezone(tz)
        out.append(fold_text(f"EXDATE;TZID={rec.tzid}:{local_stamp(wall)}"))
    text = "\r\n".join([*out, *_details(b, b.summary)])
    for o in pinned(rec, expansion, b.end - b.start):
        wall = expansion.wall_clock.get(o.recurrence_id) or o.recurrence_id.astimezone(tz)
        head = [
            "BEGIN:VEVENT",
            fold_text(f"UID:{escape_text(b.uid)}"),
            f"DTSTAMP:{utc_stamp(b.last_modified)}",
            f"SEQUENCE:{b.sequence}",
            fold_text(f"RECURRENCE-ID;TZID={rec.tzid}:{local_stamp(wall)}"),
            f"DTSTART:{utc_stamp(o.start)}",
            f"DTEND:{utc_stamp(o.end)}",
        ]
        text += "\r\n".join([*head, *_details(b, o.summary or b.summary)])
    return text


def _details(b: BookingRecord, summary: str) -> list[str]:
    """An event's lines after its times: summary, privacy, texts, status, the end."""
    out = []
    if b.busy_only:
        summary = BUSY_SUMMARY
    prefix = _WITHDRAWN_PREFIX.get(b.status)
    if prefix:
        summary = prefix + summary
    out.append(fold_text(f"SUMMARY:{escape_text(summary)}"))
    if b.busy_only:
        out.append("CLASS:PRIVATE")
    else:
        if b.description:
            out.append(fold_text(f"DESCRIPTION:{escape_text(b.description)}"))
        if b.location:
            out.append(fold_text(f"LOCATION:{escape_text(b.location)}"))
        if b.resource:
            out.append(fold_text(f"RESOURCES:{escape_text(b.resource)}"))
    out.append(f"STATUS:{_STATUS[b.status]}")
    if prefix:
        # A withdrawn booking no longer makes anyone busy.
        out.append("TRANSP:TRANSPARENT")
    out.append("END:VEVENT\r\n")
    return out


def _text_block(lines: Iterable[str]) -> bytes:
    return "".join(fold_text(line) + "\r\n" for line in lines).encode("utf-8")


def _head(feed: FeedSpec, cap_note: str) -> bytes:
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
    description = "\n".join(d for d in (feed.description, cap_note) if d)
    if description:
        lines.append(f"DESCRIPTION:{escape_text(description)}")
        lines.append(f"X-WR-CALDESC:{escape_text(description)}")
    lines.append(f"REFRESH-INTERVAL;VALUE=DURATION:{ttl}")
    lines.append(f"X-PUBLISHED-TTL:{ttl}")
    return _text_block(lines)


def _cap_note(feed: FeedSpec, left_out: int, first_left_out: datetime) -> str:
    """What a capped feed says about the events it leaves out (a fixed-width instant, so a
    note with more left out is never shorter)."""
    return (
        f"Cut to stay under {feed.max_bytes} bytes: the {left_out} bookings that start last "
        f"(from {first_left_out:%Y-%m-%d %H:%M} UTC on) are left out."
    )


_TAIL = b"END:VCALENDAR\r\n"


def render_feed(feed: FeedSpec, bookings: Iterable[BookingRecord], *, now: datetime) -> bytes:
    """The feed as UTF-8 RFC 5545 bytes: same inputs and ``now`` give the same bytes.

    With :attr:`FeedSpec.max_bytes` set, the events that start last are left out as far as
    needed to stay within it, and the calendar's description says so (see the module doc)."""
    sel = _select(feed, bookings, now)
    zones = _text_block(
        line
        for tz_name in sel.zones
        for line in vtimezone_lines(tz_name, sel.first_year, sel.last_year)
    )
    horizon = _Bounds.at(feed, now).window_end
    events = [_event(b, horizon).encode("utf-8") for b in sel.bookings]
    head = _head(feed, "")
    size = len(head) + len(zones) + sum(map(len, events)) + len(_TAIL)
    if feed.max_bytes is not None and size > feed.max_bytes and events:
        # Fit under the longest note any cut could need, then write the actual one.
        longest = _head(feed, _cap_note(feed, len(events), sel.bookings[0].start))
        budget = feed.max_bytes - len(longest) - len(zones) - len(_TAIL)
        kept, used = 0, 0
        for event in events:
            if used + len(event) > budget:
                break
            used += len(event)
            kept += 1
        events = events[:kept]
        head = _head(feed, _cap_note(feed, len(sel.bookings) - kept, sel.bookings[kept].start))
    return b"".join([head, zones, *events, _TAIL])


def feed_fingerprint(feed: FeedSpec, bookings: Iterable[BookingRecord], *, now: datetime) -> str:
    """A hex digest that changes whenever :func:`render_feed` may give other bytes.

    It covers the feed's settings, the window's years and each shown booking's
    :attr:`~BookingRecord.version_key` (uid, sequence, last_modified, status, privacy), so
    ``last_modified`` must advance whenever anything shown of a booking changes. It is a
    single pass without rendering or sorting: records passed in another order may give
    another fingerprint (a needless 200, never a wrong 304), so keep the order stable.
    """
    bounds = _Bounds.at(feed, now)
    grace, now_us, start_us, end_us = bounds.grace_us, bounds.now_us, bounds.start_us, bounds.end_us
    # The same test as _Bounds.shows, inlined: this loop is the whole cost of a 304.
    keys = [
        b.version_key
        for b in bookings
        if b.withdrawn_us + grace > now_us and b.start_us < end_us and b.last_end_us > start_us
    ]
    h = hashlib.blake2b(digest_size=16)
    years = f"{bounds.window_start.year}\x1e{bounds.window_end.year}"
    h.update(f"{FORMAT_VERSION}\x1e{feed!r}\x1e{years}\x1e".encode())
    h.update("".join(keys).encode())
    return h.hexdigest()


def feed_etag(feed: FeedSpec, bookings: Iterable[BookingRecord], *, now: datetime) -> str:
    """The strong ETag header value (quotes included) for :func:`feed_fingerprint`."""
    return f'"{feed_fingerprint(feed, bookings, now=now)}"'


def feed_last_modified(
    feed: FeedSpec, bookings: Iterable[BookingRecord], *, now: datetime
) -> datetime | None:
    """Latest instant ≤ ``now`` at which the feed's content changed, as far as ``bookings``
    tell: a shown booking's last change or entry into the window, or a booking's leaving
    it (grace over, or ended). None if nothing ever showed. Pass recently departed bookings
    too if Last-Modified should see them leave; the ETag never depends on that."""
    bounds = _Bounds.at(feed, now)
    now = bounds.now
    latest: datetime | None = None
    for b in bookings:
        if bounds.shows(b):
            candidates = [b.last_modified, b.start - feed.window_ahead]
        else:
            candidates = []
            withdrawn = b.withdrawn_at
            if withdrawn is not None:
                candidates.append(withdrawn + feed.cancelled_grace)
            if b.last_end_us != math.inf and b.last_end_us <= bounds.start_us:
                last_end = b.end
                if b.recurrence is not None and b.recurrence.until is not None:
                    last_end = b.recurrence.until + (b.end - b.start)
                candidates.append(last_end + feed.window_back)
        for c in candidates:
            if c <= now and (latest is None or c > latest):
                latest = c
    return latest


def feed_version(
    feed: FeedSpec, bookings: Iterable[BookingRecord], *, now: datetime
) -> FeedVersion:
    """ETag and Last-Modified together; see :func:`feed_fingerprint`, :func:`feed_last_modified`."""
    bookings = list(bookings)
    return FeedVersion(
        feed_fingerprint(feed, bookings, now=now), feed_last_modified(feed, bookings, now=now)
    )
