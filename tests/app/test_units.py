"""Units: the directory every user reads; admins create and retire; managers describe."""

from __future__ import annotations

from typing import Any

import pytest

from app.auth.models import Role
from tests.app.conftest import World


@pytest.fixture
def admin(world: World) -> dict[str, str]:
    """An admin of unit HQ."""
    return world.user("root", "HQ", Role.ADMIN)


def test_create_read_update(client: Any, world: World, admin: dict[str, str]) -> None:
    r = client.post("/units", json={"name": "Water Board", "code": "WB"}, headers=admin)
    assert r.status_code == 201, r.text
    unit = r.json()
    assert unit["description"] == "" and unit["retired_at"] is None
    assert client.get(f"/units/{unit['id']}", headers=admin).json() == unit
    r = client.patch(f"/units/{unit['id']}", json={"description": "Rivers"}, headers=admin)
    assert r.status_code == 200
    assert r.json()["description"] == "Rivers" and r.json()["name"] == "Water Board"
    # the code is the unit's identity: it cannot be changed
    r = client.patch(f"/units/{unit['id']}", json={"code": "XX"}, headers=admin)
    assert r.status_code == 400 and r.json()["field"] == "code"


def test_list_pages_and_searches(client: Any, world: World, admin: dict[str, str]) -> None:
    for i in range(5):
        world.unit(f"R{i}")
    r = client.get("/units", params={"limit": 2, "offset": 1}, headers=admin)
    body = r.json()
    assert (body["total"], body["limit"], body["offset"], len(body["items"])) == (6, 2, 1, 2)
    names = [u["name"] for u in client.get("/units", headers=admin).json()["items"]]
    assert names == sorted(names)
    assert [u["name"] for u in body["items"]] == names[1:3]
    r = client.get("/units", params={"q": "r3"}, headers=admin)
    assert [u["code"] for u in r.json()["items"]] == ["R3"]


def test_retire_keeps_the_unit_out_of_lists(
    client: Any, world: World, admin: dict[str, str]
) -> None:
    unit_id = world.unit("OLD")
    r = client.post(f"/units/{unit_id}/retire", json={"reason": "merged"}, headers=admin)
    assert r.status_code == 200 and r.json()["retired_at"] is not None
    again = client.post(f"/units/{unit_id}/retire", json={}, headers=admin)
    assert again.json()["retired_at"] == r.json()["retired_at"]
    codes = {u["code"] for u in client.get("/units", headers=admin).json()["items"]}
    assert codes == {"HQ"}
    r = client.get("/units", params={"include_retired": True}, headers=admin)
    assert {u["code"] for u in r.json()["items"]} == {"HQ", "OLD"}
    assert client.get(f"/units/{unit_id}", headers=admin).status_code == 200
    # a retired unit takes no new users
    body = {"unit_id": str(unit_id), "name": "N", "email": "n@x.org", "roles": ["requester"]}
    r = client.post("/users", json=body, headers=admin)
    assert r.status_code == 400 and r.json()["field"] == "unit_id"


@pytest.mark.parametrize("field", ["name", "code"])
def test_duplicates_conflict(client: Any, world: World, admin: dict[str, str], field: str) -> None:
    world.unit("DUP")
    body = {"name": "Fresh", "code": "FRESH"} | {field: "Unit DUP" if field == "name" else "DUP"}
    r = client.post("/units", json=body, headers=admin)
    assert r.status_code == 409, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert r.json()["field"] == field
    other = world.unit("OTHER")
    r = client.patch(f"/units/{other}", json={"name": "Unit DUP"}, headers=admin)
    assert r.status_code == 409 and r.json()["field"] == "name"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "", "code": "OK"}, "name"),
        ({"name": "Ok", "code": "has space"}, "code"),
        ({"name": "Ok", "code": "X" * 33}, "code"),
        ({"name": "Ok"}, "code"),
        ({"name": "Ok", "code": "OK", "colour": "red"}, "colour"),
        ({"name": 5, "code": "OK"}, "name"),
    ],
)
def test_strict_input(client: Any, admin: dict[str, str], body: dict[str, Any], field: str) -> None:
    r = client.post("/units", json=body, headers=admin)
    assert r.status_code == 400, r.text
    problem = r.json()
    assert r.headers["content-type"].startswith("application/problem+json")
    assert problem["status"] == 400 and problem["title"]
    assert problem["field"] == field, problem
    assert field in {e["field"] for e in problem["errors"]}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 201}, "limit"),
        ({"limit": 0}, "limit"),
        ({"offset": -1}, "offset"),
        ({"limit": "many"}, "limit"),
    ],
)
def test_page_bounds(
    client: Any, admin: dict[str, str], params: dict[str, Any], field: str
) -> None:
    r = client.get("/units", params=params, headers=admin)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert client.get("/units", params={"limit": 200}, headers=admin).status_code == 200


def test_malformed_json_is_400(client: Any, admin: dict[str, str]) -> None:
    r = client.post(
        "/units", content=b"{not json", headers={**admin, "content-type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
