"""VTIMEZONE components built from the IANA database, in RRULE style.

icalendar's ``add_missing_timezones()`` writes each observance's onsets as one
comma-separated RDATE; ical.js 2.2 and vobject 0.9.9 read only the first value, which keeps
Europe/Berlin at +01:00 all summer. Here every observance is either a yearly RRULE
(``FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU``, with UNTIL in UTC once the rule stopped) or a single
onset given by DTSTART alone, which every client reads the same way.

The transitions come from probing :mod:`zoneinfo` over a span of years, so the component
agrees exactly with how Python converts the same instants.
"""

from __future__ import annotations

import calendar
import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from calendars.icstext import local_stamp, utc_offset, utc_stamp
from calendars.records import zone

_WEEKDAYS = ("MO", "TU", "WE", "TH", "FR", "SA", "SU")
_PROBE_STEP = 6 * 3600  # no zone changes offset twice within six hours


@dataclass(frozen=True, slots=True)
class _State:
    offset: timedelta
    name: str
    dst: bool


@dataclass(frozen=True, slots=True)
class _Transition:
    at: datetime  # UTC instant of the change
    before: _State
    after: _State

    @property
    def onset(self) -> datetime:
        """Local wall-clock time of the change, in the offset in force before it (RFC 5545)."""
        return (self.at + self.before.offset).replace(tzinfo=None)


def _state(tz_name: str, ts: int) -> _State:
    moment = datetime.fromtimestamp(ts, zone(tz_name))
    return _State(
        offset=moment.utcoffset() or timedelta(0),
        name=moment.tzname() or tz_name,
        dst=(moment.dst() or timedelta(0)) > timedelta(0),
    )


def _transitions(tz_name: str, first_year: int, last_year: int) -> tuple[_State, list[_Transition]]:
    """The state at the start of ``first_year`` and every change up to the end of ``last_year``."""
    start = int(datetime(first_year, 1, 1, tzinfo=UTC).timestamp())
    stop = int(datetime(last_year + 1, 1, 1, tzinfo=UTC).timestamp())
    initial = previous = _state(tz_name, start)
    found = []
    lo = start
    for hi in range(start + _PROBE_STEP, stop + 1, _PROBE_STEP):
        current = _state(tz_name, hi)
        if current != previous:
            # Bisect to the first second in the new state.
            a, b = lo, hi
            while b - a > 1:
                mid = (a + b) // 2
                if _state(tz_name, mid) == previous:
                    a = mid
                else:
                    b = mid
            found.append(_Transition(datetime.fromtimestamp(b, UTC), previous, current))
            previous = current
        lo = hi
    return initial, found


def _byday_codes(day: datetime) -> set[str]:
    """Every BYDAY code (``2SU``, ``-1SU``) that names ``day`` within its month."""
    weekday = _WEEKDAYS[day.weekday()]
    codes = {f"{(day.day - 1) // 7 + 1}{weekday}"}
    if day.day + 7 > calendar.monthrange(day.year, day.month)[1]:
        codes.add(f"-1{weekday}")
    return codes


def _observance(
    t: _Transition, rrule: str | None = None, until: datetime | None = None
) -> list[str]:
    # Summer time is the later offset of a change. (tzdata gives Dublin a negative DST in
    # winter; clients that see two STANDARD observances pick the wrong one in autumn.)
    kind = "DAYLIGHT" if t.after.offset > t.before.offset else "STANDARD"
    lines = [
        f"BEGIN:{kind}",
        f"TZOFFSETFROM:{utc_offset(t.before.offset)}",
        f"TZOFFSETTO:{utc_offset(t.after.offset)}",
        f"TZNAME:{t.after.name}",
        f"DTSTART:{local_stamp(t.onset)}",
    ]
    if rrule:
        lines.append(f"RRULE:{rrule}" + (f";UNTIL={utc_stamp(until)}" if until else ""))
    lines.append(f"END:{kind}")
    return lines


@functools.lru_cache(maxsize=256)
def vtimezone_lines(tz_name: str, first_year: int, last_year: int) -> tuple[str, ...]:
    """Content lines of a VTIMEZONE for ``tz_name`` that is right from ``first_year`` through
    ``last_year``; yearly rules still in force in ``last_year`` are left open-ended."""
    initial, transitions = _transitions(tz_name, first_year, last_year)
    lines = ["BEGIN:VTIMEZONE", f"TZID:{tz_name}", f"X-LIC-LOCATION:{tz_name}"]
    # The offset in force when the span begins, as an onset of its own: clients disagree on
    # what applies before the first observance (southern summers came out an hour off).
    kind = "DAYLIGHT" if initial.dst else "STANDARD"
    offset = utc_offset(initial.offset)
    begin = f"{first_year:04d}0101T000000" if transitions else "19700101T000000"
    lines += [
        f"BEGIN:{kind}",
        f"TZOFFSETFROM:{offset}",
        f"TZOFFSETTO:{offset}",
        f"TZNAME:{initial.name}",
        f"DTSTART:{begin}",
        f"END:{kind}",
    ]
    if not transitions:
        lines.append("END:VTIMEZONE")
        return tuple(lines)

    # Group the changes of one kind into runs of consecutive years that follow one rule.
    by_kind: dict[tuple[_State, _State], list[_Transition]] = {}
    for t in transitions:
        by_kind.setdefault((t.before, t.after), []).append(t)
    observances: list[tuple[datetime, list[str]]] = []
    for changes in by_kind.values():
        run: list[_Transition] = []
        codes: set[str] = set()

        def flush(run: list[_Transition], codes: set[str]) -> None:
            first, last = run[0], run[-1]
            if len(run) == 1:
                observances.append((first.at, _observance(first)))
                return
            code = next((c for c in sorted(codes) if c.startswith("-1")), min(codes))
            rule = f"FREQ=YEARLY;BYMONTH={first.onset.month};BYDAY={code}"
            open_ended = last.onset.year >= last_year
            observances.append(
                (first.at, _observance(first, rule, None if open_ended else last.at))
            )

        for t in changes:
            onset = t.onset
            if run:
                prev = run[-1].onset
                common = codes & _byday_codes(onset)
                if (
                    onset.year == prev.year + 1
                    and onset.month == prev.month
                    and onset.time() == prev.time()
                    and common
                ):
                    run.append(t)
                    codes = common
                    continue
                flush(run, codes)
            run, codes = [t], _byday_codes(onset)
        flush(run, codes)

    for _, block in sorted(observances, key=lambda item: item[0]):
        lines += block
    lines.append("END:VTIMEZONE")
    return tuple(lines)
