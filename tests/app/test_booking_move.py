"""Moving and editing a booking in place: PATCH /bookings/{id} (issue 15, "Move and edit").

A move keeps the booking's id and feed UID, raises its SEQUENCE by one, is checked by the
rules of a new booking (the booking itself left out of the overlap), and re-prices the
hold in the same transaction; a move made 24 h or more before the start is free, a later
one pays the agreement's cancellation fee. Slots are a few weeks ahead (Berlin working
hours), except the late move, which books the always-open drone a few hours from now.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import icalendar
import pytest
from sqlalchemy import select

import ledger
from app.audit.models import AuditEvent
from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.catalog import services as catalog
from app.catalog.schemas import (
    DeviceCreate,
    DeviceTypeCreate,
    ExpertCreate,
    SkillCreate,
    SkillLevel,
)
from tests.app.booking_world import WEEKDAYS_9_TO_5, Lending, build
from tests.app.live_server import live_server, together

BERLIN = ZoneInfo("Europe/Berlin")
NODE_DIR = Path(__file__).parents[1] / "calendars" / "node"
EXPERT_RATE = 9000  # minor units per hour (booking_world)
DRONE_RATE = 2000


def monday(weeks_ahead: int = 5) -> date:
    """A Monday some weeks from today: far outside the 24 h of a late move."""
    day = datetime.now(UTC).date() + timedelta(weeks=weeks_ahead)
    return day - timedelta(days=day.weekday())


def at(day: date, hour: int) -> str:
    """An instant at a local Berlin hour on ``day``, as ISO text."""
    return datetime.combine(day, time(hour), BERLIN).isoformat()


def book(client: Any, w: Lending, start: str, end: str, resource: Any = None) -> dict[str, Any]:
    body = {
        "resource_id": str(resource or w.expert),
        "project_id": str(w.project),
        "title": "Survey",
        "start": start,
        "end": end,
    }
    answer = client.post("/bookings", json=body, headers=w.requester)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def holds(world: Any, booking_id: str) -> list[tuple[str, int]]:
    """The booking's holds in order: (state, amount)."""
    with world.session() as s:
        return [
            (ledger.hold_state(s, h.id).state, h.amount)
            for h in ledger.holds_for_reference(s, booking_id)
        ]


def statement(client: Any, w: Lending, world: Any) -> dict[str, Any]:
    answer = client.get(f"/projects/{w.project}/funds/statement", headers=world.headers("lead"))
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def set_fee(client: Any, world: Any, w: Lending, fee: int) -> None:
    boss = world.user("lender-boss", "L", Role.UNIT_MANAGER)
    answer = client.patch(
        f"/agreements/{w.agreement}", json={"cancellation_fee": fee}, headers=boss
    )
    assert answer.status_code == 200, answer.text


def feed_event(client: Any, w: Lending, booking_id: str) -> tuple[bytes, list[Any]]:
    """The expert's feed and its VEVENTs of the booking."""
    made = client.post(
        "/feed-subscriptions",
        json={"kind": "expert", "target_id": str(w.expert)},
        headers=w.requester,
    )
    assert made.status_code == 201, made.text
    body = client.get(httpx.URL(made.json()["url"]).path).content
    cal = icalendar.Calendar.from_ical(body)
    uid = f"booking-{booking_id}@copool"
    return body, [e for e in cal.walk("VEVENT") if str(e["UID"]) == uid]


ICAL_JS = """
import ICAL from "ical.js";
const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const cal = new ICAL.Component(ICAL.parse(Buffer.concat(chunks).toString("utf8")));
const out = cal.getAllSubcomponents("vevent").map((v) => {
  const e = new ICAL.Event(v);
  return { uid: e.uid, sequence: e.sequence, start: e.startDate.toJSDate().toISOString() };
});
process.stdout.write(JSON.stringify(out));
"""


def read_with_ical_js(body: bytes) -> list[dict[str, Any]]:
    """Every VEVENT as Mozilla's ical.js reads it (skips when Node or ical.js is missing)."""
    if shutil.which("node") is None or not (NODE_DIR / "node_modules" / "ical.js").is_dir():
        pytest.skip("ical.js not installed (npm ci --prefix tests/calendars/node)")
    done = subprocess.run(
        ["node", "--input-type=module", "-e", ICAL_JS],
        input=body,
        capture_output=True,
        check=True,
        timeout=60,
        cwd=NODE_DIR,
    )
    result: list[dict[str, Any]] = json.loads(done.stdout)
    return result


# --- the goal: a priced loan moved by an hour --------------------------------------------


def test_a_move_by_an_hour_keeps_id_rises_sequence_reprices_and_costs_nothing(client, world):
    w = build(world, funds=1_000_000)
    set_fee(client, world, w, 2_500)  # charged for a late move, not for this one
    day = monday()
    booked = book(client, w, at(day, 10), at(day, 12))
    assert booked["status"] == "confirmed"
    assert holds(world, booked["id"]) == [("pending", 2 * EXPERT_RATE)]

    moved = client.patch(
        f"/bookings/{booked['id']}", json={"start": at(day, 11), "reason": "later"},
        headers=w.requester,
    )
    assert moved.status_code == 200, moved.text
    after = moved.json()
    assert after["id"] == booked["id"] and after["status"] == "confirmed"
    assert after["sequence"] == booked["sequence"] + 1
    assert datetime.fromisoformat(after["start"]) == datetime.fromisoformat(at(day, 11))
    assert datetime.fromisoformat(after["end"]) == datetime.fromisoformat(at(day, 13))
    # the old hold released, the new one placed at the new slot's price, no fee
    assert holds(world, booked["id"]) == [("voided", 2 * EXPERT_RATE), ("pending", 2 * EXPERT_RATE)]
    money = statement(client, w, world)
    assert money["spent"] == 0 and money["held"] == 2 * EXPERT_RATE

    with world.session() as s:
        event = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "booking.move", AuditEvent.object_id == booked["id"]
            )
        ).one()
        assert event.before["start"] != event.after["start"]
        assert event.after["sequence"] == event.before["sequence"] + 1

    body, events = feed_event(client, w, booked["id"])
    assert len(events) == 1
    assert events[0]["SEQUENCE"] == booked["sequence"] + 1
    assert events[0].decoded("DTSTART").astimezone(UTC) == datetime.fromisoformat(after["start"])
    read = [e for e in read_with_ical_js(body) if e["uid"] == f"booking-{booked['id']}@copool"]
    assert len(read) == 1
    assert read[0]["sequence"] == booked["sequence"] + 1
    assert datetime.fromisoformat(read[0]["start"].replace("Z", "+00:00")) == (
        datetime.fromisoformat(after["start"])
    )


def test_a_longer_slot_is_held_at_its_new_price(client, world):
    w = build(world)
    day = monday()
    booked = book(client, w, at(day, 10), at(day, 12))
    moved = client.patch(
        f"/bookings/{booked['id']}", json={"end": at(day, 15)}, headers=w.requester
    )
    assert moved.status_code == 200, moved.text
    assert holds(world, booked["id"])[-1] == ("pending", 5 * EXPERT_RATE)


def test_a_late_move_pays_the_agreements_fee(client, world):
    w = build(world, funds=1_000_000)
    set_fee(client, world, w, 500)
    soon = (datetime.now(UTC) + timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    booked = book(client, w, soon.isoformat(), (soon + timedelta(hours=1)).isoformat(), w.device)
    moved = client.patch(
        f"/bookings/{booked['id']}",
        json={"start": (soon + timedelta(hours=1)).isoformat()},
        headers=w.requester,
    )
    assert moved.status_code == 200, moved.text
    assert holds(world, booked["id"]) == [("posted", DRONE_RATE), ("pending", DRONE_RATE)]
    money = statement(client, w, world)
    assert money["spent"] == 500 and money["held"] == DRONE_RATE
    # a cancellation afterwards pays its own fee from the new hold, once
    cancelled = client.post(f"/bookings/{booked['id']}/cancel", json={"reason": "off"},
                            headers=w.requester)
    assert cancelled.status_code == 200, cancelled.text
    money = statement(client, w, world)
    assert money["spent"] == 1_000 and money["held"] == 0


# --- refusals leave everything as it was ---------------------------------------------------


def test_a_move_onto_another_booking_is_409_overlap_and_changes_nothing(client, world):
    w = build(world)
    day = monday()
    first = book(client, w, at(day, 10), at(day, 12))
    second = book(client, w, at(day, 13), at(day, 15))
    clash = client.patch(
        f"/bookings/{second['id']}", json={"start": at(day, 11)}, headers=w.requester
    )
    assert clash.status_code == 409, clash.text
    assert clash.json()["code"] == "overlap"
    assert clash.json()["conflicts"][0]["booking_id"] == first["id"]
    now = client.get(f"/bookings/{second['id']}", headers=w.requester).json()
    assert (now["start"], now["end"], now["sequence"]) == (
        second["start"], second["end"], second["sequence"]
    )
    assert holds(world, second["id"]) == [("pending", 2 * EXPERT_RATE)]
    # overlapping only itself is fine: a shift by an hour into its own old slot
    assert client.patch(
        f"/bookings/{first['id']}", json={"start": at(day, 9)}, headers=w.requester
    ).status_code == 200


def test_bad_input_is_400_naming_the_field_and_others_may_not_move_it(client, world):
    w = build(world)
    day = monday()
    booked = book(client, w, at(day, 10), at(day, 12))
    url = f"/bookings/{booked['id']}"
    inverted = client.patch(url, json={"start": at(day, 12), "end": at(day, 11)},
                            headers=w.requester)
    assert inverted.status_code == 400 and inverted.json()["field"] == "end"
    shorter = client.patch(url, json={"end": at(day, 9)}, headers=w.requester)
    assert shorter.status_code == 400 and shorter.json()["field"] == "end"
    empty = client.patch(url, json={}, headers=w.requester)
    assert empty.status_code == 400
    naive = client.patch(url, json={"start": "2030-01-07T10:00:00"}, headers=w.requester)
    assert naive.status_code == 400 and "start" in naive.text
    evening = client.patch(url, json={"start": at(day, 18)}, headers=w.requester)
    assert evening.status_code == 409 and evening.json()["code"] == "outside_working_hours"
    assert client.patch(url, json={"start": at(day, 11)}, headers=w.outsider).status_code == 404
    assert client.patch(url, json={"start": at(day, 11)}, headers=w.manager).status_code == 403
    client.post(f"{url}/cancel", json={"reason": "off"}, headers=w.requester)
    late = client.patch(url, json={"start": at(day, 11)}, headers=w.requester)
    assert late.status_code == 409 and late.json()["code"] == "wrong_status"


def test_if_match_moves_only_the_version_that_was_read(client, world):
    w = build(world)
    day = monday()
    booked = book(client, w, at(day, 10), at(day, 12))
    url = f"/bookings/{booked['id']}"
    read = client.get(url, headers=w.requester)
    etag = read.headers["etag"]
    moved = client.patch(url, json={"start": at(day, 11)}, headers={**w.requester, "If-Match": etag})
    assert moved.status_code == 200, moved.text
    assert moved.headers["etag"] != etag
    assert moved.headers["etag"] == client.get(url, headers=w.requester).headers["etag"]
    stale = client.patch(url, json={"start": at(day, 13)}, headers={**w.requester, "If-Match": etag})
    assert stale.status_code == 412, stale.text
    assert stale.json()["code"] == "version_changed"
    assert stale.json()["field"] == "If-Match"
    now = client.get(url, headers=w.requester).json()
    assert (now["start"], now["sequence"]) == (moved.json()["start"], moved.json()["sequence"])
    fresh = client.patch(
        url, json={"start": at(day, 13)}, headers={**w.requester, "If-Match": moved.headers["etag"]}
    )
    assert fresh.status_code == 200, fresh.text


def test_a_title_edit_raises_sequence_without_touching_money(client, world):
    w = build(world)
    day = monday()
    booked = book(client, w, at(day, 10), at(day, 12))
    edited = client.patch(
        f"/bookings/{booked['id']}", json={"title": "Field survey"}, headers=w.requester
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["title"] == "Field survey"
    assert edited.json()["sequence"] == booked["sequence"] + 1
    assert holds(world, booked["id"]) == [("pending", 2 * EXPERT_RATE)]


# --- another resource, approval ---------------------------------------------------------------


def test_a_move_to_another_resource_takes_its_price_and_buffers(client, world):
    w = build(world)
    day = monday()
    booked = book(client, w, at(day, 10), at(day, 12))
    moved = client.patch(
        f"/bookings/{booked['id']}", json={"resource_id": str(w.device)}, headers=w.requester
    )
    assert moved.status_code == 200, moved.text
    after = moved.json()
    assert after["id"] == booked["id"] and after["resource_id"] == str(w.device)
    start = datetime.fromisoformat(after["start"])
    assert datetime.fromisoformat(after["block_start"]) == start - timedelta(minutes=15)
    assert holds(world, booked["id"]) == [("voided", 2 * EXPERT_RATE), ("pending", 2 * DRONE_RATE)]
    # the expert's slot is free again
    book(client, w, at(day, 10), at(day, 12))


def test_a_second_expert_of_another_rate(client, world):
    w = build(world)
    with world.session() as s:
        other = catalog.create_expert(
            s,
            SYSTEM,
            ExpertCreate(
                unit_id=w.lender,
                name="Otto Other",
                time_zone="Europe/Berlin",
                working_hours=WEEKDAYS_9_TO_5,
                skills=[SkillLevel(skill_id=w.skill, level=2)],
                hourly_rate=4000,
            ),
        ).id
    day = monday()
    booked = book(client, w, at(day, 10), at(day, 12))
    moved = client.patch(
        f"/bookings/{booked['id']}",
        json={"resource_id": str(other), "start": at(day, 14)},
        headers=w.requester,
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["resource_id"] == str(other)
    assert holds(world, booked["id"])[-1] == ("pending", 2 * 4000)


def test_a_moved_loan_under_approval_waits_again_with_the_new_slot(client, world):
    w = build(world, requires_approval=True)
    day = monday()
    booked = book(client, w, at(day, 10), at(day, 12))
    approved = client.post(
        f"/bookings/{booked['id']}/approve", json={"reason": "ok"}, headers=w.manager
    )
    assert approved.json()["status"] == "confirmed"
    moved = client.patch(
        f"/bookings/{booked['id']}", json={"start": at(day, 13)}, headers=w.requester
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "pending_approval"
    assert moved.json()["sequence"] == approved.json()["sequence"] + 1
    assert holds(world, booked["id"]) == [("voided", 2 * EXPERT_RATE)]
    book(client, w, at(day, 10), at(day, 12))  # the old slot is free at once
    again = client.post(
        f"/bookings/{booked['id']}/approve", json={"reason": "fine"}, headers=w.manager
    )
    assert again.status_code == 200 and again.json()["status"] == "confirmed"
    assert holds(world, booked["id"])[-1] == ("pending", 2 * EXPERT_RATE)


# --- races through the live app --------------------------------------------------------------


def _patch_together(base: str, jobs: list[tuple[str, dict[str, Any]]], headers: dict[str, str]
                    , if_match: str | None = None) -> list[httpx.Response]:
    if if_match is not None:
        headers = {**headers, "If-Match": if_match}
    clients = [httpx.Client(timeout=60) for _ in jobs]
    try:
        answers = together(
            len(jobs),
            lambda i, c: c.patch(f"{base}/bookings/{jobs[i][0]}", json=jobs[i][1],
                                 headers=headers),
            clients,
        )
    finally:
        for c in clients:
            c.close()
    assert all(isinstance(a, httpx.Response) for a in answers), answers
    return answers


def test_racing_moves_end_consistent(client, world, db_url, tmp_path):
    w = build(world)
    day = monday()
    one = book(client, w, at(day, 9), at(day, 10))
    other = book(client, w, at(day, 10), at(day, 11))
    with live_server(db_url, 1, tmp_path / "uvicorn.log") as base:
        # two moves of one booking to different slots: served one after the other
        answers = _patch_together(
            base, [(one["id"], {"start": at(day, 13)}), (one["id"], {"start": at(day, 15)})],
            w.requester,
        )
        assert sorted(a.status_code for a in answers) == [200, 200], [a.text for a in answers]
        final = client.get(f"/bookings/{one['id']}", headers=w.requester).json()
        assert final["sequence"] == one["sequence"] + 2
        assert final["start"] in {a.json()["start"] for a in answers}
        assert [s for s, _ in holds(world, one["id"])] == ["voided", "voided", "pending"]
        # two bookings moved onto one free slot: one wins, the other is told overlap
        answers = _patch_together(
            base, [(one["id"], {"start": at(day, 11)}), (other["id"], {"start": at(day, 11)})],
            w.requester,
        )
        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409], [a.text for a in answers]
        loser = next(a for a in answers if a.status_code == 409)
        assert loser.json()["code"] == "overlap"
        # two moves of one booking from the same read (If-Match): the second is told 412
        read = client.get(f"/bookings/{other['id']}", headers=w.requester)
        answers = _patch_together(
            base, [(other["id"], {"start": at(day, 14)}), (other["id"], {"start": at(day, 16)})],
            w.requester, if_match=read.headers["etag"],
        )
    assert sorted(a.status_code for a in answers) == [200, 412], [a.text for a in answers]
    won = next(a for a in answers if a.status_code == 200)
    final = client.get(f"/bookings/{other['id']}", headers=w.requester).json()
    assert final["start"] == won.json()["start"]
    with world.session() as s:
        moves = s.scalars(
            select(AuditEvent).where(AuditEvent.action == "booking.move")
        ).all()
        assert len(moves) == 4
    for booking in (one, other):
        assert [s for s, _ in holds(world, booking["id"])].count("pending") == 1


# --- bookings that serve a request -------------------------------------------------------------


def _served(client: Any, w: Lending, day: date, *resources: Any) -> list[dict[str, Any]]:
    """A request for named resources over ``day``'s working hours, served at once."""
    body = {
        "project_id": str(w.project),
        "title": "Survey",
        "duration_minutes": 120,
        "window_start": at(day, 9),
        "window_end": at(day, 17),
        "requirements": [{"kind": "resource", "resource_id": str(r)} for r in resources],
    }
    asked = client.post("/requests", json=body, headers=w.requester)
    assert asked.status_code == 201, asked.text
    served = client.post(f"/requests/{asked.json()['id']}/serve", headers=w.requester)
    assert served.status_code == 200, served.text
    result: list[dict[str, Any]] = served.json()["bookings"]
    return result


def test_a_request_s_only_booking_moves_inside_the_window(client, world):
    w = build(world)
    day = monday()
    (booking,) = _served(client, w, day, w.expert)
    url = f"/bookings/{booking['id']}"
    moved = client.patch(url, json={"start": at(day, 13)}, headers=w.requester)
    assert moved.status_code == 200, moved.text
    assert moved.json()["request_id"] == booking["request_id"]
    request = client.get(f"/requests/{booking['request_id']}", headers=w.requester).json()
    assert request["status"] == "confirmed"
    outside = client.patch(url, json={"start": at(day, 16)}, headers=w.requester)
    assert outside.status_code == 400 and outside.json()["field"] == "start"
    other = client.patch(url, json={"resource_id": str(w.device)}, headers=w.requester)
    assert other.status_code == 409 and other.json()["code"] == "request_booking"
    assert holds(world, booking["id"])[-1] == ("pending", 2 * EXPERT_RATE)


def test_a_booking_of_a_request_served_together_does_not_move_alone(client, world):
    w = build(world)
    day = monday()
    bookings = _served(client, w, day, w.expert, w.device)
    assert len(bookings) == 2
    refused = client.patch(
        f"/bookings/{bookings[0]['id']}", json={"start": at(day, 13)}, headers=w.requester
    )
    assert refused.status_code == 409 and refused.json()["code"] == "request_booking"


def test_a_request_follows_its_moved_booking_back_to_approval(client, world):
    w = build(world, requires_approval=True)
    day = monday()
    (booking,) = _served(client, w, day, w.expert)
    url = f"/bookings/{booking['id']}"
    assert client.post(f"{url}/approve", json={}, headers=w.manager).status_code == 200
    request_url = f"/requests/{booking['request_id']}"
    assert client.get(request_url, headers=w.requester).json()["status"] == "confirmed"
    moved = client.patch(url, json={"start": at(day, 13)}, headers=w.requester)
    assert moved.status_code == 200 and moved.json()["status"] == "pending_approval"
    assert client.get(request_url, headers=w.requester).json()["status"] == "pending_approval"


# --- a device and its operator ----------------------------------------------------------------


def _sonar(world: Any, w: Lending) -> tuple[Any, Any]:
    """A device of the lender that needs an operator, and an expert who may operate it."""
    with world.session() as s:
        skill = catalog.create_skill(s, SYSTEM, SkillCreate(name="Sonar operation")).id
        kind = catalog.create_device_type(s, SYSTEM, DeviceTypeCreate(name="Sonar")).id
        sonar = catalog.create_device(
            s,
            SYSTEM,
            DeviceCreate(
                unit_id=w.lender, name="Sonar 1", device_type_id=kind,
                time_zone="Europe/Berlin", working_hours=None, operator_skill_id=skill,
                hourly_rate=1000,
            ),
        ).id
        operator = catalog.create_expert(
            s,
            SYSTEM,
            ExpertCreate(
                unit_id=w.lender, name="Lena Operator", time_zone="Europe/Berlin",
                working_hours=WEEKDAYS_9_TO_5, skills=[SkillLevel(skill_id=skill, level=2)],
                hourly_rate=5000,
            ),
        ).id
    return sonar, operator


def test_a_device_and_its_operator_move_together(client, world):
    w = build(world)
    sonar, operator = _sonar(world, w)
    day = monday()
    body = {"resource_id": str(sonar), "project_id": str(w.project), "operator_id": str(operator),
            "start": at(day, 10), "end": at(day, 12)}
    device = client.post("/bookings", json=body, headers=w.requester).json()
    (pair,) = client.get(
        f"/bookings?operator_for_id={device['id']}", headers=w.requester
    ).json()["items"]
    # the operator is busy at 14:00: moving there is refused for both, nothing changes
    book(client, w, at(day, 14), at(day, 15), operator)
    busy = client.patch(f"/bookings/{device['id']}", json={"start": at(day, 14)},
                        headers=w.requester)
    assert busy.status_code == 409 and busy.json()["code"] == "overlap", busy.text
    assert client.get(f"/bookings/{device['id']}", headers=w.requester).json()["sequence"] == (
        device["sequence"]
    )
    moved = client.patch(f"/bookings/{pair['id']}", json={"start": at(day, 11)},
                         headers=w.requester)
    assert moved.status_code == 200, moved.text
    both = [client.get(f"/bookings/{b['id']}", headers=w.requester).json() for b in (device, pair)]
    assert {(b["start"], b["end"]) for b in both} == {(moved.json()["start"], moved.json()["end"])}
    assert [b["sequence"] for b in both] == [device["sequence"] + 1, pair["sequence"] + 1]
    assert holds(world, device["id"])[-1] == ("pending", 2 * 1000)
    assert holds(world, pair["id"])[-1] == ("pending", 2 * 5000)
    other = client.patch(f"/bookings/{device['id']}", json={"resource_id": str(w.device)},
                         headers=w.requester)
    assert other.status_code == 409 and other.json()["code"] == "paired_booking"


def test_a_move_the_project_cannot_afford_is_refused_whole(client, world):
    w = build(world, funds=2 * EXPERT_RATE)
    day = monday()
    booked = book(client, w, at(day, 10), at(day, 12))
    longer = client.patch(f"/bookings/{booked['id']}", json={"end": at(day, 13)},
                          headers=w.requester)
    assert longer.status_code == 409 and longer.json()["code"] == "budget_short", longer.text
    now = client.get(f"/bookings/{booked['id']}", headers=w.requester).json()
    assert (now["end"], now["sequence"]) == (booked["end"], booked["sequence"])
    assert holds(world, booked["id"]) == [("pending", 2 * EXPERT_RATE)]
