"""Series that clients place differently unless pinned: daylight-saving gaps and folds,
occurrences moved alone (RECURRENCE-ID) and cancelled alone (EXDATE), checked by expanding
the rendered feed with ical.js and with recurring-ical-events.

Copool (and RFC 5545) place 02:30 Europe/Berlin on 28 March 2027, a time that does not
exist, at 01:30Z (shifted forward by the gap) and the twice-existing 02:30 on 31 October
2027 at its first instant, 00:30Z. Bare, ical.js shows 00:30Z and 01:30Z there.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from calendars import BookingRecord, BookingStatus, FeedSpec, Override, Recurrence, render_feed
from tests.calendars.series_clients import both

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2027, 1, 10, tzinfo=UTC)
SINCE, UNTIL = datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 6, 1, tzinfo=UTC)
HALF_HOUR = timedelta(minutes=30)


def daily(first_day: date, count: int) -> list[datetime]:
    """Copool's placement of 02:30 Berlin on ``count`` days: zoneinfo's, fold 0."""
    return [
        datetime.combine(first_day + timedelta(days=k), time(2, 30), BERLIN).astimezone(UTC)
        for k in range(count)
    ]


def series(starts: list[datetime], **recurrence: object) -> BookingRecord:
    rule = f"FREQ=DAILY;UNTIL={starts[-1]:%Y%m%dT%H%M%SZ}"
    return BookingRecord(
        uid="series-1@copool.test",
        resource="Drone 1",
        summary="Night survey",
        start=starts[0],
        end=starts[0] + HALF_HOUR,
        status=BookingStatus.CONFIRMED,
        sequence=0,
        last_modified=NOW - timedelta(days=1),
        recurrence=Recurrence(rule, "Europe/Berlin", **recurrence),  # type: ignore[arg-type]
    )


def starts_of(occurrences: list[tuple[str, datetime, datetime, str]]) -> list[datetime]:
    return [o[1] for o in occurrences]


GAP = daily(date(2027, 3, 26), 5)
FOLD = daily(date(2027, 10, 29), 5)


def test_copool_places_the_gap_and_the_fold_as_rfc_5545_does() -> None:
    assert GAP[2] == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    assert FOLD[2] == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)


@pytest.mark.parametrize("starts", [GAP, FOLD], ids=["march-gap", "october-fold"])
def test_both_clients_show_copools_instants(starts: list[datetime]) -> None:
    body = render_feed(FeedSpec(name="Drone 1"), [series(starts)], now=NOW)
    assert body.count(b"RECURRENCE-ID;TZID=Europe/Berlin:") == 1  # only the odd day pinned
    js, py = both(body, SINCE, UNTIL)
    assert starts_of(js) == starts
    assert starts_of(py) == starts
    assert all(end - start == HALF_HOUR for _, start, end, _ in js + py)


def test_a_cancelled_gap_occurrence_and_a_moved_one_show_in_both() -> None:
    moved_to = GAP[3] + timedelta(hours=2)
    record = series(
        GAP,
        exdates=(GAP[2],),
        overrides=(Override(GAP[3], moved_to, moved_to + HALF_HOUR, summary="Late survey"),),
    )
    body = render_feed(FeedSpec(name="Drone 1"), [record], now=NOW)
    assert b"EXDATE;TZID=Europe/Berlin:20270328T023000" in body  # the rule's wall clock
    expected = [GAP[0], GAP[1], moved_to, GAP[4]]
    for occurrences in both(body, SINCE, UNTIL):
        assert starts_of(occurrences) == expected
        assert [o[3] for o in occurrences] == ["Night survey"] * 2 + ["Late survey", "Night survey"]


def test_a_split_weekly_series_shows_each_part_once() -> None:
    """'This and following': the old series ends (UNTIL) before the split, a new one with its
    own UID starts there, an hour later."""
    weekly = [datetime(2027, 3, 1, 10, tzinfo=BERLIN) + timedelta(weeks=k) for k in range(8)]
    old = [t.astimezone(UTC) for t in weekly[:4]]
    new = [(t + timedelta(hours=1)).astimezone(UTC) for t in weekly[4:]]

    def part(uid: str, starts: list[datetime]) -> BookingRecord:
        rule = f"FREQ=WEEKLY;UNTIL={starts[-1]:%Y%m%dT%H%M%SZ}"
        return BookingRecord(
            uid=uid,
            resource="Eva",
            summary=uid,
            start=starts[0],
            end=starts[0] + HALF_HOUR,
            status=BookingStatus.CONFIRMED,
            sequence=1,
            last_modified=NOW,
            recurrence=Recurrence(rule, "Europe/Berlin"),
        )

    body = render_feed(FeedSpec(name="Eva"), [part("old", old), part("new", new)], now=NOW)
    for occurrences in both(body, SINCE, UNTIL):
        assert [(o[0], o[1]) for o in occurrences] == [("old", t) for t in old] + [
            ("new", t) for t in new
        ]
    assert old[-1].astimezone(BERLIN).hour == 10 and new[0].astimezone(BERLIN).hour == 11
