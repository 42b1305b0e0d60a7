"""When a resource can work: pure interval arithmetic over UTC instants.

Working hours are wall-clock ranges in the resource's own zone, so a 09:00–17:00 day stays
09:00–17:00 local on both sides of a daylight-saving change (its UTC instants move). A
wall-clock time that does not exist on a spring-forward day is read with ``fold=0``
(zoneinfo's rule: the offset before the change), and a repeated one on the fall-back day
takes its first occurrence.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

Interval = tuple[datetime, datetime]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Sorted, with touching or overlapping intervals joined."""
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if end <= start:
            continue
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return out


def subtract(free: Sequence[Interval], busy: Iterable[Interval]) -> list[Interval]:
    """``free`` minus every interval of ``busy`` (both may be unsorted)."""
    result = merge(free)
    for b_start, b_end in merge(busy):
        nxt: list[Interval] = []
        for f_start, f_end in result:
            if b_end <= f_start or b_start >= f_end:
                nxt.append((f_start, f_end))
                continue
            if f_start < b_start:
                nxt.append((f_start, b_start))
            if b_end < f_end:
                nxt.append((b_end, f_end))
        result = nxt
    return result


def intersect(a: Sequence[Interval], b: Sequence[Interval]) -> list[Interval]:
    """Instants in both ``a`` and ``b``."""
    out: list[Interval] = []
    a, b = merge(a), merge(b)
    i = j = 0
    while i < len(a) and j < len(b):
        start = max(a[i][0], b[j][0])
        end = min(a[i][1], b[j][1])
        if start < end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return out


def _local(day: date, hhmm: str, zone: ZoneInfo) -> datetime:
    if hhmm == "24:00":
        return datetime.combine(day + timedelta(days=1), time(0), zone)
    hours, minutes = (int(p) for p in hhmm.split(":"))
    return datetime.combine(day, time(hours, minutes), zone)


def working_intervals(
    hours: dict[str, list[list[str]]] | None, zone_name: str, start: datetime, end: datetime
) -> list[Interval]:
    """UTC intervals inside ``[start, end)`` in which the weekly hours say the resource works.

    ``hours`` of ``None`` means around the clock (devices without staffed hours).
    """
    if hours is None:
        return [(start, end)] if end > start else []
    zone = ZoneInfo(zone_name)
    first = start.astimezone(zone).date() - timedelta(days=1)
    last = end.astimezone(zone).date() + timedelta(days=1)
    out: list[Interval] = []
    day = first
    while day <= last:
        for s, e in hours.get(WEEKDAYS[day.weekday()], ()):
            local_start = _local(day, s, zone).astimezone(UTC)
            local_end = _local(day, e, zone).astimezone(UTC)
            clipped = (max(local_start, start), min(local_end, end))
            if clipped[0] < clipped[1]:
                out.append(clipped)
        day += timedelta(days=1)
    return merge(out)


def covers(free: Sequence[Interval], start: datetime, end: datetime) -> bool:
    """Whether ``[start, end)`` lies wholly inside one interval of ``free`` (merged)."""
    return any(s <= start and end <= e for s, e in merge(free))


def first_fit(
    free: Sequence[Interval],
    minutes: int,
    *,
    not_before: datetime | None = None,
    step_minutes: int = 1,
) -> datetime | None:
    """The earliest start at which ``minutes`` fit in one free interval (aligned to ``step``)."""
    need = timedelta(minutes=minutes)
    for s, e in merge(free):
        start = s if not_before is None else max(s, not_before)
        start = align(start, step_minutes)
        if start + need <= e:
            return start
    return None


def fits(
    free: Sequence[Interval],
    minutes: int,
    count: int,
    *,
    not_before: datetime | None = None,
    step_minutes: int = 1,
) -> list[datetime]:
    """The earliest ``count`` starts of ``minutes`` that fit one after the other (each from
    the end of the one before, aligned to ``step``), fewer when the free time runs out."""
    need = timedelta(minutes=minutes)
    starts: list[datetime] = []
    while len(starts) < count:
        at = first_fit(free, minutes, not_before=not_before, step_minutes=step_minutes)
        if at is None:
            break
        starts.append(at)
        not_before = at + need
    return starts


def align(instant: datetime, step_minutes: int) -> datetime:
    """Round ``instant`` up to the next multiple of ``step_minutes`` since the epoch."""
    if step_minutes <= 1 and instant.second == 0 and instant.microsecond == 0:
        return instant
    step = timedelta(minutes=max(step_minutes, 1))
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    remainder = (instant - epoch) % step
    return instant if not remainder else instant + (step - remainder)


def total_minutes(intervals: Iterable[Interval]) -> int:
    """The length of a set of intervals, in whole minutes."""
    return int(sum((e - s).total_seconds() for s, e in merge(intervals)) // 60)
