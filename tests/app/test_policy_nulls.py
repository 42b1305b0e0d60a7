"""``null`` in an agreement's terms: it clears a term that may be empty, or is refused
with 400 naming the field; never a 409 from the database (issue 12, input hygiene)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.auth.models import Role
from tests.app import factories as f
from tests.app.conftest import World


@pytest.fixture
def agreement(client: Any, world: World) -> tuple[str, dict[str, str]]:
    """A running agreement with a cap, an end date, a fee and notes; its lender's manager."""
    world.unit("B")
    um = world.user("um", "L", Role.UNIT_MANAGER)
    body = {
        "lender_unit_id": str(world.units["L"]),
        "borrower_unit_id": str(world.units["B"]),
        "scope": "all",
        "valid_from": f.TODAY.isoformat(),
        "valid_until": (f.TODAY + timedelta(days=90)).isoformat(),
        "hours_per_month_cap": 40,
        "cancellation_fee": 500,
        "requires_approval": False,
        "notes": "terms of 2026",
        "rate_card": [{"target": "default", "hourly_rate": 9000}],
    }
    r = client.post("/agreements", json=body, headers=um)
    assert r.status_code == 201, r.text
    return r.json()["id"], um


@pytest.mark.parametrize("field", ["hours_per_month_cap", "valid_until"])
def test_null_clears_a_term_that_may_be_empty(
    client: Any, agreement: tuple[str, dict[str, str]], field: str
) -> None:
    agreement_id, um = agreement
    r = client.patch(f"/agreements/{agreement_id}", json={field: None}, headers=um)
    assert r.status_code == 200, r.text
    assert r.json()[field] is None
    assert client.get(f"/agreements/{agreement_id}", headers=um).json()[field] is None


@pytest.mark.parametrize("field", ["requires_approval", "cancellation_fee", "notes", "rate_card"])
def test_null_is_refused_where_a_term_cannot_be_empty(
    client: Any, agreement: tuple[str, dict[str, str]], field: str
) -> None:
    agreement_id, um = agreement
    before = client.get(f"/agreements/{agreement_id}", headers=um).json()
    r = client.patch(f"/agreements/{agreement_id}", json={field: None}, headers=um)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field
    assert client.get(f"/agreements/{agreement_id}", headers=um).json() == before


def test_schema_says_which_terms_are_nullable(client: Any) -> None:
    schema = client.get("/schema/openapi.json").json()["components"]["schemas"]["AgreementUpdate"]
    nullable = {
        name
        for name, prop in schema["properties"].items()
        if any(option.get("type") == "null" for option in prop.get("oneOf", []))
    }
    assert nullable == {"hours_per_month_cap", "valid_until"}


def test_null_skills_of_an_expert_is_refused(client: Any, world: World) -> None:
    """``skills: null`` answered 500 (found by schemathesis); ``[]`` is how to clear them."""
    manager = world.user("rm", "L", Role.UNIT_MANAGER, Role.RESOURCE_MANAGER)
    with world.session() as s:
        expert = f.expert(s, world.units["L"]).id
    r = client.patch(f"/experts/{expert}", json={"skills": None}, headers=manager)
    assert r.status_code == 400 and r.json()["field"] == "skills", r.text
    r = client.patch(f"/experts/{expert}", json={"skills": []}, headers=manager)
    assert r.status_code == 200 and r.json()["skills"] == [], r.text
