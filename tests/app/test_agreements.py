"""Sharing agreements: granted by the lender's unit manager, seen by both parties."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.auth.models import Role
from tests.app import factories as f
from tests.app.conftest import World


@pytest.fixture
def um(world: World) -> dict[str, str]:
    """The unit manager of the lender L (borrowers B and C exist)."""
    world.unit("B")
    world.unit("C")
    world.user("borrower", "B", Role.REQUESTER)
    return world.user("um", "L", Role.UNIT_MANAGER)


def _body(world: World, **kw: Any) -> dict[str, Any]:
    return {
        "lender_unit_id": str(world.units["L"]),
        "borrower_unit_id": str(world.units["B"]),
        "scope": "all",
        "valid_from": f.TODAY.isoformat(),
    } | kw


def test_create_read_update_terminate(client: Any, world: World, um: dict[str, str]) -> None:
    with world.session() as s:
        skill = f.skill(s).id
    body = _body(
        world,
        scope="categories",
        skill_ids=[str(skill)],
        hours_per_month_cap=40,
        requires_approval=False,
        rate_card=[
            {"target": "default", "hourly_rate": 7000},
            {"target": "skill", "target_id": str(skill), "hourly_rate": 9000},
        ],
        valid_until=(f.TODAY + timedelta(days=90)).isoformat(),
    )
    r = client.post("/agreements", json=body, headers=um)
    assert r.status_code == 201, r.text
    agreement = r.json()
    assert agreement["skill_ids"] == [str(skill)] and agreement["active"] is True
    assert agreement["rate_card"][1]["hourly_rate"] == 9000
    # the borrower sees it too
    borrower = world.headers("borrower")
    assert client.get(f"/agreements/{agreement['id']}", headers=borrower).json() == agreement
    r = client.patch(
        f"/agreements/{agreement['id']}",
        json={"hours_per_month_cap": 20, "notes": "renewed"},
        headers=um,
    )
    assert r.status_code == 200
    assert (r.json()["hours_per_month_cap"], r.json()["notes"]) == (20, "renewed")
    assert r.json()["requires_approval"] is False
    r = client.patch(
        f"/agreements/{agreement['id']}",
        json={"valid_until": (f.TODAY - timedelta(days=1)).isoformat()},
        headers=um,
    )
    assert r.status_code == 400 and r.json()["field"] == "valid_until"
    r = client.patch(f"/agreements/{agreement['id']}", json={"scope": "all"}, headers=um)
    assert r.status_code == 400 and r.json()["field"] == "scope"
    r = client.post(f"/agreements/{agreement['id']}/terminate", json={"reason": "x"}, headers=um)
    assert r.status_code == 200
    assert r.json()["active"] is False and r.json()["terminated_at"]
    r = client.patch(f"/agreements/{agreement['id']}", json={"notes": "again"}, headers=um)
    assert r.status_code == 409


def test_list_filters(client: Any, world: World, um: dict[str, str]) -> None:
    unit_l, unit_b, unit_c = world.units["L"], world.units["B"], world.units["C"]
    with world.session() as s:
        f.agreement(s, unit_l, unit_b)
        f.agreement(
            s,
            unit_l,
            unit_c,
            valid_from=f.TODAY - timedelta(days=90),
            valid_until=f.TODAY - timedelta(days=1),
        )
        f.agreement(s, unit_b, unit_l)
        f.agreement(s, unit_b, unit_c)  # the lender's manager does not see this one
    r = client.get("/agreements", headers=um).json()
    assert r["total"] == 3
    r = client.get("/agreements", params={"lender_unit_id": str(unit_l)}, headers=um).json()
    assert r["total"] == 2
    r = client.get("/agreements", params={"active": True}, headers=um).json()
    assert {(a["lender_unit_id"], a["borrower_unit_id"]) for a in r["items"]} == {
        (str(unit_l), str(unit_b)),
        (str(unit_b), str(unit_l)),
    }
    r = client.get("/agreements", params={"active": False}, headers=um).json()
    assert [a["borrower_unit_id"] for a in r["items"]] == [str(unit_c)]
    r = client.get("/agreements", params={"limit": 1, "offset": 2}, headers=um).json()
    assert r["total"] == 3 and len(r["items"]) == 1


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"borrower_unit_id": "LENDER"}, "borrower_unit_id"),
        ({"scope": "everything"}, "scope"),
        ({"scope": "resources"}, None),
        ({"scope": "categories"}, None),
        ({"scope": "all", "skill_ids": ["00000000-0000-0000-0000-000000000001"]}, None),
        ({"valid_from": 20270101}, "valid_from"),
        ({"valid_from": "2027-13-01"}, "valid_from"),
        ({"valid_until": "2020-01-01"}, "valid_until"),
        ({"hours_per_month_cap": 745}, "hours_per_month_cap"),
        ({"currency": "EURO"}, "currency"),
        (
            {
                "rate_card": [
                    {"target": "default", "target_id": "00000000-0000-0000-0000-000000000001"}
                ]
            },
            "rate_card",
        ),
        ({"rate_card": [{"target": "skill"}]}, "rate_card"),
        ({"cancellation_fee": -5}, "cancellation_fee"),
        ({"secret": True}, "secret"),
    ],
)
def test_strict_agreement_input(
    client: Any, world: World, um: dict[str, str], change: dict[str, Any], field: str | None
) -> None:
    if change.get("borrower_unit_id") == "LENDER":
        change = {"borrower_unit_id": str(world.units["L"])}
    r = client.post("/agreements", json=_body(world, **change), headers=um)
    assert r.status_code == 400, r.text
    if field is not None:
        assert r.json()["field"].split(".")[0] == field, r.json()
    assert r.json()["detail"]


def test_listed_resources_must_be_the_lenders(
    client: Any, world: World, um: dict[str, str]
) -> None:
    with world.session() as s:
        foreign = f.expert(s, world.units["B"]).id
        own = f.expert(s, world.units["L"]).id
    body = _body(world, scope="resources", resource_ids=[str(own), str(foreign)])
    r = client.post("/agreements", json=body, headers=um)
    assert r.status_code == 400 and r.json()["field"] == "resource_ids"
    r = client.post(
        "/agreements", json=_body(world, scope="resources", resource_ids=[str(own)]), headers=um
    )
    assert r.status_code == 201 and r.json()["resource_ids"] == [str(own)]
    r = client.post(
        "/agreements", json=_body(world, scope="categories", device_type_ids=[str(own)]), headers=um
    )
    assert r.status_code == 400 and r.json()["field"] == "device_type_ids"
