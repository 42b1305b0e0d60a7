"""The demo as a newcomer tries it: plan next week, apply, an emergency run, apply (issue 9)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest

from app.db import make_session_factory, session_scope
from app.seed import seed_demo
from tests.app.test_allocation_rules import _apply, _run

LIVE = {"tentative", "pending_approval", "confirmed", "completed"}


@pytest.fixture
def settings(settings):
    """Runs are solved by the app's in-process worker on both engines."""
    return settings.model_copy(update={"jobs_in_process": True})


def _week() -> dict[str, str]:
    today = datetime.now(UTC).date()
    monday = today + timedelta(days=7 - today.weekday())
    start = datetime.combine(monday, time(0), UTC)
    return {"horizon_start": start.isoformat(), "horizon_end": (start + timedelta(days=7)).isoformat()}


def _requests(client, headers):
    return client.get("/requests?limit=200", headers=headers).json()["items"]


def _live(client, headers, request_id):
    items = client.get(f"/bookings?request_id={request_id}&limit=200", headers=headers).json()
    return [b for b in items["items"] if b["status"] in LIVE]


def test_demo_week_then_emergency_applies_as_planned(app, client):
    with session_scope(make_session_factory(app.state.engine)) as session:
        demo = seed_demo(session)
    admin = {"Authorization": f"Bearer {demo.admin_token}"}
    week = _week()

    run = _run(client, admin, horizon=week, time_limit=5)
    # Nine of the ten: "Sediment GIS mapping" has no agreement to borrow GIS analysts.
    assert len(run["result"]["assignments"]) >= 8
    report = _apply(client, run, admin)
    assert report["refused"] == []
    served = {a["request_id"] for a in report["applied"]}

    urgent = _run(client, admin, horizon=week, time_limit=5, emergency=True)
    report = _apply(client, urgent, admin)
    assert report["refused"] == []
    assert [a["request_id"] for a in report["applied"]] == [
        a["request_id"] for a in urgent["result"]["assignments"]
    ]

    for request in _requests(client, admin):
        live = _live(client, admin, request["id"])
        if request["status"] == "open":
            assert live == [], request  # a displaced request keeps nothing
        elif request["status"] == "allocated":
            wanted = sum(q["quantity"] for q in request["requirements"])
            assert len(live) >= wanted, request  # never half-allocated
    displaced = {d["request_id"] for d in report["displaced"] if d["request_id"]}
    for request_id in displaced:
        again = client.get(f"/requests/{request_id}", headers=admin).json()
        assert again["status"] == "open" and again["reopen_code"] == "displaced_by"
    assert served  # the first run booked something the emergency could meet

    # Re-planning the same week again changes nothing that stayed.
    before = {b["id"] for q in _requests(client, admin) for b in _live(client, admin, q["id"])}
    again = _apply(client, _run(client, admin, horizon=week, time_limit=5), admin)
    assert again["refused"] == []
    after = {b["id"] for q in _requests(client, admin) for b in _live(client, admin, q["id"])}
    assert before <= after
