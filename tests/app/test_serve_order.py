"""Serving a request at once locks its resources in resource id order, as an apply does:
two serves of requests naming the same two experts in opposite orders, beside a direct
booking of one of them, all succeed, released together by a barrier (a deadlock would be a
503, a bug a 500). Real threads on each engine's real locks (issue 13)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import pytest
from litestar.testing import TestClient

from tests.app.booking_world import Lending, build
from tests.app.test_apply_order import _live, _second_expert, _together

TRIALS = 4
MONDAY = datetime(2027, 3, 1, tzinfo=UTC)


def _both(client: TestClient[Any], w: Lending, first: Any, second: Any, start: datetime) -> str:
    """An open request for two named experts at once, in this order, within two hours."""
    body = {
        "project_id": str(w.project), "title": "pair", "duration_minutes": 60, "priority": 3,
        "window_start": start.isoformat(), "window_end": (start + timedelta(hours=2)).isoformat(),
        "requirements": [
            {"kind": "resource", "resource_id": str(first)},
            {"kind": "resource", "resource_id": str(second)},
        ],
    }
    answer = client.post("/requests", json=body, headers=w.requester)
    assert answer.status_code == 201, answer.text
    return str(answer.json()["id"])


@pytest.mark.slow
def test_crossed_serves_and_a_booking_never_deadlock(client: TestClient[Any], world: Any) -> None:
    w = build(world)
    x, y = w.expert, _second_expert(world, w)
    for trial in range(TRIALS):
        day = MONDAY + timedelta(days=trial)
        one = _both(client, w, x, y, day + timedelta(hours=8))  # x, then y
        two = _both(client, w, y, x, day + timedelta(hours=10))  # y, then x
        direct = {"resource_id": str(y), "project_id": str(w.project),
                  "start": (day + timedelta(hours=13)).isoformat(),
                  "end": (day + timedelta(hours=14)).isoformat()}
        answers = _together([
            partial(client.post, f"/requests/{one}/serve", headers=w.requester),
            partial(client.post, f"/requests/{two}/serve", headers=w.requester),
            partial(client.post, "/bookings", json=direct, headers=w.requester),
        ])
        assert [a.status_code for a in answers] == [200, 200, 201], [a.text for a in answers]
        served = [{b["resource_id"] for b in a.json()["bookings"]} for a in answers[:2]]
        assert served == [{str(x), str(y)}, {str(x), str(y)}]
    assert _live(world) == 5 * TRIALS
