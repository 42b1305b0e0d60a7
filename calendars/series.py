"""Where a series' occurrences fall, and which ones a feed must pin for every client.

A series repeats a wall-clock time in its zone. Twice a year that time may not exist (the
spring gap) or exist twice (the autumn fold). RFC 5545 places a missing time with the
offset before the change (so 02:30 in Berlin's gap is 03:30 summer time, 01:30Z) and an
ambiguous one at its first instant; Python's ``zoneinfo`` and copool do the same, but
ical.js (Thunderbird) places both with the offset after the change. Every such occurrence
is therefore written as an override (RECURRENCE-ID with its UTC start), which ical.js and
recurring-ical-events both honour (an RDATE with EXDATE is dropped by the latter).

The RECURRENCE-ID and EXDATE values name the rule's wall-clock time (02:30, not the 03:30
it lands on), because clients match them against their own expansion of the rule.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from dateutil.rrule import rrulestr

from calendars.errors import InvalidFeedInput
from calendars.records import Override, Recurrence, zone

MAX_EXPANDED = 2000
"""Occurrences expanded per series at most (an open-ended rule stops at the horizon)."""


@dataclass(frozen=True, slots=True)
class Expansion:
    """A series' occurrences up to a horizon: wall-clock times and where they fall."""

    wall_clock: dict[datetime, datetime]
    """UTC instant of each occurrence → its naive wall-clock time in the series' zone."""
    shifted: tuple[datetime, ...]
    """UTC instants of occurrences whose wall-clock time falls into a gap or a fold."""


def _ambiguous_or_missing(wall: datetime, tzid: str) -> bool:
    """True if ``wall`` (naive) does not exist in the zone, or exists twice."""
    tz = zone(tzid)
    return (
        wall.replace(tzinfo=tz, fold=0).utcoffset() != wall.replace(tzinfo=tz, fold=1).utcoffset()
    )


@functools.lru_cache(maxsize=1024)
def expand(rrule: str, tzid: str, first: datetime, horizon: datetime) -> Expansion:
    """Expand ``rrule`` from the aware instant ``first`` in wall-clock time of ``tzid``,
    up to its end or ``horizon`` (UTC), whichever comes first."""
    tz = zone(tzid)
    start = first.astimezone(tz).replace(tzinfo=None)
    try:
        # Naive local times: dateutil steps the wall clock, as a calendar client does.
        rule = rrulestr(rrule, dtstart=start.replace(tzinfo=tz), cache=False)
    except (ValueError, TypeError) as exc:
        raise InvalidFeedInput(f"invalid RRULE {rrule!r}: {exc}") from exc
    wall_clock: dict[datetime, datetime] = {}
    shifted: list[datetime] = []
    for n, aware in enumerate(rule):
        instant = aware.astimezone(UTC)
        if instant > horizon or n >= MAX_EXPANDED:
            break
        wall = aware.replace(tzinfo=None)
        wall_clock[instant] = wall
        if _ambiguous_or_missing(wall, tzid):
            shifted.append(instant)
    return Expansion(wall_clock, tuple(shifted))


def pinned(rec: Recurrence, expansion: Expansion, length: timedelta) -> tuple[Override, ...]:
    """The series' own overrides plus one for every live gap or fold occurrence."""
    taken = {o.recurrence_id for o in rec.overrides} | set(rec.exdates)
    pins = [
        Override(recurrence_id=t, start=t, end=t + length)
        for t in expansion.shifted
        if t not in taken
    ]
    return tuple(sorted([*rec.overrides, *pins], key=lambda o: o.recurrence_id))
