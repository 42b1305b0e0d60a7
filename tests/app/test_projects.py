"""Joint projects: lead unit, participants with cost shares summing to 10,000 bp, members."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.auth.models import Role
from tests.app import factories as f
from tests.app.conftest import World


@pytest.fixture
def lead(world: World) -> dict[str, str]:
    """The project lead of unit A; unit B takes part, unit C does not."""
    world.user("member_b", "B", Role.REQUESTER)
    world.user("outsider", "C", Role.UNIT_MANAGER)
    world.user("member_a", "A", Role.REQUESTER)
    return world.user("lead", "A", Role.PROJECT_LEAD)


def _body(world: World, **kw: Any) -> dict[str, Any]:
    return {
        "name": "Rhine resilience",
        "code": "RR-1",
        "lead_unit_id": str(world.units["A"]),
        "lead_user_id": str(world.users["lead"]),
        "start_date": f.TODAY.isoformat(),
        "end_date": (f.TODAY + timedelta(days=100)).isoformat(),
        "currency": "EUR",
        "shares": [
            {"unit_id": str(world.units["A"]), "share_bp": 6000},
            {"unit_id": str(world.units["B"]), "share_bp": 4000},
        ],
        "member_ids": [str(world.users["member_b"])],
    } | kw


def _accept_as_b(client: Any, world: World, project_id: str) -> None:
    """Unit B's manager accepts B's pending invitation to the project."""
    if "manager_b" not in world.tokens:
        world.user("manager_b", "B", Role.UNIT_MANAGER)
    manager = world.headers("manager_b")
    found = client.get(
        "/project-invitations",
        params={"project_id": project_id, "status": "pending"},
        headers=manager,
    ).json()["items"]
    assert len(found) == 1
    r = client.post(f"/project-invitations/{found[0]['id']}/accept", headers=manager)
    assert r.status_code == 200, r.text


def test_create_read_update(client: Any, world: World, lead: dict[str, str]) -> None:
    r = client.post("/projects", json=_body(world), headers=lead)
    assert r.status_code == 201, r.text
    project = r.json()
    # unit B's share and member wait for B's consent: A carries everything meanwhile
    assert project["shares"] == [{"unit_id": str(world.units["A"]), "share_bp": 10_000}]
    assert project["member_ids"] == [str(world.users["lead"])]
    _accept_as_b(client, world, project["id"])
    project = client.get(f"/projects/{project['id']}", headers=lead).json()
    assert set(project["member_ids"]) == {str(world.users["lead"]), str(world.users["member_b"])}
    assert {s["unit_id"]: s["share_bp"] for s in project["shares"]} == {
        str(world.units["A"]): 6000,
        str(world.units["B"]): 4000,
    }
    # participants see it; a unit without a share does not
    assert (
        client.get(f"/projects/{project['id']}", headers=world.headers("member_b")).json()
        == project
    )
    r = client.get(f"/projects/{project['id']}", headers=world.headers("outsider"))
    assert r.status_code == 404
    shares = [{"unit_id": str(world.units["A"]), "share_bp": 10_000}]
    r = client.patch(f"/projects/{project['id']}", json={"shares": shares}, headers=lead)
    # member_b's unit would no longer take part: refused, nothing changes
    assert r.status_code == 400 and r.json()["field"] == "shares"
    shares = [
        {"unit_id": str(world.units["A"]), "share_bp": 2500},
        {"unit_id": str(world.units["B"]), "share_bp": 7500},
    ]
    r = client.patch(
        f"/projects/{project['id']}",
        json={"shares": shares, "description": "phase 2"},
        headers=lead,
    )
    assert r.status_code == 200, r.text
    # more of B's money needs B's consent again: B keeps 40 % until it accepts 75 %
    assert {s["share_bp"] for s in r.json()["shares"]} == {6000, 4000}
    _accept_as_b(client, world, project["id"])
    r = client.get(f"/projects/{project['id']}", headers=lead)
    assert {s["share_bp"] for s in r.json()["shares"]} == {2500, 7500}
    r = client.patch(
        f"/projects/{project['id']}",
        json={"end_date": (f.TODAY - timedelta(days=1)).isoformat()},
        headers=lead,
    )
    assert r.status_code == 400 and r.json()["field"] == "end_date"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {"shares": [{"unit_id": "A", "share_bp": 6000}, {"unit_id": "B", "share_bp": 3999}]},
            "shares",
        ),
        (
            {"shares": [{"unit_id": "A", "share_bp": 5000}, {"unit_id": "A", "share_bp": 5000}]},
            "shares",
        ),
        ({"shares": [{"unit_id": "B", "share_bp": 10000}]}, "shares"),
        ({"shares": [{"unit_id": "A", "share_bp": 10001}]}, "shares"),
        ({"shares": []}, "shares"),
        (
            {
                "shares": [{"unit_id": "A", "share_bp": 6000}, {"unit_id": "C", "share_bp": 4000}],
                "member_ids": ["B-USER"],
            },
            "member_ids",
        ),
        ({"end_date": "2000-01-01"}, "end_date"),
        ({"start_date": 20270101}, "start_date"),
        ({"currency": "eur"}, "currency"),
        ({"currency": "EURO"}, "currency"),
        ({"code": "has space"}, "code"),
        ({"lead_user_id": "B-USER"}, "lead_user_id"),
        ({"budget": 5}, "budget"),
    ],
)
def test_strict_project_input(
    client: Any, world: World, lead: dict[str, str], change: dict[str, Any], field: str
) -> None:
    def resolve(value: Any) -> Any:
        if value in ("A", "B", "C"):
            return str(world.units[value])
        if value == "B-USER":
            return str(world.users["member_b"])
        if isinstance(value, list):
            return [resolve(v) for v in value]
        if isinstance(value, dict):
            return {k: resolve(v) for k, v in value.items()}
        return value

    r = client.post("/projects", json=_body(world, **resolve(change)), headers=lead)
    assert r.status_code == 400, r.text
    assert r.json()["field"].split(".")[0] == field, r.json()


def test_duplicate_code_conflicts(client: Any, world: World, lead: dict[str, str]) -> None:
    assert client.post("/projects", json=_body(world), headers=lead).status_code == 201
    r = client.post("/projects", json=_body(world, name="Other"), headers=lead)
    assert r.status_code == 409 and r.json()["field"] == "code"


def test_members(client: Any, world: World, lead: dict[str, str]) -> None:
    project = client.post("/projects", json=_body(world, member_ids=[]), headers=lead).json()
    pid = project["id"]
    r = client.post(
        f"/projects/{pid}/members", json={"user_id": str(world.users["member_a"])}, headers=lead
    )
    assert r.status_code == 200 and str(world.users["member_a"]) in r.json()["member_ids"]
    again = client.post(
        f"/projects/{pid}/members", json={"user_id": str(world.users["member_a"])}, headers=lead
    )
    assert again.json()["member_ids"] == r.json()["member_ids"]
    r = client.post(
        f"/projects/{pid}/members", json={"user_id": str(world.users["outsider"])}, headers=lead
    )
    assert r.status_code == 400 and r.json()["field"] == "user_id"
    r = client.delete(f"/projects/{pid}/members/{world.users['member_a']}", headers=lead)
    assert r.status_code == 200 and str(world.users["member_a"]) not in r.json()["member_ids"]
    r = client.delete(f"/projects/{pid}/members/{world.users['member_a']}", headers=lead)
    assert r.status_code == 404
    r = client.delete(f"/projects/{pid}/members/{world.users['lead']}", headers=lead)
    assert r.status_code == 409 and r.json()["field"] == "user_id"


def test_close_and_list_filters(client: Any, world: World, lead: dict[str, str]) -> None:
    unit_a, unit_b = world.units["A"], world.units["B"]
    with world.session() as s:
        early = f.project(
            s,
            unit_a,
            world.users["lead"],
            code="EARLY",
            start_date=f.TODAY - timedelta(days=300),
            end_date=f.TODAY - timedelta(days=200),
        )
        shared = f.project(
            s, unit_a, world.users["lead"], {unit_a: 5000, unit_b: 5000}, code="SHARED"
        )
    r = client.get("/projects", headers=lead).json()
    assert [p["code"] for p in r["items"]] == ["SHARED", "EARLY"]  # newest start first
    r = client.get("/projects", params={"unit_id": str(unit_b)}, headers=lead).json()
    assert [p["code"] for p in r["items"]] == ["SHARED"]
    r = client.get("/projects", params={"active_on": f.TODAY.isoformat()}, headers=lead).json()
    assert [p["code"] for p in r["items"]] == ["SHARED"]
    r = client.get("/projects", params={"active_on": "not-a-date"}, headers=lead)
    assert r.status_code == 400 and r.json()["field"] == "active_on"
    r = client.post(f"/projects/{early.id}/close", json={"reason": "over"}, headers=lead)
    assert r.status_code == 200 and r.json()["closed_at"]
    assert [p["code"] for p in client.get("/projects", headers=lead).json()["items"]] == ["SHARED"]
    r = client.get("/projects", params={"include_closed": True}, headers=lead).json()
    assert r["total"] == 2
    r = client.patch(f"/projects/{early.id}", json={"name": "Reopened"}, headers=lead)
    assert r.status_code == 409
    assert client.get("/projects", params={"limit": 1}, headers=lead).json()["total"] == 1
    assert shared.id
