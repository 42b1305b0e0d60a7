"""Users and API keys: created by admins and unit managers; keys shown once, stored hashed."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from sqlalchemy import select, text

from app.auth.models import ApiKey, Role
from tests.app.conftest import World, session_of


@pytest.fixture
def manager(world: World) -> dict[str, str]:
    """A unit manager of unit A."""
    return world.user("manager", "A", Role.UNIT_MANAGER)


def _new(world: World, **kw: Any) -> dict[str, Any]:
    return {
        "unit_id": str(world.units["A"]),
        "name": "Ada",
        "email": "Ada@Example.org",
        "roles": ["requester", "project_lead", "requester"],
    } | kw


def test_create_and_read_user(client: Any, world: World, manager: dict[str, str]) -> None:
    r = client.post("/users", json=_new(world), headers=manager)
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["email"] == "ada@example.org"  # emails are kept lower-case
    assert user["roles"] == ["project_lead", "requester"]  # deduplicated
    assert user["active"] is True
    assert client.get(f"/users/{user['id']}", headers=manager).json() == user
    me = client.get("/users/me", headers=manager).json()
    assert me["id"] == str(world.users["manager"]) and me["roles"] == ["unit_manager"]


def test_duplicate_email_conflicts(client: Any, world: World, manager: dict[str, str]) -> None:
    assert client.post("/users", json=_new(world), headers=manager).status_code == 201
    r = client.post("/users", json=_new(world, email="ADA@example.org"), headers=manager)
    assert r.status_code == 409 and r.json()["field"] == "email"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"email": "not-an-email"}, "email"),
        ({"roles": []}, "roles"),
        ({"roles": ["overlord"]}, "roles"),
        ({"unit_id": "nope"}, "unit_id"),
        ({"name": ""}, "name"),
        ({"password": "x"}, "password"),
    ],
)
def test_strict_user_input(
    client: Any, world: World, manager: dict[str, str], change: dict[str, Any], field: str
) -> None:
    r = client.post("/users", json=_new(world, **change), headers=manager)
    assert r.status_code == 400, r.text
    assert r.json()["field"].split(".")[0] == field


def test_list_filters_and_pages(client: Any, world: World) -> None:
    admin = world.user("admin", "A", Role.ADMIN)
    for i in range(3):
        world.user(f"req{i}", "A", Role.REQUESTER)
    world.user("lead", "B", Role.PROJECT_LEAD)
    r = client.get("/users", params={"role": "requester"}, headers=admin)
    assert {u["name"] for u in r.json()["items"]} == {"req0", "req1", "req2"}
    r = client.get("/users", params={"unit_id": str(world.units["B"])}, headers=admin)
    assert [u["name"] for u in r.json()["items"]] == ["lead"]
    r = client.get("/users", params={"limit": 2, "offset": 2}, headers=admin)
    assert r.json()["total"] == 5 and len(r.json()["items"]) == 2
    client.patch(f"/users/{world.users['req1']}", json={"active": False}, headers=admin)
    r = client.get("/users", params={"active": False}, headers=admin)
    assert [u["name"] for u in r.json()["items"]] == ["req1"]
    # a requester lists only themselves
    r = client.get("/users", headers=world.headers("req0"))
    assert [u["name"] for u in r.json()["items"]] == ["req0"]


def test_update_user_and_not_yourself_inactive(
    client: Any, world: World, manager: dict[str, str]
) -> None:
    world.user("staff", "A", Role.REQUESTER)
    r = client.patch(
        f"/users/{world.users['staff']}",
        json={"name": "Staff", "roles": ["resource_manager"]},
        headers=manager,
    )
    assert r.status_code == 200
    assert (r.json()["name"], r.json()["roles"]) == ("Staff", ["resource_manager"])
    r = client.patch(f"/users/{world.users['manager']}", json={"active": False}, headers=manager)
    assert r.status_code == 400 and r.json()["field"] == "active"


def test_key_is_shown_once_and_stored_hashed(
    client: Any, world: World, app: Any, manager: dict[str, str]
) -> None:
    world.user("staff", "A", Role.REQUESTER)
    staff_id = world.users["staff"]
    r = client.post(f"/users/{staff_id}/api-keys", json={"name": "laptop"}, headers=manager)
    assert r.status_code == 201, r.text
    issued = r.json()
    token = issued["token"]
    assert token.startswith("cpl_") and len(token) > 40
    assert issued["prefix"] == token[:12] and issued["last_used_at"] is None
    listed = client.get(f"/users/{staff_id}/api-keys", headers=manager).json()["items"]
    laptop = next(k for k in listed if k["name"] == "laptop")
    assert "token" not in laptop
    with session_of(app) as s:
        row = s.get(ApiKey, issued["id"])
        assert row is not None
        assert row.token_sha256 == hashlib.sha256(token.encode()).hexdigest()
        dump = " ".join(str(v) for v in s.execute(text("SELECT * FROM api_keys")).all())
        assert token not in dump
        audit = " ".join(str(v) for v in s.execute(text("SELECT * FROM audit_events")).all())
        assert token not in audit and row.token_sha256 not in audit
    # using the key stamps last_used_at
    assert client.get("/users/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    listed = client.get(f"/users/{staff_id}/api-keys", headers=manager).json()["items"]
    assert next(k for k in listed if k["name"] == "laptop")["last_used_at"] is not None


def test_revoke_is_idempotent_and_immediate(
    client: Any, world: World, app: Any, manager: dict[str, str]
) -> None:
    staff = world.user("staff", "A", Role.REQUESTER)
    with session_of(app) as s:
        key_id = s.scalar(select(ApiKey.id).where(ApiKey.user_id == world.users["staff"]))
    # users may revoke their own keys
    first = client.post(f"/api-keys/{key_id}/revoke", json={"reason": "lost"}, headers=staff)
    assert first.status_code == 200 and first.json()["revoked_at"]
    again = client.post(f"/api-keys/{key_id}/revoke", json={}, headers=manager)
    assert again.status_code == 200 and again.json()["revoked_at"] == first.json()["revoked_at"]
    assert client.get("/users/me", headers=staff).status_code == 401


def test_no_key_for_a_deactivated_user(client: Any, world: World, manager: dict[str, str]) -> None:
    world.user("leaver", "A", Role.REQUESTER)
    client.patch(f"/users/{world.users['leaver']}", json={"active": False}, headers=manager)
    r = client.post(f"/users/{world.users['leaver']}/api-keys", json={}, headers=manager)
    assert r.status_code == 409, r.text


def test_user_may_issue_own_keys(client: Any, world: World) -> None:
    me = world.user("self", "A", Role.REQUESTER)
    r = client.post(f"/users/{world.users['self']}/api-keys", json={"name": "ci"}, headers=me)
    assert r.status_code == 201
    new = {"Authorization": f"Bearer {r.json()['token']}"}
    assert client.get("/users/me", headers=new).json()["id"] == str(world.users["self"])
