"""Auditors read everything and write nothing but their own feed subscriptions (issue 12).

The walk covers every write operation the OpenAPI document lists, so a route added later
is covered without touching this test.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from app.auth.models import Role
from app.auth.policy import AUDITOR_WRITES
from tests.app.conftest import World

_INTEGER_PARAMS = {"entry_id", "pledge_id"}


def _fill(template: str, world: World) -> str:
    """The path with each parameter replaced: ids that exist where the world has them."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name in _INTEGER_PARAMS:
            return "1"
        if name == "unit_id":
            return str(world.units["A"])
        if name == "user_id":
            return str(world.users["auditor"])
        return str(uuid.uuid4())

    return re.sub(r"\{(\w+)\}", value, template)


def test_every_write_but_own_feeds_is_refused(client: Any, world: World) -> None:
    auditor = world.user("auditor", "A", Role.AUDITOR)
    document = client.get("/schema/openapi.json").json()
    walked = 0
    for template, operations in document["paths"].items():
        for method in operations:
            if method.upper() in ("GET", "HEAD", "OPTIONS", "TRACE"):
                continue
            if (method.upper(), template) in AUDITOR_WRITES:
                continue
            r = client.request(method, _fill(template, world), json={}, headers=auditor)
            assert r.status_code == 403, f"{method.upper()} {template}: {r.status_code} {r.text}"
            walked += 1
    # units, users, api keys, catalog, agreements, projects, bookings, funds, feeds, runs…
    assert walked > 50
    assert ("POST", "/users/{user_id}/api-keys") not in AUDITOR_WRITES


def test_auditor_may_keep_own_feeds_and_read(client: Any, world: World) -> None:
    auditor = world.user("auditor", "A", Role.AUDITOR)
    world.user("manager", "B", Role.UNIT_MANAGER)
    r = client.post(
        "/feed-subscriptions",
        json={"kind": "unit", "target_id": str(world.units["B"])},
        headers=auditor,
    )
    assert r.status_code == 201, r.text
    feed = r.json()["id"]
    r = client.post(f"/feed-subscriptions/{feed}/rotate", headers=auditor)
    assert r.status_code == 200, r.text
    r = client.post(f"/feed-subscriptions/{feed}/revoke", json={"reason": "done"}, headers=auditor)
    assert r.status_code == 200, r.text
    # reading stays open: every unit, the audit log
    assert client.get("/units", headers=auditor).status_code == 200
    assert client.get("/audit-events", headers=auditor).status_code == 200


def test_auditor_cannot_issue_itself_a_key(client: Any, world: World) -> None:
    auditor = world.user("auditor", "A", Role.AUDITOR)
    r = client.post(
        f"/users/{world.users['auditor']}/api-keys", json={"name": "laptop"}, headers=auditor
    )
    assert r.status_code == 403 and "auditor" in r.json()["detail"]


def test_auditor_keeps_their_own_inbox(client: Any, world: World) -> None:
    auditor = world.user("auditor", "A", Role.AUDITOR)
    put = client.put(
        "/me/notification-preferences",
        json={"channels": {"run_done": ["inbox"]}, "email_digest": False},
        headers=auditor,
    )
    assert put.status_code == 200, put.text
    assert client.post("/me/notifications/read-all", headers=auditor).status_code in (200, 204)
    one = client.post(f"/me/notifications/{uuid.uuid4()}/read", headers=auditor)
    assert one.status_code == 404  # nobody's notification: not found, not forbidden
