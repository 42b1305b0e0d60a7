"""``GET /allocation-runs/{id}/events``: a live server's stream of a short run's progress
ends with the run ``done`` (SQLite: ``copool serve`` solves it; PostgreSQL: a ``copool
worker``), and is refused 404 to whoever may not read the run (issue 13)."""

from __future__ import annotations

import json
import uuid
from itertools import pairwise
from typing import Any

import httpx
import pytest

from app.auth.models import Role
from app.jobs.events import FIELDS
from tests.app.booking_world import build
from tests.app.test_jobs_worker import HORIZON, WEEK, Deployment, _first_worker, deployment

__all__ = ["deployment"]  # the fixture, shared with tests/app/test_jobs_worker.py

pytestmark = pytest.mark.slow


def stream(http: httpx.Client, path: str, headers: dict[str, str]) -> tuple[str, list[str]]:
    """The stream's content type and its lines, read until the server ends it."""
    with http.stream("GET", path, headers=headers, timeout=120) as answer:
        assert answer.status_code == 200, answer.read()
        return answer.headers["content-type"], list(answer.iter_lines())


def test_a_short_runs_event_stream_ends_with_done(
    deployment: Deployment, db_url: str, world: Any
) -> None:
    _, http = _first_worker(deployment, db_url)
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    for i in range(3):
        body = {
            "project_id": str(w.project), "title": f"r{i}", "duration_minutes": 60,
            "priority": 3, **WEEK,
            "requirements": [{"kind": "skill", "skill_id": str(w.skill), "min_level": 3}],
        }
        assert http.post("/requests", json=body, headers=w.requester).status_code == 201
    started = http.post("/allocation-runs", json={**HORIZON, "time_limit_s": 2}, headers=lead)
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]

    kind, lines = stream(http, f"/allocation-runs/{run_id}/events", lead)

    assert kind.startswith("text/event-stream")
    assert [line for line in lines if line.startswith("event:")] == [
        "event: progress" for line in lines if line.startswith("data:")
    ]
    events = [json.loads(line.removeprefix("data: ")) for line in lines if line.startswith("data:")]
    assert all(set(FIELDS) <= set(e) for e in events)
    assert all(a != b for a, b in pairwise(events))  # only changes
    assert events[-1]["status"] == "done", events
    assert events[-1]["placed"] == 3 and events[-1]["requests"] == 3
    assert {e["status"] for e in events[:-1]} <= {"queued", "running"}
    final = http.get(f"/allocation-runs/{run_id}", headers=lead).json()
    assert final["status"] == "done"
    # the stream of an ended run: its last state, then the end
    _, again = stream(http, f"/allocation-runs/{run_id}/events", lead)
    assert [json.loads(x.removeprefix("data: ")) for x in again if x.startswith("data:")] == [
        events[-1]
    ]
    for who, path in (
        (w.outsider, f"/allocation-runs/{run_id}/events"),  # another unit's run
        (lead, f"/allocation-runs/{uuid.uuid4()}/events"),
    ):
        assert http.get(path, headers=who).status_code == 404
