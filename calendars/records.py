"""Plain records that go into a feed, and the busy intervals that come out of an import.

All instants are aware datetimes; every record normalises them to UTC on construction, so
the rest of the package never meets a naive or non-UTC time.
"""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar.prop import vRecur

from calendars.errors import InvalidFeedInput, UnknownTimeZone


class BookingStatus(enum.StrEnum):
    """The booking states of the domain (DESIGN.md, "Booking")."""

    TENTATIVE = "tentative"
    PENDING_APPROVAL = "pending_approval"
    CONFIRMED = "confirmed"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    DECLINED = "declined"

    @property
    def is_withdrawn(self) -> bool:
        """True for states in which the booking no longer holds the resource."""
        return self in (BookingStatus.CANCELLED, BookingStatus.DECLINED)


@functools.lru_cache(maxsize=512)
def zone(name: str) -> ZoneInfo:
    """The IANA zone called ``name``, or :class:`UnknownTimeZone`."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise UnknownTimeZone(name) from exc


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)


def _micros(value: datetime) -> int:
    """Microseconds since the epoch, exactly (floats lose microseconds far from 1970)."""
    return (value - _EPOCH) // _ONE_US


def _utc(value: datetime, what: str) -> datetime:
    if value.__class__ is datetime and value.tzinfo is UTC:
        return value  # the common case, checked first: feeds build thousands of records
    if not isinstance(value, datetime):
        raise InvalidFeedInput(f"{what} must be a datetime, got {type(value).__name__}")
    if value.utcoffset() is None:
        raise InvalidFeedInput(f"{what} must be timezone-aware (got naive {value.isoformat()})")
    return value if value.tzinfo is UTC else value.astimezone(UTC)


MIN_FEED_BYTES = 16 * 1024
"""The smallest size cap a feed takes: room for its header and time zones."""


@dataclass(frozen=True, slots=True)
class FeedSpec:
    """What a feed is called, how it is displayed and which part of time it covers."""

    name: str
    """Shown by clients as the calendar's name (NAME and X-WR-CALNAME)."""
    display_tz: str = "UTC"
    """IANA zone clients should display the calendar in (X-WR-TIMEZONE)."""
    window_back: timedelta = timedelta(days=90)
    """How far into the past bookings stay in the feed."""
    window_ahead: timedelta = timedelta(days=548)
    """How far into the future bookings appear (548 days ≈ 18 months)."""
    refresh_interval: timedelta = timedelta(hours=1)
    """How often clients are asked to poll (REFRESH-INTERVAL and X-PUBLISHED-TTL)."""
    cancelled_grace: timedelta = timedelta(days=7)
    """How long a cancelled or declined booking stays as STATUS:CANCELLED before leaving."""
    description: str = ""
    """Optional longer description (X-WR-CALDESC)."""
    max_bytes: int | None = None
    """Largest body to render; beyond it the events that start last are left out and the
    description says so (see :mod:`calendars.feed`). None: no cap."""

    def __post_init__(self) -> None:
        if not self.name.strip():
            raise InvalidFeedInput("a feed needs a non-empty name")
        zone(self.display_tz)
        if self.window_back < timedelta(0) or self.window_ahead <= timedelta(0):
            raise InvalidFeedInput("window_back must be ≥ 0 and window_ahead > 0")
        if self.refresh_interval < timedelta(minutes=1) or self.refresh_interval % timedelta(
            seconds=1
        ):
            raise InvalidFeedInput("refresh_interval must be whole seconds and at least 1 minute")
        if self.cancelled_grace < timedelta(0):
            raise InvalidFeedInput("cancelled_grace must be ≥ 0")
        if self.max_bytes is not None and self.max_bytes < MIN_FEED_BYTES:
            raise InvalidFeedInput(f"max_bytes must be at least {MIN_FEED_BYTES}")

    def window(self, now: datetime) -> tuple[datetime, datetime]:
        """The half-open UTC window ``[now - window_back, now + window_ahead)``."""
        now = _utc(now, "now")
        return now - self.window_back, now + self.window_ahead


@dataclass(frozen=True, slots=True)
class Override:
    """One occurrence of a series shown elsewhere than its rule puts it (a RECURRENCE-ID
    event): an occurrence moved or renamed alone."""

    recurrence_id: datetime
    """Where the rule puts the occurrence (aware): a wall-clock time that does not exist is
    placed with the offset before the change (shifted forward by the gap), an ambiguous one
    at its first instant, as RFC 5545 and ``zoneinfo`` do."""
    start: datetime
    end: datetime
    summary: str = ""
    """The occurrence's own title; empty: the series' summary."""

    def __post_init__(self) -> None:
        start = _utc(self.start, "override start")
        end = _utc(self.end, "override end")
        if end <= start:
            raise InvalidFeedInput(f"override: end {end.isoformat()} is not after start")
        object.__setattr__(self, "recurrence_id", _utc(self.recurrence_id, "recurrence_id"))
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)


@dataclass(frozen=True, slots=True)
class Recurrence:
    """A repeating booking: an RRULE anchored in a named zone, minus cancelled occurrences.

    The booking's ``start``/``end`` are its first occurrence; the occurrences repeat in
    wall-clock time of ``tzid``, so a weekly 10:00 Europe/Berlin booking stays at 10:00
    local across daylight-saving changes.
    """

    rrule: str
    """RFC 5545 RRULE value, e.g. ``FREQ=WEEKLY;BYDAY=MO;UNTIL=20261231T230000Z``. A local
    or DATE UNTIL is read in ``tzid`` and rewritten in UTC."""
    tzid: str
    """IANA zone whose wall clock the series follows."""
    exdates: tuple[datetime, ...] = ()
    """Start instants of cancelled occurrences (aware), where the rule puts them."""
    overrides: tuple[Override, ...] = ()
    """Occurrences moved or renamed alone. Occurrences whose wall-clock time falls into a
    daylight-saving gap or fold are pinned the same way by the renderer (clients place
    those differently), so they need no override here."""
    until: datetime | None = field(init=False, default=None)
    """UNTIL as a UTC instant, derived from ``rrule`` (None when open-ended or COUNT)."""

    def __post_init__(self) -> None:
        tz = zone(self.tzid)
        text = self.rrule.strip()
        if text.upper().startswith("RRULE:"):
            text = text[len("RRULE:") :]
        try:
            recur = vRecur.from_ical(text)
        except (ValueError, TypeError) as exc:
            raise InvalidFeedInput(f"invalid RRULE {self.rrule!r}: {exc}") from exc
        if "FREQ" not in recur:
            raise InvalidFeedInput(f"invalid RRULE {self.rrule!r}: FREQ is required")
        if "UNTIL" in recur and "COUNT" in recur:
            raise InvalidFeedInput(
                f"invalid RRULE {self.rrule!r}: UNTIL and COUNT exclude each other"
            )
        until: datetime | None = None
        if "UNTIL" in recur:
            raw = recur["UNTIL"][0]
            if isinstance(raw, datetime):
                # A floating UNTIL means wall-clock time in the series' zone.
                until = _utc(raw if raw.tzinfo else raw.replace(tzinfo=tz), "RRULE UNTIL")
            elif isinstance(raw, date):
                # A DATE UNTIL includes that whole local day.
                until = datetime.combine(raw, time(23, 59, 59), tz).astimezone(UTC)
            recur["UNTIL"] = [until]
        object.__setattr__(self, "rrule", recur.to_ical().decode("ascii"))
        object.__setattr__(self, "until", until)
        object.__setattr__(
            self,
            "exdates",
            tuple(sorted({_utc(x, "exdate") for x in self.exdates})),
        )
        object.__setattr__(
            self, "overrides", tuple(sorted(self.overrides, key=lambda o: o.recurrence_id))
        )


@dataclass(frozen=True, slots=True)
class BookingRecord:
    """One booking as a feed shows it."""

    uid: str
    """Stable, globally unique id; becomes the event's UID and never changes."""
    resource: str
    """Name of the expert or device booked (RESOURCES)."""
    summary: str
    start: datetime
    """Start of the booking (of its first occurrence if recurring); aware, kept in UTC."""
    end: datetime
    status: BookingStatus
    sequence: int
    """Revision number; see :func:`calendars.sequence.next_sequence`."""
    last_modified: datetime
    """Last change of anything shown; becomes DTSTAMP. Must advance on every change."""
    description: str = ""
    location: str = ""
    cancelled_at: datetime | None = None
    """When it was cancelled or declined; starts the grace period (defaults to last_modified)."""
    recurrence: Recurrence | None = None
    busy_only: bool = False
    """Privacy: show only a "Busy" block, without summary, description, location or resource."""
    # Derived once, so the ETag of a 5,000-booking feed costs a single cheap pass (feed.py).
    version_key: str = field(init=False, repr=False, compare=False, default="")
    """What the ETag covers of this booking: uid, sequence, last change, status, privacy and,
    for a series, its zone and start year (they pick the feed's VTIMEZONEs)."""
    start_us: int = field(init=False, repr=False, compare=False, default=0)
    """``start`` in microseconds since the epoch."""
    last_end_us: float = field(init=False, repr=False, compare=False, default=0.0)
    """End of the last occurrence in microseconds since the epoch (inf if open-ended)."""
    withdrawn_us: float = field(init=False, repr=False, compare=False, default=0.0)
    """:attr:`withdrawn_at` in microseconds since the epoch (inf while live)."""

    def __post_init__(self) -> None:
        if not self.uid or not self.uid.strip():
            raise InvalidFeedInput("a booking needs a non-empty uid")
        where = f"booking {self.uid!r}"
        start = _utc(self.start, f"{where}: start")
        end = _utc(self.end, f"{where}: end")
        if end <= start:
            raise InvalidFeedInput(f"{where}: end {end.isoformat()} is not after start")
        object.__setattr__(self, "start", start)
        object.__setattr__(self, "end", end)
        object.__setattr__(
            self, "last_modified", _utc(self.last_modified, f"{where}: last_modified")
        )
        if self.cancelled_at is not None:
            object.__setattr__(
                self, "cancelled_at", _utc(self.cancelled_at, f"{where}: cancelled_at")
            )
        if not isinstance(self.status, BookingStatus):
            try:
                object.__setattr__(self, "status", BookingStatus(self.status))
            except ValueError as exc:
                raise InvalidFeedInput(f"{where}: unknown status {self.status!r}") from exc
        if (
            isinstance(self.sequence, bool)
            or not isinstance(self.sequence, int)
            or self.sequence < 0
        ):
            raise InvalidFeedInput(f"{where}: sequence must be an integer ≥ 0")
        self._derive()

    def _derive(self) -> None:
        rec = self.recurrence
        series = f"\x1f{rec.tzid}\x1f{self.start.year}" if rec is not None else ""
        key = (
            f"{self.uid}\x1f{self.sequence}\x1f{_micros(self.last_modified)}"
            f"\x1f{self.status.value}\x1f{int(self.busy_only)}{series}\x1e"
        )
        set_ = object.__setattr__
        set_(self, "version_key", key)
        set_(self, "start_us", _micros(self.start))
        if rec is None:
            last_end: float = _micros(self.end)
        elif rec.until is None:
            last_end = math.inf
        else:
            last_end = _micros(rec.until + (self.end - self.start))
        set_(self, "last_end_us", last_end)
        withdrawn = self.withdrawn_at
        set_(self, "withdrawn_us", math.inf if withdrawn is None else _micros(withdrawn))

    @property
    def withdrawn_at(self) -> datetime | None:
        """When a cancelled or declined booking was withdrawn; None while it is live."""
        if not self.status.is_withdrawn:
            return None
        return self.cancelled_at or self.last_modified


@dataclass(frozen=True, slots=True, order=True)
class BusyInterval:
    """A half-open UTC interval ``[start, end)`` during which someone is busy."""

    start: datetime
    end: datetime
