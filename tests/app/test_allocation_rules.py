"""One rule set: what a run plans, apply books, at the prices the ledger holds (issue 9).

Each test reproduces one finding where the optimizer's plan disagreed with the booking
engine; the world is tests/app/booking_world.py (lender L lends to borrower B).
"""

from __future__ import annotations

import re

import pytest

from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.catalog import services as catalog
from app.catalog.schemas import ExpertCreate, SkillLevel
from tests.app.booking_world import WEEKDAYS_9_TO_5, build
from tests.app.test_allocation import _wait

DAY = {"horizon_start": "2027-03-01T00:00:00Z", "horizon_end": "2027-03-02T00:00:00Z"}
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture
def settings(settings):
    """Runs are solved by the app's in-process worker on both engines."""
    return settings.model_copy(update={"jobs_in_process": True})


def _run(client, headers, *, emergency=False, horizon=DAY, time_limit=3):
    started = client.post(
        "/allocation-runs",
        json={**horizon, "time_limit_s": time_limit, "emergency": emergency},
        headers=headers,
    )
    assert started.status_code == 202, started.text
    run = _wait(client, started.json()["id"], headers)
    assert run["status"] == "done", run
    return run


def _apply(client, run, headers):
    answer = client.post(f"/allocation-runs/{run['id']}/apply", headers=headers)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["apply_report"]


def _ask(client, w, title, minutes, requirement, window, **extra):
    body = {"project_id": str(w.project), "title": title, "duration_minutes": minutes,
            "priority": 3, **window, "requirements": [requirement], **extra}
    answer = client.post("/requests", json=body, headers=w.requester)
    assert answer.status_code == 201, answer.text
    return answer.json()["id"]


def _expert(world, unit, name, skill, *, level, rate):
    """Another expert, 9 to 5 in Berlin, with ``skill`` at ``level``."""
    with world.session() as s:
        return catalog.create_expert(s, SYSTEM, ExpertCreate(
            unit_id=unit, name=name, time_zone="Europe/Berlin", working_hours=WEEKDAYS_9_TO_5,
            skills=[SkillLevel(skill_id=skill, level=level)], hourly_rate=rate)).id


def _bookings(client, headers, request_id):
    return client.get(f"/bookings?request_id={request_id}", headers=headers).json()["items"]


def test_device_buffers_are_planned_as_the_booking_engine_checks_them(client, world):
    # Finding 1: a drone with 15 min set-up and tear-down, two 4 h requests in a 10 h
    # window that fit back to back only without the buffers.
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    window = {"window_start": "2027-03-01T06:00:00Z", "window_end": "2027-03-01T14:30:00Z"}
    drone = {"kind": "device_type", "device_type_id": str(w.device_type)}
    first = _ask(client, w, "survey north", 240, drone, window)
    second = _ask(client, w, "survey south", 240, drone, window)
    run = _run(client, lead)
    report = _apply(client, run, lead)
    assert report["refused"] == []
    planned = {a["request_id"] for a in run["result"]["assignments"]}
    assert planned == {first, second}
    spans = sorted(
        (b["start"], b["end"]) for r in (first, second) for b in _bookings(client, lead, r)
    )
    # Tear-down of the first (15 min) and set-up of the second (15 min) lie between them.
    from datetime import datetime
    gap = datetime.fromisoformat(spans[1][0]) - datetime.fromisoformat(spans[0][1])
    assert gap.total_seconds() >= 30 * 60


def test_buffers_leave_no_room_so_one_request_is_left_out(client, world):
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    window = {"window_start": "2027-03-01T06:00:00Z", "window_end": "2027-03-01T14:00:00Z"}
    drone = {"kind": "device_type", "device_type_id": str(w.device_type)}
    _ask(client, w, "survey north", 240, drone, window)
    _ask(client, w, "survey south", 240, drone, window)
    run = _run(client, lead)
    assert len(run["result"]["assignments"]) == 1
    report = _apply(client, run, lead)
    assert report["refused"] == []


def test_own_unit_expert_costs_nothing_and_needs_no_money(client, world):
    # Finding 2: a unit's own expert on a project with no money is planned (and free).
    w = build(world, funds=0)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    own = _expert(world, w.borrower, "Oskar Own", w.skill, level=2, rate=6500)
    window = {"window_start": "2027-03-01T08:00:00Z", "window_end": "2027-03-01T16:00:00Z"}
    request = _ask(client, w, "own work", 60,
                   {"kind": "skill", "skill_id": str(w.skill), "min_level": 2}, window)
    run = _run(client, lead)
    [assignment] = run["result"]["assignments"]
    assert assignment["request_id"] == request
    assert assignment["resource_ids"] == [str(own)]
    assert assignment["cost"] == 0
    assert _apply(client, run, lead)["refused"] == []


def test_loan_is_planned_at_the_rate_card_price_the_ledger_holds(client, world):
    # Finding 2: a drone lent under a 7500/h rate card is planned at 7500/h, not 2000/h.
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    card = [{"target": "device_type", "target_id": str(w.device_type), "hourly_rate": 7500}]
    changed = client.patch(f"/agreements/{w.agreement}", json={"rate_card": card},
                           headers=world.user("admin", "L", Role.ADMIN))
    assert changed.status_code == 200, changed.text
    window = {"window_start": "2027-03-01T08:00:00Z", "window_end": "2027-03-01T16:00:00Z"}
    request = _ask(client, w, "survey", 240,
                   {"kind": "device_type", "device_type_id": str(w.device_type)}, window)
    run = _run(client, lead)
    [assignment] = run["result"]["assignments"]
    assert assignment["cost"] == 4 * 7500
    assert _apply(client, run, lead)["refused"] == []
    [booking] = _bookings(client, lead, request)
    confirmed = client.post(f"/bookings/{booking['id']}/confirm", json={"reason": "ok"},
                            headers=w.requester)
    assert confirmed.status_code == 200, confirmed.text
    statement = client.get(f"/projects/{w.project}/funds/statement", headers=w.requester).json()
    assert statement["held"] == assignment["cost"]


def test_lending_cap_counts_the_calendar_month_not_the_horizon(client, world):
    # Finding 3: 10 % of March's working time is ~18 h; a 4 h loan on a one-day horizon
    # fits the month (a horizon-prorated cap would have allowed 0.8 h).
    w = build(world, lending_cap_bp=1000)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    window = {"window_start": "2027-03-01T08:00:00Z", "window_end": "2027-03-01T16:00:00Z"}
    request = _ask(client, w, "hydrology", 240,
                   {"kind": "skill", "skill_id": str(w.skill), "min_level": 3}, window)
    run = _run(client, lead)
    assert [a["request_id"] for a in run["result"]["assignments"]] == [request]
    assert _apply(client, run, lead)["refused"] == []


def test_lending_cap_used_up_earlier_in_the_month_is_refused_with_the_month(client, world):
    # 1 % of March's working time is 1.84 h: a 2 h loan can never fit, whatever the horizon.
    w = build(world, lending_cap_bp=100)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    window = {"window_start": "2027-03-01T08:00:00Z", "window_end": "2027-03-01T16:00:00Z"}
    request = _ask(client, w, "hydrology", 120,
                   {"kind": "skill", "skill_id": str(w.skill), "min_level": 3}, window)
    run = _run(client, lead)
    [left] = run["result"]["unallocated"]
    assert left["request_id"] == request
    [reason] = left["reasons"]
    assert reason["code"] == "lending_cap", left
    assert reason["window"]["local_start"].startswith("Mon 01 Mar 2027")
    direct = client.post("/bookings", json={
        "resource_id": str(w.expert), "project_id": str(w.project),
        "start": "2027-03-01T09:00:00Z", "end": "2027-03-01T11:00:00Z"}, headers=w.requester)
    assert direct.status_code == 409 and direct.json()["code"] == "lending_cap"


def test_replan_with_no_change_keeps_every_booking(client, world):
    # Finding 5: applying a run that moves nothing cancels nothing and makes no new ids.
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    window = {"window_start": "2027-03-01T08:00:00Z", "window_end": "2027-03-01T16:00:00Z"}
    requests = [
        _ask(client, w, f"task {i}", 90,
             {"kind": "skill", "skill_id": str(w.skill), "min_level": 3}, window)
        for i in range(3)
    ]
    first = _apply(client, _run(client, lead), lead)
    assert first["refused"] == []
    before = {b["id"]: b for r in requests for b in _bookings(client, lead, r)}
    second = _apply(client, _run(client, lead), lead)
    assert second["refused"] == [] and second["released"] == []
    after = {b["id"]: b for r in requests for b in _bookings(client, lead, r)}
    assert set(after) == set(before)
    assert all(after[i]["status"] == "tentative" for i in after)
    assert {i: b["sequence"] for i, b in after.items()} == {
        i: b["sequence"] for i, b in before.items()
    }


def test_emergency_prefers_a_free_expert_and_reopens_a_displaced_request_whole(client, world):
    # Finding 4 and the demo's emergency: a free expert is taken before anyone is displaced;
    # when displacing is the only way, the displaced request returns to open whole.
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    window = {"window_start": "2027-03-01T08:00:00Z", "window_end": "2027-03-01T16:00:00Z"}
    _expert(world, w.lender, "Sam Second", w.skill, level=4, rate=9000)
    skill = {"kind": "skill", "skill_id": str(w.skill), "min_level": 3}
    pair = _ask(client, w, "pair work", 8 * 60, {**skill, "quantity": 2}, window)
    assert _apply(client, _run(client, lead), lead)["refused"] == []
    assert len(_bookings(client, lead, pair)) == 2
    urgent = _ask(client, w, "flood alert", 120, skill, window, emergency=True, priority=5)
    run = _run(client, lead, emergency=True)
    assert [a["request_id"] for a in run["result"]["assignments"]] == [urgent]
    report = _apply(client, run, lead)
    assert report["refused"] == []
    assert {d["request_id"] for d in report["displaced"]} == {pair}
    reopened = client.get(f"/requests/{pair}", headers=lead).json()
    assert reopened["status"] == "open"
    assert reopened["reopen_code"] == "displaced_by"
    assert all(b["status"] == "cancelled" for b in _bookings(client, lead, pair))


def test_lunch_break_is_explained_as_working_hours_not_capacity(client, world):
    # Finding 6: a 4 h request in 09:00–17:00 Berlin for the only expert, who lunches 12–13.
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    admin = world.user("admin", "L", Role.ADMIN)
    split = {d: [["09:00", "12:00"], ["13:00", "17:00"]] for d in ("mon", "tue", "wed")}
    changed = client.patch(f"/experts/{w.expert}", json={"working_hours": split}, headers=admin)
    assert changed.status_code == 200, changed.text
    window = {"window_start": "2027-03-01T08:00:00Z", "window_end": "2027-03-01T11:30:00Z"}
    request = _ask(client, w, "long analysis", 210,
                   {"kind": "skill", "skill_id": str(w.skill), "min_level": 3}, window)
    run = _run(client, lead)
    [left] = run["result"]["unallocated"]
    assert left["request_id"] == request
    codes = [r["code"] for r in left["reasons"]]
    assert codes == ["outside_working_hours"], left
    reason = left["reasons"][0]
    assert reason["resources"] == [
        {"id": str(w.expert), "name": "Eva Expert", "time_zone": "Europe/Berlin"}
    ]
    assert not UUID_RE.search(reason["message"]) and "[" not in reason["message"]
    assert "Eva Expert" in reason["message"]


def test_a_device_that_needs_an_operator_is_planned_with_one(client, world):
    # Finding 7: the drone needs a pilot; the plan books a qualified expert beside it.
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    admin = world.user("admin", "L", Role.ADMIN)
    changed = client.patch(f"/devices/{w.device}", json={"operator_skill_id": str(w.skill)},
                           headers=admin)
    assert changed.status_code == 200, changed.text
    window = {"window_start": "2027-03-01T08:00:00Z", "window_end": "2027-03-01T16:00:00Z"}
    request = _ask(client, w, "survey", 120,
                   {"kind": "device_type", "device_type_id": str(w.device_type)}, window)
    run = _run(client, lead)
    [assignment] = run["result"]["assignments"]
    assert sorted(assignment["resource_ids"]) == sorted([str(w.device), str(w.expert)])
    assert _apply(client, run, lead)["refused"] == []
    bookings = {b["resource_id"]: b for b in _bookings(client, lead, request)}
    assert set(bookings) == {str(w.device), str(w.expert)}
    pilot = bookings[str(w.expert)]
    assert pilot.get("operator_for_id") in (None, bookings[str(w.device)]["id"])



def test_emergency_takes_a_free_expert_before_displacing_anyone(client, world):
    # The demo's finding: an emergency displaced an ordinary booking although others were free.
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    window = {"window_start": "2027-03-01T08:00:00Z", "window_end": "2027-03-01T16:00:00Z"}
    free = _expert(world, w.lender, "Fay Free", w.skill, level=4, rate=9000)
    ordinary = client.post("/bookings", json={
        "resource_id": str(w.expert), "project_id": str(w.project),
        "start": "2027-03-01T09:00:00+01:00", "end": "2027-03-01T17:00:00+01:00"},
        headers=w.requester)
    assert ordinary.status_code == 201, ordinary.text
    skill = {"kind": "skill", "skill_id": str(w.skill), "min_level": 3}
    urgent = _ask(client, w, "flood alert", 120, skill, window, emergency=True, priority=5)
    run = _run(client, lead, emergency=True)
    [assignment] = run["result"]["assignments"]
    assert assignment["request_id"] == urgent
    assert assignment["resource_ids"] == [str(free)]
    report = _apply(client, run, lead)
    assert report["refused"] == [] and report["displaced"] == []
    kept = client.get(f"/bookings/{ordinary.json()['id']}", headers=w.requester).json()
    assert kept["status"] == "confirmed"


def test_a_moved_booking_keeps_its_id_and_its_sequence_rises(client, world):
    # Finding 5: a re-plan that must move a booking moves it in place (same id and feed UID).
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    skill = {"kind": "skill", "skill_id": str(w.skill), "min_level": 3}
    day = {"window_start": "2027-03-01T08:00:00Z", "window_end": "2027-03-01T16:00:00Z"}
    flexible = _ask(client, w, "flexible", 240, skill, day, priority=1)
    assert _apply(client, _run(client, lead), lead)["refused"] == []
    [before] = _bookings(client, lead, flexible)
    assert before["start"].startswith("2027-03-01T08:00")  # earliest completion first
    morning = {"window_start": "2027-03-01T08:00:00Z", "window_end": "2027-03-01T12:00:00Z"}
    _ask(client, w, "urgent morning", 240, skill, morning, priority=5)
    report = _apply(client, _run(client, lead), lead)
    assert report["refused"] == [] and report["released"] == []
    [after] = _bookings(client, lead, flexible)
    assert after["id"] == before["id"]
    assert after["start"].startswith("2027-03-01T12:00")
    assert after["sequence"] == before["sequence"] + 1
