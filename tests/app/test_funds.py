"""The ledger follows the bookings, and project leads and units read their funds."""

from __future__ import annotations

from app.auth.models import Role
from tests.app.booking_world import build

PAST_MON = "2021-03-01"  # a Monday, long ended
MON = "2027-03-01"


def _slot(day: str, start: str, end: str) -> dict[str, str]:
    return {"start": f"{day}T{start}:00+01:00", "end": f"{day}T{end}:00+01:00"}


def _statement(client, w, headers):
    r = client.get(f"/projects/{w.project}/funds/statement", headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_hold_on_confirm_void_on_cancel_charge_on_complete(client, world):
    w = build(world, funds=1_000_000)
    lead = world.headers("lead")
    base = {"resource_id": str(w.expert), "project_id": str(w.project)}
    booked = client.post(
        "/bookings", json={**base, **_slot(MON, "10:00", "12:00")}, headers=w.requester
    ).json()
    s = _statement(client, w, lead)
    assert s["held"] == 18_000  # 2 h at the expert's 90.00 EUR
    assert s["available"] == 1_000_000 - 18_000
    client.post(f"/bookings/{booked['id']}/cancel", json={"reason": "moved"}, headers=w.requester)
    s = _statement(client, w, lead)
    assert s["held"] == 0 and s["spent"] == 0 and s["available"] == 1_000_000

    # a loan that has already happened, recorded by an admin
    past = client.post(
        "/bookings",
        json={**base, **_slot(PAST_MON, "09:00", "10:30"), "backfill": True},
        headers=world.user("root", "ADM", Role.ADMIN),
    ).json()
    done = client.post(f"/bookings/{past['id']}/complete", json={}, headers=w.requester)
    assert done.status_code == 200, done.text
    s = _statement(client, w, lead)
    assert s["spent"] == 13_500 and s["held"] == 0
    assert s["earned_by_unit"] == {str(w.lender): 13_500}
    unit = client.get(f"/units/{w.lender}/funds/statement", headers=w.manager)
    assert unit.status_code == 200, unit.text


def test_a_booking_the_project_cannot_afford_is_refused_with_the_shortfall(client, world):
    w = build(world, funds=10_000)
    r = client.post(
        "/bookings",
        json={
            "resource_id": str(w.expert),
            "project_id": str(w.project),
            **_slot(MON, "10:00", "12:00"),
        },
        headers=w.requester,
    )
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "budget_short"
    assert r.json()["shortfall"] == 8_000
    bookings = client.get("/bookings", headers=w.requester).json()
    assert bookings["total"] == 0


def test_approval_places_the_hold_and_can_be_refused_for_funds(client, world):
    w = build(world, requires_approval=True, funds=20_000)
    base = {"resource_id": str(w.expert), "project_id": str(w.project)}
    first = client.post(
        "/bookings", json={**base, **_slot(MON, "10:00", "12:00")}, headers=w.requester
    ).json()
    second = client.post(
        "/bookings", json={**base, **_slot(MON, "13:00", "15:00")}, headers=w.requester
    ).json()
    assert _statement(client, w, world.headers("lead"))["held"] == 0
    assert (
        client.post(f"/bookings/{first['id']}/approve", json={}, headers=w.manager).status_code
        == 200
    )
    refused = client.post(f"/bookings/{second['id']}/approve", json={}, headers=w.manager)
    assert refused.status_code == 409
    assert refused.json()["code"] == "budget_short"
    assert (
        client.get(f"/bookings/{second['id']}", headers=w.manager).json()["status"]
        == "pending_approval"
    )


def test_borrower_cancellation_pays_the_agreements_fee(client, world):
    w = build(world, funds=1_000_000)
    um = world.user("lender-boss", "L", Role.UNIT_MANAGER)
    assert (
        client.patch(
            f"/agreements/{w.agreement}", json={"cancellation_fee": 2_500}, headers=um
        ).status_code
        == 200
    )
    booked = client.post(
        "/bookings",
        json={
            "resource_id": str(w.expert),
            "project_id": str(w.project),
            **_slot(MON, "10:00", "12:00"),
        },
        headers=w.requester,
    ).json()
    client.post(
        f"/bookings/{booked['id']}/cancel", json={"reason": "no longer needed"}, headers=w.requester
    )
    s = _statement(client, w, world.headers("lead"))
    assert s["spent"] == 2_500 and s["held"] == 0


def test_funding_flows_statement_register_and_csv(client, world):
    w = build(world, funds=0)
    b_boss = world.user("b-boss", "B", Role.UNIT_MANAGER)
    l_boss = world.user("l-boss", "L", Role.UNIT_MANAGER)
    lead = world.headers("lead")
    pledge = client.post(
        f"/projects/{w.project}/funds/pledges",
        json={"unit_id": str(w.borrower), "amount": 60_000},
        headers=b_boss,
    )
    assert pledge.status_code == 201, pledge.text
    assert (pledge.json()["amount"], pledge.json()["currency"]) == (60_000, "EUR")  # minor units
    # a unit manager cannot pledge another unit's money
    assert (
        client.post(
            f"/projects/{w.project}/funds/pledges",
            json={"unit_id": str(w.lender), "amount": 1},
            headers=b_boss,
        ).status_code
        == 403
    )
    receipt = client.post(
        f"/pledges/{pledge.json()['pledge_id']}/receipts", json={"amount": 50_000}, headers=lead
    )
    assert receipt.status_code == 201, receipt.text
    assert (
        client.post(
            f"/projects/{w.project}/funds/contributions",
            json={"unit_id": str(w.lender), "amount": 40_000},
            headers=l_boss,
        ).status_code
        == 201
    )
    s = _statement(client, w, lead)
    assert (s["pledged"], s["received"], s["outstanding_pledges"]) == (60_000, 90_000, 10_000)
    assert s["available"] == 90_000
    by_unit = {u["unit_id"]: u for u in s["units"]}
    assert by_unit[str(w.borrower)]["agreed_share_bp"] == 6000
    assert by_unit[str(w.borrower)]["actual_share_bp"] == 5556  # 50k of 90k

    # refunds over the free cash are refused; a reversal nets out
    too_much = client.post(
        f"/projects/{w.project}/funds/refunds",
        json={"unit_id": str(w.lender), "amount": 100_000},
        headers=lead,
    )
    assert too_much.status_code == 409
    page = client.get(
        f"/projects/{w.project}/funds/entries", params={"limit": 2}, headers=lead
    ).json()
    assert len(page["entries"]) == 2 and page["next_after"] is not None
    contribution = next(
        e
        for e in client.get(f"/projects/{w.project}/funds/entries", headers=lead).json()["entries"]
        if e["kind"] == "contribution"
    )
    rev = client.post(
        f"/projects/{w.project}/funds/entries/{contribution['id']}/reverse",
        json={"reason": "paid to the wrong project"},
        headers=lead,
    )
    assert rev.status_code == 201, rev.text
    assert _statement(client, w, lead)["received"] == 50_000
    csv = client.get(f"/projects/{w.project}/funds/entries.csv", headers=lead)
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert csv.text.count("\n") >= 4


def test_only_members_unit_managers_and_auditors_read_a_projects_ledger(client, world):
    w = build(world)
    auditor = world.user("aud", "X", Role.AUDITOR)
    lender_staff = world.user("l-req", "L", Role.REQUESTER)
    assert (
        client.get(f"/projects/{w.project}/funds/statement", headers=w.requester).status_code == 200
    )  # a member
    assert client.get(f"/projects/{w.project}/funds/statement", headers=auditor).status_code == 200
    assert (
        client.get(f"/projects/{w.project}/funds/statement", headers=lender_staff).status_code
        == 403
    )  # participating unit, not a member
    assert (
        client.get(f"/projects/{w.project}/funds/statement", headers=w.outsider).status_code == 404
    )
    assert client.get(f"/units/{w.borrower}/funds/statement", headers=w.outsider).status_code == 404


def test_rate_cards_are_versioned_by_date_and_most_specific_wins(client, world):
    w = build(world, funds=1_000_000)
    um = world.user("lender-boss", "L", Role.UNIT_MANAGER)
    card = [
        {"target": "default", "hourly_rate": 5_000, "effective_until": "2027-02-28"},
        {"target": "default", "hourly_rate": 6_000, "effective_from": "2027-03-01"},
        {
            "target": "skill",
            "target_id": str(w.skill),
            "hourly_rate": 7_000,
            "effective_from": "2027-04-01",
        },
    ]
    r = client.patch(f"/agreements/{w.agreement}", json={"rate_card": card}, headers=um)
    assert r.status_code == 200, r.text
    lead = world.headers("lead")
    base = {"resource_id": str(w.expert), "project_id": str(w.project)}

    def held_after(day: str) -> int:
        before = _statement(client, w, lead)["held"]
        booked = client.post(
            "/bookings", json={**base, **_slot(day, "10:00", "11:00")}, headers=w.requester
        )
        assert booked.status_code == 201, booked.text
        return _statement(client, w, lead)["held"] - before

    assert held_after("2027-02-01") == 5_000  # the first version
    assert held_after("2027-03-01") == 6_000  # the default changed on 1 March
    assert held_after("2027-04-05") == 7_000  # the skill entry is more specific
    bad = client.patch(
        f"/agreements/{w.agreement}",
        json={
            "rate_card": [
                {
                    "target": "default",
                    "hourly_rate": 1,
                    "effective_from": "2027-05-01",
                    "effective_until": "2027-04-01",
                }
            ]
        },
        headers=um,
    )
    assert bad.status_code == 400
    assert bad.json()["field"] == "rate_card.0.effective_until"
