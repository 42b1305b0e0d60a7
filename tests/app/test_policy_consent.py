"""Consent: another unit's cost share and its users' membership wait for that unit's
unit_manager to accept (issue 12, policy). Until then the lead unit carries the share."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from app.auth.models import Role
from tests.app import factories as f
from tests.app.conftest import World


@pytest.fixture
def people(world: World) -> World:
    """Unit A leads; B is asked to co-fund; C stands outside."""
    world.user("manager_a", "A", Role.UNIT_MANAGER)
    world.user("manager_b", "B", Role.UNIT_MANAGER)
    world.user("requester_b", "B", Role.REQUESTER)
    world.user("manager_c", "C", Role.UNIT_MANAGER)
    return world


def _create(client: Any, world: World, share_b: int = 9900) -> dict[str, Any]:
    body = {
        "name": "Ninety-nine",
        "code": "P-99",
        "lead_unit_id": str(world.units["A"]),
        "lead_user_id": str(world.users["manager_a"]),
        "start_date": f.TODAY.isoformat(),
        "end_date": (f.TODAY + timedelta(days=90)).isoformat(),
        "currency": "EUR",
        "shares": [
            {"unit_id": str(world.units["A"]), "share_bp": 10_000 - share_b},
            {"unit_id": str(world.units["B"]), "share_bp": share_b},
        ],
        "member_ids": [str(world.users["requester_b"])],
    }
    r = client.post("/projects", json=body, headers=world.headers("manager_a"))
    assert r.status_code == 201, r.text
    return dict(r.json())


def _invitation(client: Any, world: World, project_id: str) -> dict[str, Any]:
    r = client.get(
        "/project-invitations",
        params={"project_id": project_id, "status": "pending"},
        headers=world.headers("manager_b"),
    )
    assert r.status_code == 200, r.text
    (found,) = r.json()["items"]
    return dict(found)


def _agreed(client: Any, world: World, project_id: str) -> dict[str, int]:
    r = client.get(f"/projects/{project_id}/funds/statement", headers=world.headers("manager_a"))
    assert r.status_code == 200, r.text
    return {u["unit_id"]: u["agreed_share_bp"] for u in r.json()["units"]}


def test_a_share_and_members_wait_for_consent(client: Any, people: World) -> None:
    project = _create(client, people)
    a, b = str(people.units["A"]), str(people.units["B"])
    # nothing of B's is in force: A carries the whole cost, B's user is no member
    assert project["shares"] == [{"unit_id": a, "share_bp": 10_000}]
    assert str(people.users["requester_b"]) not in project["member_ids"]
    assert _agreed(client, people, project["id"]).get(b, 0) == 0
    # B does not take part yet: its user cannot see the project, B cannot pledge to it
    r = client.get(f"/projects/{project['id']}", headers=people.headers("requester_b"))
    assert r.status_code == 404
    invitation = _invitation(client, people, project["id"])
    assert invitation["share_bp"] == 9900
    assert invitation["member_ids"] == [str(people.users["requester_b"])]
    assert invitation["status"] == "pending"


def test_declining_changes_nothing(client: Any, people: World) -> None:
    project = _create(client, people)
    invitation = _invitation(client, people, project["id"])
    r = client.post(
        f"/project-invitations/{invitation['id']}/decline",
        json={"reason": "not our project"},
        headers=people.headers("manager_b"),
    )
    assert r.status_code == 200 and r.json()["status"] == "declined"
    after = client.get(f"/projects/{project['id']}", headers=people.headers("manager_a")).json()
    assert after["shares"] == project["shares"] and after["member_ids"] == project["member_ids"]
    r = client.post(
        f"/project-invitations/{invitation['id']}/accept", headers=people.headers("manager_b")
    )
    assert r.status_code == 409 and r.json()["code"] == "wrong_status"


def test_accepting_puts_the_share_and_members_in_force(client: Any, people: World) -> None:
    project = _create(client, people)
    a, b = str(people.units["A"]), str(people.units["B"])
    invitation = _invitation(client, people, project["id"])
    r = client.post(
        f"/project-invitations/{invitation['id']}/accept", headers=people.headers("manager_b")
    )
    assert r.status_code == 200 and r.json()["status"] == "accepted"
    assert _agreed(client, people, project["id"]) == {a: 100, b: 9900}
    seen = client.get(f"/projects/{project['id']}", headers=people.headers("requester_b"))
    assert seen.status_code == 200
    assert str(people.users["requester_b"]) in seen.json()["member_ids"]
    again = client.post(
        f"/project-invitations/{invitation['id']}/accept", headers=people.headers("manager_b")
    )
    assert again.status_code == 409


@pytest.mark.parametrize(
    ("who", "status"),
    [
        ("manager_a", 403),  # the inviting unit cannot accept for B
        ("requester_b", 403),  # B's requester is no unit_manager
        ("manager_c", 404),  # an outsider does not learn the invitation exists
    ],
)
def test_only_the_invited_units_manager_answers(
    client: Any, people: World, who: str, status: int
) -> None:
    project = _create(client, people)
    invitation = _invitation(client, people, project["id"])
    r = client.post(f"/project-invitations/{invitation['id']}/accept", headers=people.headers(who))
    assert r.status_code == status, r.text
    after = client.get(f"/projects/{project['id']}", headers=people.headers("manager_a")).json()
    assert after["shares"] == project["shares"]


def test_less_takes_effect_at_once_more_waits(client: Any, people: World) -> None:
    project = _create(client, people, share_b=4000)
    a, b = str(people.units["A"]), str(people.units["B"])
    invitation = _invitation(client, people, project["id"])
    client.post(
        f"/project-invitations/{invitation['id']}/accept", headers=people.headers("manager_b")
    )

    def patch(share_b: int) -> dict[str, int]:
        shares = [
            {"unit_id": a, "share_bp": 10_000 - share_b},
            {"unit_id": b, "share_bp": share_b},
        ]
        r = client.patch(
            f"/projects/{project['id']}",
            json={"shares": shares},
            headers=people.headers("manager_a"),
        )
        assert r.status_code == 200, r.text
        return {s["unit_id"]: s["share_bp"] for s in r.json()["shares"]}

    assert patch(1000) == {a: 9000, b: 1000}  # asking B for less needs no consent
    assert patch(8000) == {a: 9000, b: 1000}  # asking for more does
    assert _invitation(client, people, project["id"])["share_bp"] == 8000
    assert patch(500) == {a: 9500, b: 500}  # a lower proposal withdraws the higher one
    r = client.get(
        "/project-invitations",
        params={"project_id": project["id"], "status": "pending"},
        headers=people.headers("manager_b"),
    )
    assert r.json()["items"] == []


def test_enrolling_another_units_user_is_an_invitation(client: Any, people: World) -> None:
    project = _create(client, people, share_b=0)
    client.post(
        f"/project-invitations/{_invitation(client, people, project['id'])['id']}/accept",
        headers=people.headers("manager_b"),
    )
    newcomer = people.user("newcomer_b", "B", Role.REQUESTER)
    r = client.post(
        f"/projects/{project['id']}/members",
        json={"user_id": str(people.users["newcomer_b"])},
        headers=people.headers("manager_a"),
    )
    assert r.status_code == 200 and str(people.users["newcomer_b"]) not in r.json()["member_ids"]
    assert (
        client.get(f"/projects/{project['id']}/funds/statement", headers=newcomer).status_code
        == 403
    )
    invitation = _invitation(client, people, project["id"])
    assert invitation["share_bp"] is None
    client.post(
        f"/project-invitations/{invitation['id']}/accept", headers=people.headers("manager_b")
    )
    assert (
        client.get(f"/projects/{project['id']}/funds/statement", headers=newcomer).status_code
        == 200
    )


def test_an_admin_needs_no_invitation(client: Any, people: World) -> None:
    """An admin (who may act for every unit) puts B's share in force at once."""
    people.user("root", "A", Role.ADMIN)
    body = {
        "name": "By the admin",
        "code": "P-ADM",
        "lead_unit_id": str(people.units["A"]),
        "lead_user_id": str(people.users["manager_a"]),
        "start_date": f.TODAY.isoformat(),
        "end_date": (f.TODAY + timedelta(days=90)).isoformat(),
        "currency": "EUR",
        "shares": [
            {"unit_id": str(people.units["A"]), "share_bp": 5000},
            {"unit_id": str(people.units["B"]), "share_bp": 5000},
        ],
    }
    r = client.post("/projects", json=body, headers=people.headers("root"))
    assert r.status_code == 201
    assert {s["share_bp"] for s in r.json()["shares"]} == {5000}
