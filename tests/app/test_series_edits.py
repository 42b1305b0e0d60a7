"""Editing and cancelling series: "this and following" splits, single occurrences moved or
cancelled alone, a whole series cancelled, and daylight-saving gaps and folds, each read
back from the project's feed as ical.js and recurring-ical-events expand it: both must
show exactly the occurrences copool stores (GET /bookings), under the right UIDs.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from app.auth.models import Role
from app.bookings.models import Booking, BookingSeries
from tests.app.booking_world import Lending, build
from tests.calendars.series_clients import both

BERLIN = ZoneInfo("Europe/Berlin")
SINCE, UNTIL = datetime(2026, 6, 1, tzinfo=UTC), datetime(2028, 3, 1, tzinfo=UTC)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def weekly(client: Any, w: Lending, **extra: Any) -> dict[str, Any]:
    """Eight Mondays 10:00–11:00 Berlin from 1 March 2027 (across the March change)."""
    body = {
        "resource_id": str(w.expert),
        "project_id": str(w.project),
        "title": "Lab time",
        "time_zone": "Europe/Berlin",
        "local_start": "2027-03-01T10:00:00",
        "duration_minutes": 60,
        "rrule": "FREQ=WEEKLY;COUNT=8",
        **extra,
    }
    made = client.post("/booking-series", json=body, headers=w.requester)
    assert made.status_code == 201, made.text
    result: dict[str, Any] = made.json()
    return result


def mondays(hour: int) -> list[datetime]:
    return [
        datetime.combine(date(2027, 3, 1) + timedelta(weeks=k), time(hour), BERLIN).astimezone(UTC)
        for k in range(8)
    ]


def project_feed(client: Any, w: Lending) -> bytes:
    made = client.post(
        "/feed-subscriptions",
        json={"kind": "project", "target_id": str(w.project)},
        headers=w.requester,
    )
    assert made.status_code == 201, made.text
    answer = client.get(urlsplit(made.json()["url"]).path)
    assert answer.status_code == 200, answer.text
    body: bytes = answer.content
    return body


def stored(client: Any, w: Lending) -> list[tuple[str, datetime, datetime]]:
    """Copool's live occurrences of the project: (feed UID of the series, start, end)."""
    rows = client.get(
        "/bookings", params={"project_id": str(w.project), "limit": 200}, headers=w.requester
    ).json()["items"]
    return sorted(
        (f"series-{b['series_id']}@copool", _utc(b["start"]), _utc(b["end"]))
        for b in rows
        if b["status"] in ("confirmed", "pending_approval", "tentative")
    )


def assert_clients_show(client: Any, w: Lending) -> list[tuple[str, datetime, datetime, str]]:
    expected = sorted(stored(client, w), key=lambda o: (o[1], o[0]))
    body = project_feed(client, w)
    js, py = both(body, SINCE, UNTIL)
    assert [o[:3] for o in js] == expected
    assert [o[:3] for o in py] == expected
    return js


def test_this_and_following_splits_and_both_clients_show_it(client: Any, world: Any) -> None:
    w = build(world)
    series = weekly(client, w)
    ids = [b["id"] for b in series["bookings"]]
    split = client.patch(
        f"/booking-series/{series['id']}",
        json={
            "scope": "this_and_following",
            "from_occurrence": mondays(10)[4].isoformat(),
            "local_time": "11:00:00",
            "title": "Lab time (late)",
        },
        headers=w.requester,
    )
    assert split.status_code == 200, split.text
    new = split.json()
    assert new["id"] != series["id"]
    assert [b["id"] for b in new["bookings"]] == ids[4:]  # same bookings, moved
    assert [_utc(b["start"]) for b in new["bookings"]] == mondays(11)[4:]
    assert {b["title"] for b in new["bookings"]} == {"Lab time (late)"}
    assert new["local_start"] == "2027-03-29T11:00:00"
    old = client.get(f"/booking-series/{series['id']}", headers=w.requester).json()
    assert [_utc(b["start"]) for b in old["bookings"]] == mondays(10)[:4]
    assert old["rrule"].endswith("UNTIL=" + mondays(10)[3].strftime("%Y%m%dT%H%M%SZ"))

    js = assert_clients_show(client, w)
    assert [o[0] for o in js] == [f"series-{series['id']}@copool"] * 4 + [
        f"series-{new['id']}@copool"
    ] * 4
    assert [o[3] for o in js] == ["Lab time"] * 4 + ["Lab time (late)"] * 4


def test_an_occurrence_moved_or_cancelled_alone_is_an_override_or_exdate(
    client: Any, world: Any
) -> None:
    w = build(world)
    series = weekly(client, w)
    third, fifth = series["bookings"][2], series["bookings"][4]
    moved_to = mondays(14)[2]
    moved = client.patch(
        f"/bookings/{third['id']}",
        json={"start": moved_to.isoformat(), "title": "Lab time, afternoon"},
        headers=w.requester,
    )
    assert moved.status_code == 200, moved.text
    cancelled = client.post(
        f"/bookings/{fifth['id']}/cancel", json={"reason": "holiday"}, headers=w.requester
    )
    assert cancelled.status_code == 200, cancelled.text
    body = project_feed(client, w)
    assert body.count(b"RECURRENCE-ID") == 1 and b"EXDATE" in body
    js = assert_clients_show(client, w)
    assert moved_to in [o[1] for o in js] and mondays(10)[4] not in [o[1] for o in js]
    assert "Lab time, afternoon" in [o[3] for o in js]

    # an edit of all resets the occurrence moved alone to the series' new time
    every = client.patch(
        f"/booking-series/{series['id']}",
        json={"scope": "all", "local_time": "09:00:00"},
        headers=w.requester,
    )
    assert every.status_code == 200, every.text
    assert every.json()["id"] == series["id"]  # nothing had started: edited in place
    live = [b for b in every.json()["bookings"] if b["status"] == "confirmed"]
    assert [_utc(b["start"]) for b in live] == [t for k, t in enumerate(mondays(9)) if k != 4]
    assert b"RECURRENCE-ID" not in project_feed(client, w)
    assert_clients_show(client, w)


def test_an_occurrence_that_cannot_move_refuses_the_whole_edit(client: Any, world: Any) -> None:
    w = build(world)
    series = weekly(client, w)
    clash = client.post(
        "/bookings",
        headers=w.requester,
        json={
            "resource_id": str(w.expert),
            "project_id": str(w.project),
            "start": mondays(11)[6].isoformat(),
            "end": (mondays(11)[6] + timedelta(minutes=30)).isoformat(),
        },
    )
    assert clash.status_code == 201, clash.text
    with world.session() as s:
        before = s.scalar(select(func.count()).select_from(BookingSeries))
    refused = client.patch(
        f"/booking-series/{series['id']}",
        json={
            "scope": "this_and_following",
            "from_occurrence": mondays(10)[4].isoformat(),
            "local_time": "11:00:00",
        },
        headers=w.requester,
    )
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["code"] == "occurrence_conflicts"
    assert [o["occurrence"] for o in problem["conflicts"]] == [mondays(10)[6].isoformat()]
    assert problem["conflicts"][0]["conflicts"][0]["booking_id"] == clash.json()["id"]
    with world.session() as s:
        assert s.scalar(select(func.count()).select_from(BookingSeries)) == before
        starts = s.scalars(
            select(Booking.start).where(Booking.series_id == series["id"]).order_by(Booking.start)
        ).all()
    assert list(starts) == mondays(10)  # nothing moved

    late = client.patch(
        f"/booking-series/{series['id']}",
        json={
            "scope": "this_and_following",
            "from_occurrence": mondays(10)[4].isoformat(),
            "local_time": "17:30:00",
        },
        headers=w.requester,
    )
    assert late.status_code == 409, late.text  # outside Eva's working hours, every one
    assert {o["code"] for o in late.json()["conflicts"]} == {"outside_working_hours"}
    assert len(late.json()["conflicts"]) == 4
    bad = client.patch(
        f"/booking-series/{series['id']}",
        json={
            "scope": "this_and_following",
            "from_occurrence": "2027-03-30T09:00:00Z",
            "local_time": "11:00:00",
        },
        headers=w.requester,
    )
    assert bad.status_code == 400 and bad.json()["field"] == "from_occurrence", bad.text


def test_cancelling_a_series_cancels_what_has_not_started(client: Any, world: Any) -> None:
    w = build(world)
    series = weekly(client, w)
    gone = client.delete(
        f"/booking-series/{series['id']}",
        params={"reason": "project paused"},
        headers=w.requester,
    )
    assert gone.status_code == 200, gone.text
    assert {b["status"] for b in gone.json()["bookings"]} == {"cancelled"}
    assert stored(client, w) == []
    again = client.delete(f"/booking-series/{series['id']}", headers=w.requester)
    assert again.status_code == 409
    other = client.delete(f"/booking-series/{series['id']}", headers=w.outsider)
    assert other.status_code == 404


def daily_device(client: Any, w: Lending, first: str) -> dict[str, Any]:
    made = client.post(
        "/booking-series",
        headers=w.requester,
        json={
            "resource_id": str(w.device),
            "project_id": str(w.project),
            "title": "Night survey",
            "time_zone": "Europe/Berlin",
            "local_start": first,
            "duration_minutes": 30,
            "rrule": "FREQ=DAILY;COUNT=5",
        },
    )
    assert made.status_code == 201, made.text
    result: dict[str, Any] = made.json()
    return result


def test_dst_gap_and_fold_occurrences_show_as_stored(client: Any, world: Any) -> None:
    w = build(world)
    gap = daily_device(client, w, "2027-03-26T02:30:00")
    fold = daily_device(client, w, "2027-10-29T02:30:00")
    assert _utc(gap["bookings"][2]["start"]) == datetime(2027, 3, 28, 1, 30, tzinfo=UTC)
    assert _utc(fold["bookings"][2]["start"]) == datetime(2027, 10, 31, 0, 30, tzinfo=UTC)
    js = assert_clients_show(client, w)
    assert datetime(2027, 3, 28, 1, 30, tzinfo=UTC) in [o[1] for o in js]

    # "this and following" from the day after the gap: both parts still show as stored
    split = client.patch(
        f"/booking-series/{gap['id']}",
        json={
            "scope": "this_and_following",
            "from_occurrence": gap["bookings"][3]["start"],
            "local_time": "03:00:00",
        },
        headers=w.requester,
    )
    assert split.status_code == 200, split.text
    assert_clients_show(client, w)


def test_editing_all_after_some_started_splits_there(client: Any, world: Any) -> None:
    """Occurrences that have started keep their times: "all" splits at the first that has
    not, and the feed still shows exactly what is stored."""
    w = build(world)
    admin = world.user("boss", "B", Role.ADMIN)
    today = datetime.now(UTC).astimezone(BERLIN).date()
    first = today - timedelta(weeks=3) + timedelta(days=1)  # three past, three to come
    made = client.post(
        "/booking-series",
        headers=admin,
        json={
            "resource_id": str(w.device),
            "project_id": str(w.project),
            "title": "Weekly flight",
            "time_zone": "Europe/Berlin",
            "local_start": f"{first.isoformat()}T06:00:00",
            "duration_minutes": 60,
            "rrule": "FREQ=WEEKLY;COUNT=6",
            "backfill": True,
        },
    )
    assert made.status_code == 201, made.text
    series = made.json()
    edited = client.patch(
        f"/booking-series/{series['id']}",
        json={"scope": "all", "local_time": "07:00:00"},
        headers=admin,
    )
    assert edited.status_code == 200, edited.text
    new = edited.json()
    assert new["id"] != series["id"]
    assert [b["id"] for b in new["bookings"]] == [b["id"] for b in series["bookings"][3:]]
    assert {_utc(b["start"]).astimezone(BERLIN).hour for b in new["bookings"]} == {7}
    old = client.get(f"/booking-series/{series['id']}", headers=admin).json()
    assert {_utc(b["start"]).astimezone(BERLIN).hour for b in old["bookings"]} == {6}
    assert len(old["bookings"]) == 3
    assert_clients_show(client, w)
