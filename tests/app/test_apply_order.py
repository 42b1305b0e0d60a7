"""Applying runs takes its locks in one order (the run, resources by id, requests, bookings):
two applies whose plans book the same resources in opposite orders, beside a direct booking
of one of them, all succeed, released together by a barrier; two applies of one run book
it once (the second: 409 ``already_applied``). Real threads on each engine's real locks."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import func, select

from app.allocation.models import AllocationRun, RunStatus
from app.auth.actor import SYSTEM
from app.bookings.models import LIVE_STATUSES, Booking
from app.catalog import services as catalog
from app.catalog.schemas import ExpertCreate, SkillLevel
from tests.app.booking_world import WEEKDAYS_9_TO_5, Lending, build

TRIALS = 4
MONDAY = datetime(2027, 3, 1, tzinfo=UTC)


def _together(work: list[Callable[[], Any]]) -> list[Any]:
    """Run each piece of work in its own thread, all released at once by a barrier."""
    barrier = threading.Barrier(len(work))
    results: list[Any] = [None] * len(work)

    def run(i: int) -> None:
        barrier.wait()
        results[i] = work[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(work))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def _second_expert(world: Any, w: Lending) -> uuid.UUID:
    with world.session() as s:
        return catalog.create_expert(
            s,
            SYSTEM,
            ExpertCreate(
                unit_id=world.units["L"],
                name="Yan Expert",
                time_zone="Europe/Berlin",
                working_hours=WEEKDAYS_9_TO_5,
                skills=[SkillLevel(skill_id=w.skill, level=4)],
                hourly_rate=9000,
            ),
        ).id


def _request(client: TestClient[Any], w: Lending, day: datetime, title: str) -> str:
    body = {
        "project_id": str(w.project), "title": title, "duration_minutes": 60, "priority": 3,
        "window_start": (day + timedelta(hours=8)).isoformat(),
        "window_end": (day + timedelta(hours=15)).isoformat(),
        "requirements": [{"kind": "skill", "skill_id": str(w.skill), "min_level": 3}],
    }
    answer = client.post("/requests", json=body, headers=w.requester)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


def _done_run(world: Any, day: datetime, plan: list[tuple[str, uuid.UUID, int]]) -> str:
    """A done run whose plan books (request, resource, UTC hour of ``day``) in this order."""
    assignments = [
        {
            "request_id": request_id, "resource_ids": [str(resource)],
            "start": (day + timedelta(hours=hour)).isoformat(),
            "end": (day + timedelta(hours=hour + 1)).isoformat(),
            "needs_approval": False, "cost": 0,
        }
        for request_id, resource, hour in plan
    ]
    with world.session() as s:
        run = AllocationRun(
            created_by=world.users["lead"], unit_id=world.units["B"],
            status=RunStatus.DONE.value, horizon_start=day, horizon_end=day + timedelta(days=1),
            project_ids=[], unit_ids=[], result={"assignments": assignments, "unallocated": []},
            snapshot={"tentative": {}},
        )
        s.add(run)
        s.flush()
        return str(run.id)


def _live(world: Any) -> int:
    with world.session() as s:
        return int(s.scalar(select(func.count()).select_from(Booking).where(
            Booking.status.in_(LIVE_STATUSES))) or 0)


@pytest.mark.slow
def test_crossed_applies_and_a_booking_never_deadlock(client: TestClient[Any], world: Any) -> None:
    w = build(world)
    lead = world.headers("lead")
    x, y = w.expert, _second_expert(world, w)
    for trial in range(TRIALS):
        day = MONDAY + timedelta(days=trial)
        r1, r2, r3, r4 = (_request(client, w, day, f"t{trial}-{n}") for n in range(4))
        one = _done_run(world, day, [(r1, x, 8), (r2, y, 8)])  # x, then y
        two = _done_run(world, day, [(r3, y, 10), (r4, x, 10)])  # y, then x
        direct = {"resource_id": str(x), "project_id": str(w.project),
                  "start": (day + timedelta(hours=12)).isoformat(),
                  "end": (day + timedelta(hours=13)).isoformat()}
        answers = _together([
            partial(client.post, f"/allocation-runs/{one}/apply", headers=lead),
            partial(client.post, f"/allocation-runs/{two}/apply", headers=lead),
            partial(client.post, "/bookings", json=direct, headers=w.requester),
        ])
        assert [a.status_code for a in answers] == [200, 200, 201], [a.text for a in answers]
        for answer in answers[:2]:
            report = answer.json()["apply_report"]
            assert len(report["applied"]) == 2 and report["refused"] == [], report
    assert _live(world) == TRIALS * 5


@pytest.mark.slow
def test_two_applies_of_one_run_book_it_once(client: TestClient[Any], world: Any) -> None:
    w = build(world)
    lead = world.headers("lead")
    y = _second_expert(world, w)
    r1, r2 = (_request(client, w, MONDAY, f"once-{n}") for n in range(2))
    run = _done_run(world, MONDAY, [(r1, w.expert, 8), (r2, y, 9)])
    answers = _together(
        [lambda: client.post(f"/allocation-runs/{run}/apply", headers=lead)] * 2
    )
    assert sorted(a.status_code for a in answers) == [200, 409]
    refused = next(a for a in answers if a.status_code == 409).json()
    assert refused["code"] == "already_applied"
    assert _live(world) == 2
