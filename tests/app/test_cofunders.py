"""Co-funders see a project's bookings: a unit with a cost share in a project (C) sees its
bookings, titles included, in ``GET /bookings`` and in its unit feed, but not the bookings
of a project it does not co-fund, and cannot change them; a unit with no share (D) sees
none. Both engines.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import icalendar

import ledger
from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.projects.schemas import ProjectCreate, ShareTerm
from app.projects.services import create_project
from tests.app.booking_world import Lending, build

NINE = datetime(2027, 3, 9, 9, tzinfo=UTC)  # a Tuesday, 10:00 in Berlin


def shared_project(world: Any, w: Lending) -> Any:
    """Project SH, led by B, co-funded by C (30 %)."""
    with world.session() as s:
        project = create_project(
            s,
            SYSTEM,
            ProjectCreate(
                name="Shared survey",
                code="SH",
                lead_unit_id=world.units["B"],
                lead_user_id=world.users["lead"],
                start_date=date(2020, 1, 1),
                end_date=date(2035, 12, 31),
                currency="EUR",
                shares=[
                    ShareTerm(unit_id=world.units["B"], share_bp=7000),
                    ShareTerm(unit_id=world.units["C"], share_bp=3000),
                ],
                member_ids=[world.users["req"]],
            ),
        ).id
        ledger.contribute(
            s,
            project,
            world.units["B"],
            ledger.Money(10_000_000, "EUR"),
            key=f"fund-{project}",
            memo="test funds",
        )
    return project


def book(client: Any, w: Lending, project: Any, title: str, start: datetime) -> str:
    made = client.post(
        "/bookings",
        headers=w.requester,
        json={
            "resource_id": str(w.expert),
            "project_id": str(project),
            "title": title,
            "start": start.isoformat(),
            "end": (start + timedelta(hours=1)).isoformat(),
        },
    )
    assert made.status_code == 201, made.text
    booking_id: str = made.json()["id"]
    return booking_id


def unit_feed(client: Any, headers: dict[str, str], unit: Any) -> dict[str, str]:
    """The unit feed's events: UID → SUMMARY."""
    made = client.post(
        "/feed-subscriptions", json={"kind": "unit", "target_id": str(unit)}, headers=headers
    )
    assert made.status_code == 201, made.text
    body = client.get(urlsplit(made.json()["url"]).path).content
    calendar = icalendar.Calendar.from_ical(body)
    return {str(e["UID"]): str(e["SUMMARY"]) for e in calendar.walk("VEVENT")}


def test_co_funders_see_the_projects_bookings_and_no_others(client: Any, world: Any) -> None:
    w = build(world)
    cofunder = world.user("cof", "C", Role.REQUESTER)
    stranger = world.user("str", "D", Role.REQUESTER)
    shared = shared_project(world, w)
    seen = book(client, w, shared, "Flood survey, shared", NINE)
    unseen = book(client, w, w.project, "B and L only", NINE + timedelta(hours=2))

    listed = client.get("/bookings", headers=cofunder).json()["items"]
    assert [(b["id"], b["title"]) for b in listed] == [(seen, "Flood survey, shared")]
    assert client.get(f"/bookings/{seen}", headers=cofunder).status_code == 200
    assert client.get(f"/bookings/{unseen}", headers=cofunder).status_code == 404
    assert client.get("/bookings", headers=stranger).json()["items"] == []
    assert client.get(f"/bookings/{seen}", headers=stranger).status_code == 404

    assert unit_feed(client, cofunder, world.units["C"]) == {
        f"booking-{seen}@copool": "Flood survey, shared"
    }
    assert unit_feed(client, stranger, world.units["D"]) == {}

    # seeing is all: a co-funder neither cancels nor moves the booking
    cancel = client.post(f"/bookings/{seen}/cancel", json={"reason": "x"}, headers=cofunder)
    assert cancel.status_code == 403, cancel.text
    move = client.patch(
        f"/bookings/{seen}",
        json={"start": (NINE + timedelta(hours=1)).isoformat()},
        headers=cofunder,
    )
    assert move.status_code == 403, move.text
