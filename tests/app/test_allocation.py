"""Allocation runs through the API: background solve, progress, explanations, apply."""

from __future__ import annotations

import time

import pytest

from app.auth.models import Role
from tests.app.booking_world import build

WINDOW = {"window_start": "2027-03-01T08:00:00Z", "window_end": "2027-03-01T16:00:00Z"}


@pytest.fixture
def settings(settings):
    """Runs are solved by the app's in-process worker on both engines (the procrastinate
    worker of PostgreSQL is tested in tests/app/test_jobs_worker.py)."""
    return settings.model_copy(update={"jobs_in_process": True})


def _wait(client, run_id, headers, timeout=90.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/allocation-runs/{run_id}", headers=headers).json()
        if run["status"] in ("done", "failed"):
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not finish: {run}")


def _request(client, w, title, hours, priority=3, skill_level=3):
    body = {"project_id": str(w.project), "title": title, "duration_minutes": 60 * hours,
            "priority": priority, **WINDOW,
            "requirements": [{"kind": "skill", "skill_id": str(w.skill),
                              "min_level": skill_level}]}
    r = client.post("/requests", json=body, headers=w.requester)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_run_allocates_by_priority_explains_and_applies(client, world):
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    # One expert works 8 h that day: 5 h + 4 h cannot both fit; the priority-5 one wins.
    low = _request(client, w, "low", 4, priority=1)
    high = _request(client, w, "high", 5, priority=5)
    impossible = _request(client, w, "too skilled", 1, skill_level=5)
    started = client.post("/allocation-runs", json={
        "horizon_start": "2027-03-01T00:00:00Z", "horizon_end": "2027-03-03T00:00:00Z",
        "time_limit_s": 5}, headers=lead)
    assert started.status_code == 202, started.text
    run = _wait(client, started.json()["id"], lead)
    assert run["status"] == "done", run["error"]
    result = run["result"]
    assert result["checked"] is True
    assigned = {a["request_id"] for a in result["assignments"]}
    assert high in assigned and low not in assigned
    reasons = {u["request_id"]: {r["code"] for r in u["reasons"]} for u in result["unallocated"]}
    assert "no_eligible_resource" in reasons[impossible]
    assert reasons[low] & {"no_capacity", "not_selected"}
    assert run["progress"] is not None

    applied = client.post(f"/allocation-runs/{run['id']}/apply", headers=lead)
    assert applied.status_code == 200, applied.text
    report = applied.json()["apply_report"]
    assert [a["request_id"] for a in report["applied"]] == [high]
    bookings = client.get("/bookings", params={"request_id": high}, headers=w.requester).json()
    assert [b["status"] for b in bookings["items"]] == ["tentative"]
    assert client.get(f"/requests/{high}", headers=w.requester).json()["status"] == "allocated"
    again = client.post(f"/allocation-runs/{run['id']}/apply", headers=lead)
    assert again.status_code == 409


def test_apply_rechecks_conflicts_made_since_the_snapshot(client, world):
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    req = _request(client, w, "audit", 8)
    started = client.post("/allocation-runs", json={
        "horizon_start": "2027-03-01T00:00:00Z", "horizon_end": "2027-03-02T00:00:00Z",
        "time_limit_s": 3}, headers=lead).json()
    run = _wait(client, started["id"], lead)
    assert [a["request_id"] for a in run["result"]["assignments"]] == [req]
    # Someone books the expert directly before the plan is applied.
    direct = client.post("/bookings", json={
        "resource_id": str(w.expert), "project_id": str(w.project),
        "start": "2027-03-01T12:00:00+01:00", "end": "2027-03-01T13:00:00+01:00"},
        headers=w.requester)
    assert direct.status_code == 201
    report = client.post(f"/allocation-runs/{run['id']}/apply", headers=lead).json()["apply_report"]
    assert report["applied"] == []
    assert report["refused"][0]["code"] == "overlap"


def test_runs_are_private_to_their_unit_and_need_a_role(client, world):
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    assert client.post("/allocation-runs", json={
        "horizon_start": "2027-03-01T00:00:00Z", "horizon_end": "2027-03-02T00:00:00Z"},
        headers=w.requester).status_code == 403
    run = client.post("/allocation-runs", json={
        "horizon_start": "2027-03-01T00:00:00Z", "horizon_end": "2027-03-02T00:00:00Z",
        "time_limit_s": 1}, headers=lead).json()
    assert client.get(f"/allocation-runs/{run['id']}", headers=w.outsider).status_code == 404
    _wait(client, run["id"], lead)



def test_emergency_run_displaces_ordinary_bookings_and_lists_them(client, world):
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    ordinary = client.post("/bookings", json={
        "resource_id": str(w.expert), "project_id": str(w.project),
        "start": "2027-03-01T09:00:00+01:00", "end": "2027-03-01T17:00:00+01:00"},
        headers=w.requester).json()
    urgent = client.post("/requests", json={
        "project_id": str(w.project), "title": "flood alert", "duration_minutes": 120,
        "priority": 5, "emergency": True, **WINDOW,
        "requirements": [{"kind": "skill", "skill_id": str(w.skill), "min_level": 3}]},
        headers=w.requester).json()
    started = client.post("/allocation-runs", json={
        "horizon_start": "2027-03-01T00:00:00Z", "horizon_end": "2027-03-02T00:00:00Z",
        "time_limit_s": 3, "emergency": True}, headers=lead).json()
    run = _wait(client, started["id"], lead)
    assert [a["request_id"] for a in run["result"]["assignments"]] == [urgent["id"]]
    report = client.post(f"/allocation-runs/{run['id']}/apply", headers=lead).json()
    report = report["apply_report"]
    assert [a["request_id"] for a in report["applied"]] == [urgent["id"]]
    assert [d["booking_id"] for d in report["displaced"]] == [ordinary["id"]]
    gone = client.get(f"/bookings/{ordinary['id']}", headers=w.requester).json()
    assert gone["status"] == "cancelled"
    assert "emergency" in gone["status_reason"]


def test_runs_a_dead_worker_held_stop_counting_against_the_quota(client, world, app):
    from datetime import timedelta

    from app.allocation.models import AllocationRun, RunStatus
    from app.base import utcnow
    from tests.app.conftest import session_of

    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    horizon = {"horizon_start": "2027-03-01T00:00:00Z", "horizon_end": "2027-03-02T00:00:00Z"}
    with session_of(app) as s:
        for _ in range(4):  # four runs a worker on another host held when it died, long ago
            s.add(AllocationRun(
                created_by=world.users["planner"], unit_id=w.borrower,
                status=RunStatus.RUNNING.value, horizon_start=utcnow(), horizon_end=utcnow(),
                slot_minutes=15, time_limit_s=10, project_ids=[], unit_ids=[], emergency=False,
                attempts=3, owner="elsewhere:4242:deadbeef",
                heartbeat_at=utcnow() - timedelta(hours=1)))
        s.commit()
    started = client.post("/allocation-runs", json={**horizon, "time_limit_s": 1}, headers=lead)
    assert started.status_code == 202, started.text
    failed = client.get("/allocation-runs?status=failed", headers=lead).json()
    assert failed["total"] == 4
    assert all("gave up after 3 attempts" in r["error"] for r in failed["items"])
    assert client.get("/allocation-runs?status=running", headers=lead).json()["total"] <= 1
