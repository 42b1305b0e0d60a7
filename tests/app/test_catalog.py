"""The catalog: skills, device types, experts, devices, leave and blackouts."""

from __future__ import annotations

from typing import Any

import pytest

from app.auth.models import Role
from tests.app import factories as f
from tests.app.conftest import World

HOURS = {"mon": [["09:00", "12:00"], ["13:00", "17:00"]], "fri": [["08:00", "14:00"]]}


@pytest.fixture
def rm(world: World) -> dict[str, str]:
    """A resource manager of unit A (and an admin of HQ, for the taxonomy)."""
    world.user("admin", "HQ", Role.ADMIN)
    return world.user("rm", "A", Role.RESOURCE_MANAGER)


def _expert(world: World, **kw: Any) -> dict[str, Any]:
    return {
        "unit_id": str(world.units["A"]),
        "name": "Ada Lovelace",
        "time_zone": "Europe/London",
        "working_hours": HOURS,
    } | kw


def test_skills_and_device_types(client: Any, world: World, rm: dict[str, str]) -> None:
    admin = world.headers("admin")
    parent = client.post("/skills", json={"name": "Hydrology"}, headers=admin).json()
    child = client.post(
        "/skills", json={"name": "Flood modelling", "parent_id": parent["id"]}, headers=admin
    )
    assert child.status_code == 201 and child.json()["parent_id"] == parent["id"]
    r = client.get("/skills", params={"parent_id": parent["id"]}, headers=rm)
    assert [s["name"] for s in r.json()["items"]] == ["Flood modelling"]
    r = client.post("/skills", json={"name": "hydrology"}, headers=admin)
    assert r.status_code == 409 and r.json()["field"] == "name"
    r = client.post(
        "/skills", json={"name": "X", "parent_id": str(world.units["A"])}, headers=admin
    )
    assert r.status_code == 400 and r.json()["field"] == "parent_id"
    r = client.patch(f"/skills/{child.json()['id']}", json={"name": "HYDROLOGY"}, headers=admin)
    assert r.status_code == 409
    dt = client.post("/device-types", json={"name": "Drone", "setup_minutes": 30}, headers=admin)
    assert dt.status_code == 201 and dt.json()["checkin_grace_minutes"] == 15
    r = client.patch(
        f"/device-types/{dt.json()['id']}", json={"teardown_minutes": 10}, headers=admin
    )
    assert r.json()["teardown_minutes"] == 10 and r.json()["setup_minutes"] == 30
    r = client.post("/device-types", json={"name": "Y", "setup_minutes": -1}, headers=admin)
    assert r.status_code == 400 and r.json()["field"] == "setup_minutes"
    r = client.post(f"/device-types/{dt.json()['id']}/retire", json={}, headers=admin)
    assert r.json()["retired_at"] is not None
    assert client.get("/device-types", headers=rm).json()["items"] == []
    r = client.get("/device-types", params={"include_retired": True}, headers=rm)
    assert len(r.json()["items"]) == 1
    # a retired type takes no new devices
    body = {
        "unit_id": str(world.units["A"]),
        "name": "D",
        "device_type_id": dt.json()["id"],
        "time_zone": "UTC",
    }
    r = client.post("/devices", json=body, headers=rm)
    assert r.status_code == 400 and r.json()["field"] == "device_type_id"


def test_expert_lifecycle(client: Any, world: World, rm: dict[str, str]) -> None:
    with world.session() as s:
        sk1, sk2 = f.skill(s, name="GIS").id, f.skill(s, name="Stats").id
    body = _expert(
        world, skills=[{"skill_id": str(sk1), "level": 4}], lending_cap_bp=3000, hourly_rate=8500
    )
    r = client.post("/experts", json=body, headers=rm)
    assert r.status_code == 201, r.text
    expert = r.json()
    assert expert["working_hours"] == {
        "mon": [["09:00", "12:00"], ["13:00", "17:00"]],
        "fri": [["08:00", "14:00"]],
    }
    assert expert["skills"] == [{"skill_id": str(sk1), "level": 4}]
    assert client.get(f"/experts/{expert['id']}", headers=rm).json() == expert
    r = client.patch(
        f"/experts/{expert['id']}",
        json={"skills": [{"skill_id": str(sk2), "level": 2}], "time_zone": "Asia/Tokyo"},
        headers=rm,
    )
    assert r.status_code == 200, r.text
    assert r.json()["skills"] == [{"skill_id": str(sk2), "level": 2}]
    assert r.json()["time_zone"] == "Asia/Tokyo" and r.json()["hourly_rate"] == 8500
    r = client.patch(f"/experts/{expert['id']}", json={"name": None}, headers=rm)
    assert r.status_code == 400 and r.json()["field"] == "name"
    r = client.post(f"/experts/{expert['id']}/retire", json={"reason": "left"}, headers=rm)
    assert r.status_code == 200 and r.json()["retired_at"]
    assert client.get("/experts", headers=rm).json()["total"] == 0
    assert client.get("/experts", params={"include_retired": True}, headers=rm).json()["total"] == 1
    r = client.patch(f"/experts/{expert['id']}", json={"name": "Back"}, headers=rm)
    assert r.status_code == 409


def test_expert_list_filters(client: Any, world: World, rm: dict[str, str]) -> None:
    unit_a = world.units["A"]
    with world.session() as s:
        gis, stats = f.skill(s).id, f.skill(s).id
        f.expert(s, unit_a, {gis: 2}, name="Bo")
        f.expert(s, unit_a, {gis: 5, stats: 1}, name="Cy")
        f.expert(s, unit_a, {stats: 3}, name="Al")
    r = client.get("/experts", headers=rm).json()
    assert [e["name"] for e in r["items"]] == ["Al", "Bo", "Cy"]
    r = client.get("/experts", params={"skill_id": str(gis)}, headers=rm).json()
    assert [e["name"] for e in r["items"]] == ["Bo", "Cy"]
    r = client.get("/experts", params={"skill_id": str(gis), "min_level": 3}, headers=rm).json()
    assert [e["name"] for e in r["items"]] == ["Cy"]
    r = client.get("/experts", params={"q": "b"}, headers=rm).json()
    assert [e["name"] for e in r["items"]] == ["Bo"]
    r = client.get("/experts", params={"limit": 1, "offset": 1}, headers=rm).json()
    assert (r["total"], [e["name"] for e in r["items"]]) == (3, ["Bo"])
    r = client.get("/experts", params={"min_level": 6}, headers=rm)
    assert r.status_code == 400 and r.json()["field"] == "min_level"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"time_zone": "cet "}, "time_zone"),
        ({"working_hours": {"mon": [["09:00", "25:00"]]}}, "working_hours"),
        ({"working_hours": {"mon": [["17:00", "09:00"]]}}, "working_hours"),
        ({"working_hours": {"mon": [["09:00", "13:00"], ["12:00", "17:00"]]}}, "working_hours"),
        ({"working_hours": {"someday": [["09:00", "17:00"]]}}, "working_hours"),
        ({"working_hours": {"mon": [["09:00"]]}}, "working_hours"),
        ({"working_hours": {"mon": [["9", "17"]]}}, "working_hours"),
        ({"skills": [{"skill_id": "00000000-0000-0000-0000-000000000001", "level": 6}]}, "skills"),
        ({"lending_cap_bp": 10001}, "lending_cap_bp"),
        ({"hourly_rate": -1}, "hourly_rate"),
        ({"hourly_rate": 12.5}, "hourly_rate"),
        ({"currency": "euro"}, "currency"),
        ({"unit_id": None}, "unit_id"),
        ({"salary": 1}, "salary"),
    ],
)
def test_strict_expert_input(
    client: Any, world: World, rm: dict[str, str], change: dict[str, Any], field: str
) -> None:
    r = client.post("/experts", json=_expert(world, **change), headers=rm)
    assert r.status_code == 400, r.text
    assert r.json()["field"].split(".")[0] == field, r.json()


def test_unknown_skill_is_refused(client: Any, world: World, rm: dict[str, str]) -> None:
    body = _expert(world, skills=[{"skill_id": str(world.units["A"]), "level": 3}])
    r = client.post("/experts", json=body, headers=rm)
    assert r.status_code == 400 and r.json()["field"] == "skills"


def test_device_lifecycle_and_filters(client: Any, world: World, rm: dict[str, str]) -> None:
    with world.session() as s:
        drone, van = f.device_type(s).id, f.device_type(s).id
        pilot = f.skill(s).id
    body = {
        "unit_id": str(world.units["A"]),
        "name": "Drone 1",
        "device_type_id": str(drone),
        "time_zone": "Europe/Berlin",
        "location": "Hangar 2",
        "operator_skill_id": str(pilot),
        "hourly_rate": 1500,
        "daily_rate": 9000,
    }
    r = client.post("/devices", json=body, headers=rm)
    assert r.status_code == 201, r.text
    device = r.json()
    assert device["working_hours"] is None  # around the clock
    client.post(
        "/devices",
        json=body | {"name": "Van", "device_type_id": str(van), "location": "Yard"},
        headers=rm,
    )
    r = client.get("/devices", params={"device_type_id": str(van)}, headers=rm).json()
    assert [d["name"] for d in r["items"]] == ["Van"]
    r = client.get("/devices", params={"q": "hangar"}, headers=rm).json()
    assert [d["name"] for d in r["items"]] == ["Drone 1"]
    r = client.patch(
        f"/devices/{device['id']}",
        json={"operator_skill_id": None, "working_hours": HOURS},
        headers=rm,
    )
    assert r.status_code == 200
    assert r.json()["operator_skill_id"] is None and r.json()["working_hours"]["fri"]
    r = client.patch(f"/devices/{device['id']}", json={"operator_skill_id": str(drone)}, headers=rm)
    assert r.status_code == 400 and r.json()["field"] == "operator_skill_id"
    r = client.post("/devices", json=body | {"device_type_id": str(pilot)}, headers=rm)
    assert r.status_code == 400 and r.json()["field"] == "device_type_id"


@pytest.mark.parametrize(
    ("start", "end", "field"),
    [
        (1_800_000_000, "2027-03-02T00:00:00Z", "start"),
        ("2027-03-01T00:00:00Z", 0, "end"),
        ("2027-03-01T00:00:00", "2027-03-02T00:00:00Z", "start"),
        ("2027-03-01T00:00:00Z", "2027-03-02T00:00:00", "end"),
        ("2027-03-02T00:00:00Z", "2027-03-01T00:00:00Z", "end"),
        ("2027-03-01T00:00:00Z", "2027-03-01T00:00:00Z", "end"),
        ("2027-03-01T01:00:00+02:00", "2027-02-28T23:00:00Z", "end"),
        ("yesterday", "2027-03-01T00:00:00Z", "start"),
    ],
)
def test_strict_periods(
    client: Any, world: World, rm: dict[str, str], start: Any, end: Any, field: str
) -> None:
    with world.session() as s:
        expert = f.expert(s, world.units["A"])
    r = client.post(f"/experts/{expert.id}/leave", json={"start": start, "end": end}, headers=rm)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field, r.json()


def test_leave_and_blackouts(client: Any, world: World, rm: dict[str, str]) -> None:
    with world.session() as s:
        expert = f.expert(s, world.units["A"])
        device = f.device(s, world.units["A"], f.device_type(s).id)
    r = client.post(
        f"/experts/{expert.id}/leave",
        json={
            "start": "2027-03-01T00:00:00+01:00",
            "end": "2027-03-08T00:00:00+01:00",
            "note": "holiday",
        },
        headers=rm,
    )
    assert r.status_code == 201, r.text
    leave = r.json()
    # stored and shown in UTC
    assert leave["start"].startswith("2027-02-28T23:00:00") and leave["kind"] == "leave"
    r = client.post(
        f"/devices/{device.id}/blackouts",
        json={"start": "2027-04-01T06:00:00Z", "end": "2027-04-01T18:00:00Z"},
        headers=rm,
    )
    assert r.status_code == 201 and r.json()["kind"] == "maintenance"
    listed = client.get(f"/experts/{expert.id}/leave", headers=rm).json()["items"]
    assert [p["id"] for p in listed] == [leave["id"]] and listed[0]["note"] == "holiday"
    window = {"start": "2027-03-10T00:00:00Z", "end": "2027-03-20T00:00:00Z"}
    assert (
        client.get(f"/experts/{expert.id}/leave", params=window, headers=rm).json()["items"] == []
    )
    r = client.get(
        f"/experts/{expert.id}/leave", params={"start": "2027-03-10T00:00:00"}, headers=rm
    )
    assert r.status_code == 400 and r.json()["field"] == "start"
    # a leave period is not a blackout of a device
    r = client.delete(f"/devices/{device.id}/blackouts/{leave['id']}", headers=rm)
    assert r.status_code == 404
    r = client.delete(f"/experts/{expert.id}/leave/{leave['id']}", headers=rm)
    assert r.status_code == 204
    assert client.get(f"/experts/{expert.id}/leave", headers=rm).json()["items"] == []
    assert client.delete(f"/experts/{expert.id}/leave/{leave['id']}", headers=rm).status_code == 404
