"""Our VTIMEZONEs, read by a parser that does not use zoneinfo, agree with zoneinfo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import vobject

from calendars.icstext import content
from calendars.timezones import vtimezone_lines

ZONES = [
    "Europe/Berlin",
    "Europe/London",
    "Europe/Dublin",  # negative DST in tzdata
    "America/New_York",
    "America/Sao_Paulo",  # abolished DST in 2019
    "Australia/Sydney",  # southern hemisphere
    "Australia/Lord_Howe",  # 30-minute DST
    "Asia/Kolkata",  # no changes, +05:30
    "Africa/Casablanca",  # Ramadan changes: irregular, one onset per observance
    "Pacific/Chatham",  # +12:45 / +13:45
    "UTC",
]


def vobject_zone(tz_name: str, first: int, last: int) -> object:
    body = content(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//test//EN",
            *vtimezone_lines(tz_name, first, last),
            "END:VCALENDAR",
        ]
    )
    return vobject.readOne(body.decode()).vtimezone.gettzinfo()


@pytest.mark.parametrize("tz_name", ZONES)
def test_vobject_reads_our_vtimezone_like_zoneinfo(tz_name: str) -> None:
    first, last = 2017, 2027
    theirs = vobject_zone(tz_name, first, last)
    ours = ZoneInfo(tz_name)
    # Noon and midnight UTC every day; every transition lies between two of them.
    moment = datetime(first, 1, 2, tzinfo=UTC)
    mismatches = []
    while moment.year <= last:
        expected = moment.astimezone(ours).utcoffset()
        got = moment.astimezone(theirs).utcoffset()  # type: ignore[arg-type]
        if got != expected:
            mismatches.append((moment, expected, got))
        moment += timedelta(hours=12)
    assert mismatches == []


def test_berlin_is_two_yearly_rules() -> None:
    lines = vtimezone_lines("Europe/Berlin", 2024, 2027)
    assert lines.count("BEGIN:DAYLIGHT") == 1
    assert "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU" in lines
    assert "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU" in lines
    assert sum(line.startswith("DTSTART:") for line in lines) == 3  # span start + two rules


def test_a_rule_that_stopped_gets_an_until_in_utc() -> None:
    # Brazil stopped daylight saving in 2019: the rule must not run on to 2027.
    lines = "\n".join(vtimezone_lines("America/Sao_Paulo", 2015, 2027))
    assert ";UNTIL=" in lines
    for line in lines.splitlines():
        if ";UNTIL=" in line:
            assert line.endswith("Z")
