"""Calendar feeds over HTTP: secret URLs, content and privacy, caching, busy-time import.

Dates of single bookings are a few weeks from today, because cancellation and the feed
window count from the real instant a booking changes; the recurring series uses fixed 2027
dates and a fixed feed clock (``app.state.feeds_clock``).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from datetime import UTC, date, datetime, time, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events

import ledger
from app.agreements.models import AgreementScope
from app.agreements.schemas import AgreementCreate
from app.agreements.services import create_agreement
from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.bookings.models import Booking
from app.projects.schemas import ProjectCreate, ShareTerm
from app.projects.services import create_project
from calendars import MIN_FEED_BYTES
from tests.app.booking_world import Lending, build

BERLIN = ZoneInfo("Europe/Berlin")
NODE_DIR = Path(__file__).parents[1] / "calendars" / "node"


def monday(weeks_ahead: int = 5) -> date:
    """A Monday some weeks from today (inside the feed window, after the cancel grace)."""
    day = datetime.now(UTC).date() + timedelta(weeks=weeks_ahead)
    return day - timedelta(days=day.weekday())


def slot(day: date, start: int, end: int) -> dict[str, str]:
    """Start and end of a booking at local Berlin hours on ``day``."""
    return {
        "start": datetime.combine(day, time(start), BERLIN).isoformat(),
        "end": datetime.combine(day, time(end), BERLIN).isoformat(),
    }


def book(
    client: Any,
    w: Lending,
    day: date,
    start: int,
    end: int,
    title: str,
    headers: dict[str, str] | None = None,
    project: Any = None,
) -> dict[str, Any]:
    body = {
        "resource_id": str(w.expert),
        "project_id": str(project or w.project),
        "title": title,
        **slot(day, start, end),
    }
    answer = client.post("/bookings", json=body, headers=headers or w.requester)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def make_feed(
    client: Any, headers: dict[str, str], kind: str, target: Any = None
) -> dict[str, Any]:
    body = {"kind": kind} if target is None else {"kind": kind, "target_id": str(target)}
    answer = client.post("/feed-subscriptions", json=body, headers=headers)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def path(feed: dict[str, Any]) -> str:
    return urlsplit(feed["url"]).path


def events(body: bytes) -> dict[str, icalendar.cal.Component]:
    cal = icalendar.Calendar.from_ical(body)
    return {str(e["UID"]): e for e in cal.walk("VEVENT")}


def uid(booking: dict[str, Any]) -> str:
    return f"booking-{booking['id']}@copool"


def add_borrower_c(world: Any, w: Lending) -> tuple[dict[str, str], Any]:
    """A third unit C that borrows from L too, with a project of its own."""
    headers = world.user("reqc", "C", Role.REQUESTER)
    with world.session() as s:
        create_agreement(
            s,
            SYSTEM,
            AgreementCreate(
                lender_unit_id=w.lender,
                borrower_unit_id=world.units["C"],
                scope=AgreementScope.ALL,
                requires_approval=False,
                valid_from=date(2020, 1, 1),
            ),
        )
        project = create_project(
            s,
            SYSTEM,
            ProjectCreate(
                name="Other work",
                code="J2",
                lead_unit_id=world.units["C"],
                lead_user_id=world.users["reqc"],
                start_date=date(2020, 1, 1),
                end_date=date(2035, 12, 31),
                currency="EUR",
                shares=[ShareTerm(unit_id=world.units["C"], share_bp=10_000)],
                member_ids=[world.users["reqc"]],
            ),
        ).id
        # where bookings place holds on the project's cash, C's project needs some
        ledger.contribute(
            s,
            project,
            world.units["C"],
            ledger.Money(100_000_000, "EUR"),
            key=f"fund-{project}",
            memo="test funds",
        )
    return headers, project


# --- secret URLs ------------------------------------------------------------------------


def test_create_rotate_revoke_and_unknown_tokens_are_404(client, world):
    w = build(world)
    feed = make_feed(client, w.requester, "expert", w.expert)
    assert feed["token"].startswith("cpf_") and len(feed["token"]) >= 4 + 43  # 256 bits
    assert feed["url"].endswith(f"/feeds/{feed['token']}.ics")
    assert feed["webcal_url"] == "webcal://" + feed["url"].split("://", 1)[1]
    assert feed["google_url"].startswith(
        "https://calendar.google.com/calendar/render?cid=webcal%3A%2F%2F"
    )
    assert feed["time_zone"] == "Europe/Berlin"

    # no API key needed; the ".ics" ending is optional
    assert client.get(path(feed)).status_code == 200
    assert client.get(path(feed).removesuffix(".ics")).status_code == 200

    listed = client.get("/feed-subscriptions", headers=w.requester).json()["items"]
    assert [f["id"] for f in listed] == [feed["id"]]
    assert "token" not in listed[0] and "url" not in listed[0]
    # another user neither sees nor rotates nor revokes it
    assert client.get("/feed-subscriptions", headers=w.manager).json()["items"] == []
    for action in ("rotate", "revoke"):
        other = client.post(
            f"/feed-subscriptions/{feed['id']}/{action}", json={}, headers=w.manager
        )
        assert other.status_code == 404, other.text

    rotated = client.post(f"/feed-subscriptions/{feed['id']}/rotate", headers=w.requester)
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()
    assert new["id"] == feed["id"] and new["token"] != feed["token"]
    old = client.get(path(feed))
    assert old.status_code == 404
    assert feed["token"] not in old.text
    assert client.get(path(new)).status_code == 200

    revoked = client.post(
        f"/feed-subscriptions/{feed['id']}/revoke", json={"reason": "leak"}, headers=w.requester
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    gone = client.get(path(new))
    assert gone.status_code == 404
    assert gone.headers["content-type"] == "application/problem+json"
    assert new["token"] not in gone.text
    assert (
        client.post(f"/feed-subscriptions/{feed['id']}/rotate", headers=w.requester).status_code
        == 409
    )
    assert client.get("/feed-subscriptions", headers=w.requester).json()["items"] == []
    assert (
        client.get("/feed-subscriptions?include_revoked=true", headers=w.requester).json()["total"]
        == 1
    )
    assert client.get("/feeds/cpf_" + "x" * 43 + ".ics").status_code == 404
    assert client.get("/feeds/nonsense").status_code == 404


def test_only_who_may_see_the_data_makes_a_feed(client, world):
    w = build(world)
    # the outsider's unit has no agreement with L: the expert does not exist for them
    denied = client.post(
        "/feed-subscriptions",
        json={"kind": "expert", "target_id": str(w.expert)},
        headers=w.outsider,
    )
    assert denied.status_code == 404
    for kind, target in (("unit", w.lender), ("project", w.project), ("device", w.expert)):
        answer = client.post(
            "/feed-subscriptions", json={"kind": kind, "target_id": str(target)}, headers=w.outsider
        )
        assert answer.status_code == 404, (kind, answer.text)
    bad = client.post(
        "/feed-subscriptions",
        json={"kind": "mine", "target_id": str(w.expert)},
        headers=w.requester,
    )
    assert bad.status_code == 400
    assert (
        client.post("/feed-subscriptions", json={"kind": "unit"}, headers=w.requester).status_code
        == 400
    )
    assert client.post("/feed-subscriptions", json={"kind": "mine"}).status_code == 401
    make_feed(client, w.requester, "unit", w.borrower)
    make_feed(client, w.requester, "project", w.project)
    make_feed(client, w.requester, "device", w.device)
    make_feed(client, w.requester, "mine")


def test_a_deactivated_owner_s_feed_is_404(client, world):
    w = build(world)
    feed = make_feed(client, w.requester, "mine")
    assert client.get(path(feed)).status_code == 200
    admin = world.user("admin", "L", Role.ADMIN)
    off = client.patch(f"/users/{world.users['req']}", json={"active": False}, headers=admin)
    assert off.status_code == 200, off.text
    assert client.get(path(feed)).status_code == 404


# --- content and privacy ------------------------------------------------------------------


def test_feeds_show_details_only_to_borrower_and_lender(client, world):
    w = build(world)
    c_headers, c_project = add_borrower_c(world, w)
    day = monday()
    ours = book(client, w, day, 10, 12, "Flood model review")
    theirs = book(client, w, day, 13, 15, "Secret C work", headers=c_headers, project=c_project)

    borrower_view = events(
        client.get(path(make_feed(client, w.requester, "expert", w.expert))).content
    )
    assert set(borrower_view) == {uid(ours), uid(theirs)}
    mine = borrower_view[uid(ours)]
    assert str(mine["SUMMARY"]) == "Flood model review"
    assert "Project J1" in str(mine["DESCRIPTION"])
    assert str(mine["RESOURCES"]) == "Eva Expert"
    busy = borrower_view[uid(theirs)]
    assert str(busy["SUMMARY"]) == "Busy" and str(busy["CLASS"]) == "PRIVATE"
    assert "DESCRIPTION" not in busy and "RESOURCES" not in busy
    assert busy.decoded("DTSTART") == datetime.combine(day, time(13), BERLIN)

    body = client.get(path(make_feed(client, w.requester, "expert", w.expert))).content
    assert b"Secret C work" not in body and b"J2" not in body

    lender_view = events(client.get(path(make_feed(client, w.manager, "expert", w.expert))).content)
    assert str(lender_view[uid(theirs)]["SUMMARY"]) == "Secret C work"

    unit_view = events(client.get(path(make_feed(client, w.requester, "unit", w.borrower))).content)
    assert set(unit_view) == {uid(ours)}
    project_view = events(
        client.get(path(make_feed(client, c_headers, "project", c_project))).content
    )
    assert set(project_view) == {uid(theirs)}
    mine_view = events(client.get(path(make_feed(client, c_headers, "mine"))).content)
    assert set(mine_view) == {uid(theirs)}


def test_an_expert_s_own_feed_shows_what_they_are_booked_for(client, world):
    w = build(world)
    booking = book(client, w, monday(), 10, 11, "Site visit")
    with world.session() as s:
        from app.auth import services as auth
        from app.auth.schemas import UserCreate
        from app.catalog.models import Resource

        s.get(Resource, w.expert).email = "eva@l.example.org"
        eva = auth.create_user(
            s,
            SYSTEM,
            UserCreate(
                unit_id=w.lender, name="Eva", email="Eva@L.example.org", roles=[Role.REQUESTER]
            ),
        )
        _, token = auth.issue_key(s, SYSTEM, eva.id)
    feed = make_feed(client, {"Authorization": f"Bearer {token}"}, "mine")
    view = events(client.get(path(feed)).content)
    assert str(view[uid(booking)]["SUMMARY"]) == "Site visit"


def test_a_change_raises_sequence_keeps_uid_and_changes_etag(client, world):
    w = build(world, requires_approval=True)
    booking = book(client, w, monday(), 10, 12, "Calibration")
    feed = path(make_feed(client, w.requester, "expert", w.expert))
    first = client.get(feed)
    event = events(first.content)[uid(booking)]
    assert str(event["STATUS"]) == "TENTATIVE" and event["SEQUENCE"] == 0
    assert client.get(feed).content == first.content  # unchanged data, identical bytes

    approved = client.post(
        f"/bookings/{booking['id']}/approve", json={"reason": "ok"}, headers=w.manager
    )
    assert approved.status_code == 200, approved.text
    second = client.get(feed)
    event = events(second.content)[uid(booking)]
    assert str(event["STATUS"]) == "CONFIRMED" and event["SEQUENCE"] == 1
    assert second.headers["etag"] != first.headers["etag"]
    assert event.decoded("DTSTAMP") >= events(first.content)[uid(booking)].decoded("DTSTAMP")
    stale = client.get(feed, headers={"If-None-Match": first.headers["etag"]})
    assert stale.status_code == 200 and stale.content == second.content


def test_cancelled_stays_for_the_grace_period_then_leaves(app, client, world):
    w = build(world)
    booking = book(client, w, monday(), 10, 12, "Survey")
    feed = path(make_feed(client, w.requester, "expert", w.expert))
    cancelled = client.post(
        f"/bookings/{booking['id']}/cancel", json={"reason": "rain"}, headers=w.requester
    )
    assert cancelled.status_code == 200, cancelled.text
    event = events(client.get(feed).content)[uid(booking)]
    assert str(event["STATUS"]) == "CANCELLED"
    assert event["SEQUENCE"] == 1
    assert str(event["SUMMARY"]) == "Cancelled: Survey"

    now = datetime.now(UTC)
    app.state.feeds_clock = lambda: now + timedelta(days=6)
    during = client.get(feed)
    assert uid(booking) in events(during.content)
    etag = during.headers["etag"]
    assert client.get(feed, headers={"If-None-Match": etag}).status_code == 304
    app.state.feeds_clock = lambda: now + timedelta(days=8)
    # nothing was written, yet the feed changed: time alone must invalidate the version
    later = client.get(feed, headers={"If-None-Match": etag})
    assert later.status_code == 200
    assert uid(booking) not in events(later.content)
    # leaving the feed is a change: Last-Modified moves to the end of the grace period
    assert parsedate_to_datetime(later.headers["last-modified"]) > now + timedelta(days=6)


# --- HTTP caching -------------------------------------------------------------------------


def test_headers_and_conditional_requests(client, world, monkeypatch):
    w = build(world)
    book(client, w, monday(), 10, 12, "Prüfung für Ärzte")
    feed = path(make_feed(client, w.requester, "expert", w.expert))
    full = client.get(feed)
    assert full.status_code == 200
    assert full.headers["content-type"] == "text/calendar; charset=utf-8"
    assert "private" in full.headers["cache-control"]
    etag = full.headers["etag"]
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    last_modified = parsedate_to_datetime(full.headers["last-modified"])
    assert full.content.startswith(b"BEGIN:VCALENDAR\r\n")
    assert "Prüfung für Ärzte" in full.content.decode("utf-8")

    def no_render(*_: Any, **__: Any) -> bytes:
        raise AssertionError("a 304 must not render the feed")

    monkeypatch.setattr("app.feeds.services.render_feed", no_render)
    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", W/{etag}'},
        {"If-None-Match": "*"},
        {"If-Modified-Since": full.headers["last-modified"]},
        {"If-Modified-Since": format_datetime(last_modified + timedelta(hours=1), usegmt=True)},
    ):
        answer = client.get(feed, headers=headers)
        assert answer.status_code == 304, headers
        assert answer.content == b""
        assert answer.headers["etag"] == etag
        assert answer.headers["last-modified"] == full.headers["last-modified"]
        assert "private" in answer.headers["cache-control"]
    monkeypatch.undo()

    earlier = format_datetime(last_modified - timedelta(seconds=1), usegmt=True)
    assert client.get(feed, headers={"If-Modified-Since": earlier}).status_code == 200
    # If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2)
    both = {"If-None-Match": '"other"', "If-Modified-Since": full.headers["last-modified"]}
    assert client.get(feed, headers=both).status_code == 200
    assert client.get(feed, headers={"If-Modified-Since": "not a date"}).status_code == 200


def test_a_repeated_fetch_reuses_the_body_until_something_shown_changes(app, client, world):
    w = build(world)
    booking = book(client, w, monday(), 10, 12, "Calibration")
    feed = path(make_feed(client, w.requester, "expert", w.expert))
    first = client.get(feed)
    renders: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> bytes:
        renders.append(1)
        return render_feed(*args, **kwargs)

    from calendars import render_feed

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("app.feeds.services.render_feed", counted)
        # no validators (Google never sends any), yet nothing changed: no render
        assert client.get(feed).content == first.content
        assert renders == []

        # a change that does not raise SEQUENCE still gives a new body at once
        with world.session() as s:
            s.get(Booking, uuid.UUID(booking["id"])).title = "Calibration, second run"
        renamed = client.get(feed)
        assert renders == [1]
        assert str(events(renamed.content)[uid(booking)]["SUMMARY"]) == "Calibration, second run"
        assert renamed.headers["etag"] != first.headers["etag"]
        assert client.get(feed).content == renamed.content
        assert renders == [1]

        cancelled = client.post(
            f"/bookings/{booking['id']}/cancel", json={"reason": "rain"}, headers=w.requester
        )
        assert cancelled.status_code == 200, cancelled.text
        event = events(client.get(feed).content)[uid(booking)]
        assert str(event["STATUS"]) == "CANCELLED"
        # time alone changes the feed too: after the grace period the booking is gone
        now = datetime.now(UTC)
        app.state.feeds_clock = lambda: now + timedelta(days=8)
        assert uid(booking) not in events(client.get(feed).content)
        assert renders == [1, 1, 1]


def test_a_feed_too_big_for_calendar_apps_leaves_out_its_last_bookings(client, world):
    w = build(world)
    first_day = monday()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("app.feeds.services.MAX_FEED_BYTES", MIN_FEED_BYTES)
        # four two-hour bookings a working day for five weeks: more than 16 KiB of events
        booked = []
        for week in range(5):
            for weekday in range(5):
                day = first_day + timedelta(weeks=week, days=weekday)
                for hour in (9, 11, 13, 15):
                    booked.append(book(client, w, day, hour, hour + 2, f"Run {len(booked)}"))
        feed = path(make_feed(client, w.requester, "expert", w.expert))
        body = client.get(feed).content
    assert len(body) <= MIN_FEED_BYTES
    cal = icalendar.Calendar.from_ical(body)
    shown = {str(e["UID"]) for e in cal.walk("VEVENT")}
    in_order = [uid(b) for b in booked]  # booked by start time
    assert 0 < len(shown) < len(booked)
    assert shown == set(in_order[: len(shown)])
    note = str(cal["DESCRIPTION"])
    assert f"the {len(booked) - len(shown)} bookings that start last" in note


# --- recurring series through real clients -----------------------------------------------


def weekly_berlin(first: date, weeks: int) -> list[datetime]:
    return [
        datetime.combine(first + timedelta(weeks=i), time(10), BERLIN).astimezone(UTC)
        for i in range(weeks)
    ]


def test_weekly_berlin_series_reads_right_across_dst(app, client, world):
    app.state.feeds_clock = lambda: datetime(2027, 1, 15, tzinfo=UTC)
    w = build(world)
    created = client.post(
        "/booking-series",
        json={
            "resource_id": str(w.expert),
            "project_id": str(w.project),
            "title": "Weekly lab",
            "time_zone": "Europe/Berlin",
            "local_start": "2027-03-01T10:00:00",
            "duration_minutes": 90,
            "rrule": "FREQ=WEEKLY;BYDAY=MO;COUNT=40",
        },
        headers=w.requester,
    )
    assert created.status_code == 201, created.text
    series = created.json()
    feed = path(make_feed(client, w.requester, "expert", w.expert))
    before = client.get(feed)
    assert len(events(before.content)) == 1  # one event with an RRULE, not 40

    skip = datetime(2027, 4, 5, 8, 0, tzinfo=UTC)  # 10:00 CEST
    occurrence = next(b for b in series["bookings"] if datetime.fromisoformat(b["start"]) == skip)
    assert (
        client.post(
            f"/bookings/{occurrence['id']}/cancel", json={"reason": "holiday"}, headers=w.requester
        ).status_code
        == 200
    )
    after = client.get(feed)
    assert after.headers["etag"] != before.headers["etag"]
    (event,) = events(after.content).values()
    assert str(event["UID"]) == f"series-{series['id']}@copool"
    assert event["SEQUENCE"] > events(before.content)[str(event["UID"])]["SEQUENCE"]
    assert "UNTIL=20271129T090000Z" in after.text.replace("\r\n ", "")

    expected = [t for t in weekly_berlin(date(2027, 3, 1), 40) if t != skip]
    by_day = {t.date().isoformat(): t.strftime("%H:%MZ") for t in expected}
    assert (by_day["2027-03-22"], by_day["2027-03-29"]) == ("09:00Z", "08:00Z")
    assert (by_day["2027-10-25"], by_day["2027-11-01"]) == ("08:00Z", "09:00Z")

    cal = icalendar.Calendar.from_ical(after.content)
    found = recurring_ical_events.of(cal).between(
        datetime(2027, 1, 1, tzinfo=UTC), datetime(2028, 1, 1, tzinfo=UTC)
    )
    starts = sorted(o.decoded("DTSTART").astimezone(UTC) for o in found)
    assert starts == expected

    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "ical.js").is_dir():
        pytest.skip("ical.js not installed (npm ci --prefix tests/calendars/node)")
    done = subprocess.run(
        ["node", str(NODE_DIR / "expand.mjs"), "2028-01-01T00:00:00Z"],
        input=after.content,
        capture_output=True,
        check=True,
        timeout=60,
    )
    ical_js = json.loads(done.stdout)
    got = sorted(
        datetime.fromisoformat(e["start"].replace("Z", "+00:00")) for e in ical_js["events"]
    )
    assert got == expected


# --- busy-time import ----------------------------------------------------------------------


def ics(*spans: tuple[datetime, datetime], extra: str = "") -> bytes:
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN"]
    for i, (start, end) in enumerate(spans):
        lines += [
            "BEGIN:VEVENT",
            f"UID:busy-{i}@test",
            "DTSTAMP:20260101T000000Z",
            f"DTSTART:{start.astimezone(UTC):%Y%m%dT%H%M%SZ}",
            f"DTEND:{end.astimezone(UTC):%Y%m%dT%H%M%SZ}",
            "SUMMARY:Dentist",
            extra,
            "END:VEVENT",
        ]
    lines.append("END:VCALENDAR")
    return ("\r\n".join(line for line in lines if line) + "\r\n").encode()


def local(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), BERLIN)


def test_import_blocks_booking_and_replaces_the_previous_import(client, world):
    w = build(world)
    mon = monday()
    tue = mon + timedelta(days=1)
    url = f"/experts/{w.expert}/busy-import"
    leave = client.post(
        f"/experts/{w.expert}/leave", json=slot(mon + timedelta(days=2), 0, 23), headers=w.manager
    )
    assert leave.status_code == 201, leave.text

    first = client.post(
        url,
        files={"file": ("me.ics", ics((local(mon, 10), local(mon, 12))), "text/calendar")},
        headers=w.manager,
    )
    assert first.status_code == 200, first.text
    assert (first.json()["imported"], first.json()["replaced"]) == (1, 0)
    body = {"resource_id": str(w.expert), "project_id": str(w.project)}
    blocked = client.post("/bookings", json={**body, **slot(mon, 11, 12)}, headers=w.requester)
    assert blocked.status_code == 409 and blocked.json()["code"] == "unavailable"

    # a weekly repeating event is expanded; the Monday event is gone with the old import
    weekly = ics((local(tue, 9), local(tue, 10)), extra="RRULE:FREQ=WEEKLY;COUNT=3")
    second = client.post(
        url, content=weekly, headers={**w.manager, "Content-Type": "text/calendar"}
    )
    assert second.status_code == 200, second.text
    assert (second.json()["imported"], second.json()["replaced"]) == (3, 1)
    assert (
        client.post(
            "/bookings", json={**body, **slot(mon, 11, 12)}, headers=w.requester
        ).status_code
        == 201
    )
    third_tuesday = tue + timedelta(weeks=2)
    refused = client.post(
        "/bookings", json={**body, **slot(third_tuesday, 9, 10)}, headers=w.requester
    )
    assert refused.status_code == 409 and refused.json()["code"] == "unavailable"
    periods = client.get(f"/experts/{w.expert}/leave", headers=w.manager).json()["items"]
    assert len(periods) == 4  # the leave stays; three imported Tuesdays


def test_import_is_for_the_expert_s_own_managers_and_refuses_bad_files(client, world):
    w = build(world)
    url = f"/experts/{w.expert}/busy-import"
    good = ics((local(monday(), 10), local(monday(), 11)))
    text = {"Content-Type": "text/calendar"}
    assert client.post(url, content=good, headers={**w.requester, **text}).status_code == 403
    assert client.post(url, content=good, headers={**w.outsider, **text}).status_code == 404
    for bad in (b"", b"hello", b"BEGIN:VEVENT\r\nEND:VEVENT\r\n"):
        answer = client.post(url, content=bad, headers={**w.manager, **text})
        assert answer.status_code == 400, (bad, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["field"] == "file"
    wrong_field = client.post(
        url, files={"upload": ("me.ics", good, "text/calendar")}, headers=w.manager
    )
    assert wrong_field.status_code == 400
    huge = client.post(url, content=good + b" " * (3 * 1024 * 1024), headers={**w.manager, **text})
    assert huge.status_code == 400
    assert client.post(url, content=good, headers={**w.manager, **text}).status_code == 200
