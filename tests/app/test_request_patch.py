"""PATCH /requests/{id}: an open request changes under the rules of a new one (issue 15)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.audit.models import AuditEvent
from tests.app.booking_world import Lending, build

WINDOW = {"window_start": "2030-03-04T08:00:00+00:00", "window_end": "2030-03-08T16:00:00+00:00"}


def ask(client: Any, w: Lending) -> dict[str, Any]:
    body = {
        "project_id": str(w.project),
        "title": "Survey",
        "duration_minutes": 120,
        **WINDOW,
        "requirements": [{"kind": "skill", "skill_id": str(w.skill), "min_level": 3}],
    }
    answer = client.post("/requests", json=body, headers=w.requester)
    assert answer.status_code == 201, answer.text
    result: dict[str, Any] = answer.json()
    return result


def test_an_open_request_changes_and_the_audit_keeps_before_and_after(client, world):
    w = build(world)
    asked = ask(client, w)
    changed = client.patch(
        f"/requests/{asked['id']}",
        json={
            "priority": 5,
            "notes": "bring boots",
            "duration_minutes": 180,
            "window_end": "2030-03-06T16:00:00Z",
        },
        headers=w.requester,
    )
    assert changed.status_code == 200, changed.text
    after = changed.json()
    assert (after["priority"], after["notes"], after["duration_minutes"]) == (5, "bring boots", 180)
    assert after["window_end"].startswith("2030-03-06T16:00")
    assert after["title"] == "Survey" and after["status"] == "open"
    with world.session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "request.edit")).one()
        assert event.before is not None and event.after is not None
        assert (event.before["priority"], event.after["priority"]) == (3, 5)


def test_bad_values_are_400_naming_the_field_and_change_nothing(client, world):
    w = build(world)
    asked = ask(client, w)
    url = f"/requests/{asked['id']}"
    for body, field in (
        ({"priority": 9}, "priority"),
        ({"duration_minutes": 1}, "duration_minutes"),
        ({"title": ""}, "title"),
        ({"window_start": "2030-03-04T08:00:00"}, "window_start"),
        ({"window_end": "2030-03-04T07:00:00Z"}, "window_end"),
        ({"duration_minutes": 60 * 24 * 5}, "window_end"),
        ({"window_start": "2019-01-01T08:00:00Z"}, "start"),
    ):
        answer = client.patch(url, json=body, headers=w.requester)
        assert answer.status_code == 400, (body, answer.text)
        assert field in answer.text, (body, answer.text)
    assert client.patch(url, json={}, headers=w.requester).status_code == 400
    now = client.get(url, headers=w.requester).json()
    assert {k: now[k] for k in asked if k != "updated_at"} == {
        k: asked[k] for k in asked if k != "updated_at"
    }


def test_only_an_open_request_changes_and_only_by_its_unit(client, world):
    w = build(world)
    asked = ask(client, w)
    url = f"/requests/{asked['id']}"
    assert client.patch(url, json={"priority": 4}, headers=w.outsider).status_code == 404
    assert client.patch(url, json={"priority": 4}, headers=w.manager).status_code == 403
    served = client.post(f"{url}/serve", headers=w.requester)
    assert served.status_code == 200, served.text
    late = client.patch(url, json={"priority": 4}, headers=w.requester)
    assert late.status_code == 409 and late.json()["code"] == "wrong_status"
