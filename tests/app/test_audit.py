"""The audit log: a row for every change, with before and after; append-only in the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.auth.models import Role
from tests.app.conftest import World, session_of


def _events(client: Any, headers: dict[str, str], **params: Any) -> list[dict[str, Any]]:
    r = client.get("/audit-events", params={"limit": 200, **params}, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()["items"]  # type: ignore[no-any-return]


def test_every_change_is_recorded(client: Any, world: World) -> None:
    admin = world.user("admin", "HQ", Role.ADMIN)
    auditor = world.user("auditor", "HQ", Role.AUDITOR)
    unit = client.post("/units", json={"name": "Board", "code": "BRD"}, headers=admin).json()
    client.patch(f"/units/{unit['id']}", json={"description": "new"}, headers=admin)
    client.post(f"/units/{unit['id']}/retire", json={"reason": "merged"}, headers=admin)
    client.post(f"/units/{unit['id']}/retire", json={"reason": "twice"}, headers=admin)
    rows = _events(client, auditor, object_id=unit["id"])
    assert [e["action"] for e in rows] == ["unit.retire", "unit.update", "unit.create"]
    retire, update, create = rows
    assert create["before"] is None and create["after"]["code"] == "BRD"
    assert (update["before"]["description"], update["after"]["description"]) == ("", "new")
    assert retire["before"]["retired_at"] is None and retire["after"]["retired_at"]
    assert retire["reason"] == "merged"
    for row in rows:
        assert row["actor_user_id"] == str(world.users["admin"])
        assert row["actor_unit_id"] == str(world.units["HQ"])
        assert row["object_type"] == "units" and row["unit_id"] == unit["id"]


def test_every_context_writes_audit_rows(client: Any, world: World) -> None:
    admin = world.user("admin", "HQ", Role.ADMIN)
    unit_a, unit_b = str(world.unit("A")), str(world.unit("B"))
    skill = client.post("/skills", json={"name": "GIS"}, headers=admin).json()
    dtype = client.post("/device-types", json={"name": "Drone"}, headers=admin).json()
    expert = client.post(
        "/experts",
        headers=admin,
        json={
            "unit_id": unit_a,
            "name": "E",
            "time_zone": "UTC",
            "working_hours": {"mon": [["09:00", "17:00"]]},
            "skills": [{"skill_id": skill["id"], "level": 3}],
        },
    ).json()
    client.patch(f"/experts/{expert['id']}", json={"skills": []}, headers=admin)
    device = client.post(
        "/devices",
        headers=admin,
        json={"unit_id": unit_a, "name": "D", "device_type_id": dtype["id"], "time_zone": "UTC"},
    ).json()
    period = client.post(
        f"/devices/{device['id']}/blackouts",
        headers=admin,
        json={"start": "2027-01-01T00:00:00Z", "end": "2027-01-02T00:00:00Z"},
    ).json()
    client.delete(f"/devices/{device['id']}/blackouts/{period['id']}", headers=admin)
    client.post(
        "/agreements",
        headers=admin,
        json={
            "lender_unit_id": unit_a,
            "borrower_unit_id": unit_b,
            "scope": "all",
            "valid_from": "2027-01-01",
        },
    )
    user = client.post(
        "/users",
        headers=admin,
        json={"unit_id": unit_a, "name": "U", "email": "u@a.org", "roles": ["project_lead"]},
    ).json()
    key = client.post(f"/users/{user['id']}/api-keys", json={}, headers=admin).json()
    client.post(f"/api-keys/{key['id']}/revoke", json={}, headers=admin)
    client.post(
        "/projects",
        headers=admin,
        json={
            "name": "P",
            "code": "P1",
            "lead_unit_id": unit_a,
            "lead_user_id": user["id"],
            "start_date": "2027-01-01",
            "end_date": "2027-06-30",
            "currency": "EUR",
            "shares": [{"unit_id": unit_a, "share_bp": 10000}],
        },
    )
    actions = {e["action"] for e in _events(client, admin)}
    assert {
        "skill.create",
        "device_type.create",
        "expert.create",
        "expert.update",
        "device.create",
        "maintenance.create",
        "maintenance.delete",
        "agreement.create",
        "user.create",
        "api_key.issue",
        "api_key.revoke",
        "project.create",
    } <= actions
    update = _events(client, admin, action="expert.update")[0]
    assert update["before"]["skills"] == [{"skill_id": skill["id"], "level": 3}]
    assert update["after"]["skills"] == []
    deleted = _events(client, admin, action="maintenance.delete")[0]
    assert deleted["before"]["id"] == period["id"] and deleted["after"] is None


def test_filters_and_pages(client: Any, world: World) -> None:
    admin = world.user("admin", "HQ", Role.ADMIN)
    before = datetime.now(UTC) - timedelta(seconds=1)
    for i in range(3):
        client.post("/skills", json={"name": f"S{i}"}, headers=admin)
    r = client.get(
        "/audit-events", params={"object_type": "skills", "limit": 2}, headers=admin
    ).json()
    assert r["total"] == 3 and len(r["items"]) == 2
    names = [e["after"]["name"] for e in r["items"]]
    assert names == ["S2", "S1"]  # newest first
    since = {"since": before.isoformat(), "action": "skill.create"}
    assert len(_events(client, admin, **since)) == 3
    assert _events(client, admin, until=before.isoformat(), action="skill.create") == []
    assert len(_events(client, admin, actor_user_id=str(world.users["admin"]))) >= 3
    r = client.get("/audit-events", params={"since": "2027-01-01T00:00:00"}, headers=admin)
    assert r.status_code == 400 and r.json()["field"] == "since"


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET reason = 'rewritten'",
        "DELETE FROM audit_events",
    ],
)
def test_audit_log_is_append_only_in_the_database(
    client: Any, world: World, app: Any, statement: str
) -> None:
    world.user("admin", "HQ", Role.ADMIN)  # writes a user.create and an api_key.issue row
    with session_of(app) as s:
        count = s.execute(text("SELECT count(*) FROM audit_events")).scalar_one()
        assert count >= 2
        with pytest.raises(DBAPIError, match="append-only"):
            s.execute(text(statement))
            s.commit()
        s.rollback()
        assert s.execute(text("SELECT count(*) FROM audit_events")).scalar_one() == count
        reasons = s.execute(text("SELECT reason FROM audit_events")).scalars().all()
        assert "rewritten" not in reasons


def test_a_unit_manager_reads_the_events_of_their_own_units_objects(
    client: Any, world: World
) -> None:
    admin = world.user("admin", "HQ", Role.ADMIN)
    a_boss = world.user("a-boss", "A", Role.UNIT_MANAGER)
    staff = world.user("a-staff", "A", Role.REQUESTER)
    unit_a, unit_b = str(world.unit("A")), str(world.unit("B"))
    client.patch(f"/units/{unit_a}", json={"description": "ours"}, headers=admin)
    client.patch(f"/units/{unit_b}", json={"description": "theirs"}, headers=admin)
    seen = _events(client, a_boss)
    assert seen and {e["unit_id"] for e in seen} == {unit_a}
    assert "unit.update" in {e["action"] for e in seen}
    # asking for another unit's events finds none; other roles may not read the log
    assert _events(client, a_boss, unit_id=unit_b) == []
    assert client.get("/audit-events", headers=staff).status_code == 403
