"""Daylight-saving changes: working hours and recurring bookings stay in local wall-clock time.

For Europe/Berlin and America/New_York, on both sides of the spring and the autumn change,
an expert working 09:00–17:00 local can be booked 09:00–10:00 local (whose UTC instant
moves by an hour across the change) and not at 08:00 local; free/busy and the slot search
agree with that. A weekly 10:00-local series across each change keeps 10:00 local while its
UTC instants move; one occurrence cancels alone; ``skip_conflicts`` books around a clash.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from app.bookings.models import Booking, BookingSeries
from tests.app.booking_world import build


@dataclass(frozen=True)
class Change:
    """A daylight-saving change and a working day on each side of it."""

    zone: str
    name: str
    before: date  # a Friday before the change
    after: date  # the Monday after it
    shift: timedelta  # UTC offset after minus before

    def local(self, day: date, hour: int, minute: int = 0) -> datetime:
        return datetime.combine(day, time(hour, minute), ZoneInfo(self.zone))


CHANGES = [
    Change("Europe/Berlin", "march", date(2027, 3, 26), date(2027, 3, 29), timedelta(hours=1)),
    Change("Europe/Berlin", "october", date(2027, 10, 29), date(2027, 11, 1), -timedelta(hours=1)),
    Change("America/New_York", "march", date(2027, 3, 12), date(2027, 3, 15), timedelta(hours=1)),
    Change("America/New_York", "november", date(2027, 11, 5), date(2027, 11, 8),
           -timedelta(hours=1)),
]
IDS = [f"{c.zone.split('/')[1]}-{c.name}" for c in CHANGES]


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def _pairs(intervals: list[list[str]]) -> list[tuple[datetime, datetime]]:
    return [(_utc(s), _utc(e)) for s, e in intervals]


def _span(start: datetime, end: datetime) -> dict[str, str]:
    return {"start": start.isoformat(), "end": end.isoformat()}


def _day_range(change: Change, day: date) -> dict[str, str]:
    """Local midnight to local midnight, sent as UTC instants."""
    start = change.local(day, 0).astimezone(UTC)
    end = change.local(day + timedelta(days=1), 0).astimezone(UTC)
    return {"start": start.isoformat(), "end": end.isoformat()}


@pytest.mark.parametrize("change", CHANGES, ids=IDS)
def test_working_hours_stay_local_across_the_change(client: Any, world: Any,
                                                    change: Change) -> None:
    w = build(world, zone=change.zone)
    base = {"resource_id": str(w.expert), "project_id": str(w.project)}
    nine = {day: change.local(day, 9).astimezone(UTC) for day in (change.before, change.after)}
    # 09:00 local is a different UTC hour on each side of the change
    offsets = [change.local(day, 9).utcoffset() for day in (change.before, change.after)]
    assert offsets[1] - offsets[0] == change.shift  # type: ignore[operator]
    assert nine[change.after].time() != nine[change.before].time()

    for day in (change.before, change.after):
        range_ = _day_range(change, day)
        fb = client.get(f"/availability/resources/{w.expert}", params=range_, headers=w.requester)
        assert fb.status_code == 200, fb.text
        assert _pairs(fb.json()["free"]) == [(change.local(day, 9), change.local(day, 17))]
        slots = client.get("/availability/slots", headers=w.requester, params={
            "skill_id": str(w.skill), "duration_minutes": 60, **range_})
        assert slots.status_code == 200, slots.text
        assert _utc(slots.json()[0]["start"]) == change.local(day, 9)

        early = client.post("/bookings", headers=w.requester, json={
            **base, **_span(change.local(day, 8), change.local(day, 9))})
        assert early.status_code == 409, early.text
        assert early.json()["code"] == "outside_working_hours"
        late = client.post("/bookings", headers=w.requester, json={
            **base, **_span(change.local(day, 16, 30), change.local(day, 17, 30))})
        assert late.status_code == 409, late.text
        assert late.json()["code"] == "outside_working_hours"

        booked = client.post("/bookings", headers=w.requester, json={
            **base, **_span(change.local(day, 9), change.local(day, 10))})
        assert booked.status_code == 201, booked.text
        assert _utc(booked.json()["start"]) == nine[day]
        last_hour = client.post("/bookings", headers=w.requester, json={
            **base, **_span(change.local(day, 16), change.local(day, 17))})
        assert last_hour.status_code == 201, last_hour.text

        fb = client.get(f"/availability/resources/{w.expert}", params=range_, headers=w.requester)
        assert _pairs(fb.json()["busy"]) == [(change.local(day, 9), change.local(day, 10)),
                                             (change.local(day, 16), change.local(day, 17))]
        assert _pairs(fb.json()["free"]) == [(change.local(day, 10), change.local(day, 16))]
        slots = client.get("/availability/slots", headers=w.requester, params={
            "skill_id": str(w.skill), "duration_minutes": 60, **range_})
        assert _utc(slots.json()[0]["start"]) == change.local(day, 10)
        whole_day = client.get("/availability/slots", headers=w.requester, params={
            "skill_id": str(w.skill), "duration_minutes": 7 * 60, **range_})
        assert whole_day.json() == []  # 10:00–16:00 local is all that is left


def _series(w: Any, change: Change, **extra: Any) -> dict[str, Any]:
    """Weekly 10:00–11:00 local on the weekday of ``change.before``, two weeks each side."""
    first = change.before - timedelta(days=7)
    return {
        "resource_id": str(w.expert), "project_id": str(w.project), "title": "Lab time",
        "time_zone": change.zone, "local_start": f"{first.isoformat()}T10:00:00",
        "duration_minutes": 60, "rrule": "FREQ=WEEKLY;COUNT=4", **extra,
    }


def _occurrence_days(change: Change) -> list[date]:
    return [change.before + timedelta(days=7 * k) for k in (-1, 0, 1, 2)]


@pytest.mark.parametrize("change", CHANGES, ids=IDS)
def test_weekly_series_keeps_local_time_and_cancels_one_occurrence(
    client: Any, world: Any, change: Change
) -> None:
    w = build(world, zone=change.zone)
    made = client.post("/booking-series", json=_series(w, change), headers=w.requester)
    assert made.status_code == 201, made.text
    bookings = made.json()["bookings"]
    days = _occurrence_days(change)
    starts = [_utc(b["start"]) for b in bookings]
    assert starts == [change.local(d, 10) for d in days]
    zone = ZoneInfo(change.zone)
    assert {s.astimezone(zone).time() for s in starts} == {time(10)}
    utc_times = [s.time() for s in starts]
    assert utc_times[0] == utc_times[1] and utc_times[2] == utc_times[3]
    shifted = datetime.combine(days[2], utc_times[1], UTC) - datetime.combine(
        days[2], utc_times[2], UTC)
    assert shifted == change.shift  # the UTC instant moves by the change, the wall clock not
    assert made.json()["skipped"] == []

    # cancel the first occurrence after the change: only that one is freed
    third = bookings[2]
    cancelled = client.post(f"/bookings/{third['id']}/cancel", json={"reason": "holiday"},
                            headers=w.requester)
    assert cancelled.status_code == 200, cancelled.text
    series = client.get(f"/booking-series/{made.json()['id']}", headers=w.requester).json()
    assert [b["status"] for b in series["bookings"]] == [
        "confirmed", "confirmed", "cancelled", "confirmed"]
    base = {"resource_id": str(w.expert), "project_id": str(w.project)}
    for index, day in enumerate(days):
        fb = client.get(f"/availability/resources/{w.expert}",
                        params=_day_range(change, day), headers=w.requester).json()
        expected = [] if index == 2 else [(change.local(day, 10), change.local(day, 11))]
        assert _pairs(fb["busy"]) == expected, day
    again = client.post("/bookings", headers=w.requester, json={
        **base, **_span(change.local(days[2], 10), change.local(days[2], 11))})
    assert again.status_code == 201, again.text
    taken = client.post("/bookings", headers=w.requester, json={
        **base, **_span(change.local(days[3], 10, 30), change.local(days[3], 11, 30))})
    assert taken.status_code == 409
    assert taken.json()["conflicts"][0]["booking_id"] == bookings[3]["id"]


def _counts(world: Any) -> tuple[int, int]:
    with world.session() as s:
        return (s.scalar(select(func.count()).select_from(Booking)) or 0,
                s.scalar(select(func.count()).select_from(BookingSeries)) or 0)


@pytest.mark.parametrize("change", CHANGES, ids=IDS)
def test_series_clash_after_the_change_refuses_or_skips(
    client: Any, world: Any, change: Change
) -> None:
    w = build(world, zone=change.zone)
    days = _occurrence_days(change)
    # 10:30–11:00 local on the first occurrence after the change: it clashes only if the
    # occurrence is placed at 10:00 local time there, not at 10:00 of the old UTC offset.
    clash = client.post("/bookings", headers=w.requester, json={
        "resource_id": str(w.expert), "project_id": str(w.project),
        **_span(change.local(days[2], 10, 30), change.local(days[2], 11))})
    assert clash.status_code == 201, clash.text
    before = _counts(world)

    refused = client.post("/booking-series", json=_series(w, change), headers=w.requester)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "overlap"
    assert refused.json()["conflicts"][0]["booking_id"] == clash.json()["id"]
    assert _counts(world) == before  # nothing written: no occurrence, no series

    made = client.post("/booking-series", json=_series(w, change, skip_conflicts=True),
                       headers=w.requester)
    assert made.status_code == 201, made.text
    body = made.json()
    assert [_utc(b["start"]) for b in body["bookings"]] == [
        change.local(d, 10) for d in (days[0], days[1], days[3])]
    assert [(_utc(s["start"]), _utc(s["end"])) for s in body["skipped"]] == [
        (change.local(days[2], 10), change.local(days[2], 11))]
    assert "already booked" in body["skipped"][0]["reason"]
    stored = client.get(f"/booking-series/{body['id']}", headers=w.requester)
    assert stored.status_code == 200, stored.text
    assert [_utc(s["start"]) for s in stored.json()["skipped"]] == [change.local(days[2], 10)]
    assert _counts(world) == (before[0] + 3, before[1] + 1)
