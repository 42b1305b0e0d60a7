"""Bad input answers 400 naming the field, on both engines, never 500 or silent acceptance."""

from __future__ import annotations

import pytest

from app.auth.models import Role
from tests.app.booking_world import build


def _booking(w, **changes):
    return {"resource_id": str(w.expert), "project_id": str(w.project),
            "start": "2027-03-01T10:00:00+01:00", "end": "2027-03-01T11:00:00+01:00", **changes}


def _fields(answer) -> set[str]:
    problem = answer.json()
    return {problem.get("field")} | {e.get("field") for e in problem.get("errors", [])}


@pytest.mark.parametrize("start", ["1700000000", 1700000000, "0", "1970-01-01T00:00:00Z",
                                   "5747-01-01T00:00:00Z", "2027-03-01", "not a time"])
def test_instants_are_rfc3339_strings_in_a_sane_range(client, world, start):
    w = build(world)
    answer = client.post("/bookings", json=_booking(w, start=start), headers=w.requester)
    assert answer.status_code == 400, answer.text
    assert any(f and "start" in f for f in _fields(answer)), answer.json()


def test_nul_in_text_is_refused_on_both_engines(client, world):
    w = build(world)
    answer = client.post("/bookings", json=_booking(w, title="drone\x00 survey"),
                         headers=w.requester)
    assert answer.status_code == 400, answer.text
    assert any(f and "title" in f for f in _fields(answer))
    listed = client.get("/bookings", headers=w.requester).json()
    assert listed["total"] == 0


@pytest.mark.parametrize("path", ["/experts?q=a%00b", "/bookings?status=confirmed%00"])
def test_nul_in_the_query_string_is_400(client, world, path):
    w = build(world)
    answer = client.get(path, headers=w.requester)
    assert answer.status_code == 400
    assert answer.json()["field"] == "query"


@pytest.mark.parametrize("amount", ["100", True, 1e3, 100.5, -1])
def test_money_is_a_json_integer_of_minor_units(client, world, amount):
    w = build(world)
    admin = world.user("admin", "X", Role.ADMIN)
    answer = client.post(f"/projects/{w.project}/funds/contributions",
                         json={"unit_id": str(w.borrower), "amount": amount}, headers=admin)
    assert answer.status_code == 400, answer.text
    assert any(f and "amount" in f for f in _fields(answer))


@pytest.mark.parametrize("path", ["/projects/{p}/funds/entries/9223372036854775808/reverse",
                                  "/pledges/9223372036854775808/receipts",
                                  "/pledges/99999999999999999999999/met"])
def test_numbers_past_64_bits_are_400_not_500(client, world, path):
    w = build(world)
    admin = world.user("admin", "X", Role.ADMIN)
    answer = client.post(path.format(p=w.project), json={"amount": 1}, headers=admin)
    assert 400 <= answer.status_code < 500, answer.text
    entries = client.get(f"/projects/{w.project}/funds/entries?after=9223372036854775808",
                         headers=admin)
    assert entries.status_code == 400


@pytest.mark.parametrize("horizon", [
    ("2000-01-01T00:00:00Z", "2000-01-01T00:10:00Z"),  # passed, and shorter than a slot
    ("2000-01-01T00:00:00Z", "2000-02-01T00:00:00Z"),  # passed
    ("2030-01-01T00:00:00Z", "2030-01-01T00:10:00Z"),  # shorter than a 15-minute slot
])
def test_an_allocation_horizon_is_to_come_and_holds_a_slot(client, world, horizon):
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    answer = client.post("/allocation-runs", json={
        "horizon_start": horizon[0], "horizon_end": horizon[1], "project_ids": [str(w.project)]},
        headers=lead)
    assert answer.status_code == 400, answer.text
    assert "horizon_end" in _fields(answer)
    assert client.get("/allocation-runs", headers=lead).json()["total"] == 0
