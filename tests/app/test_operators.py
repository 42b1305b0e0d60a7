"""Operator pairing (issue 9, finding 7): a device that needs an operator is booked with one.

The lender L lends everything to the borrower B. Sonar 1 (L) needs an operator holding
"Sonar operation"; Lena (L) and Otto (B, the borrower's own) hold it; Eva (L) does not.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.catalog import services as catalog
from app.catalog.models import Expert
from app.catalog.schemas import (
    DeviceCreate,
    DeviceTypeCreate,
    ExpertCreate,
    SkillCreate,
    SkillLevel,
)
from tests.app.booking_world import WEEKDAYS_9_TO_5, Lending, build

MON = "2027-03-01"  # a Monday; Berlin is UTC+1


@dataclass
class Pairing:
    w: Lending
    pilot_skill: uuid.UUID
    sonar_type: uuid.UUID
    sonar: uuid.UUID
    lena: uuid.UUID  # the lender's operator
    otto: uuid.UUID  # the borrower's own operator
    stranger: uuid.UUID  # an operator of a unit with no agreement


def setup(world: Any, **kw: Any) -> Pairing:
    w = build(world, **kw)
    world.unit("X")
    with world.session() as s:
        skill = catalog.create_skill(s, SYSTEM, SkillCreate(name="Sonar operation")).id
        sonar_type = catalog.create_device_type(s, SYSTEM, DeviceTypeCreate(name="Sonar")).id
        sonar = catalog.create_device(
            s,
            SYSTEM,
            DeviceCreate(
                unit_id=w.lender,
                name="Sonar 1",
                device_type_id=sonar_type,
                time_zone="Europe/Berlin",
                working_hours=None,
                operator_skill_id=skill,
                hourly_rate=1000,
            ),
        ).id

        def operator(unit: uuid.UUID, name: str) -> uuid.UUID:
            return catalog.create_expert(
                s,
                SYSTEM,
                ExpertCreate(
                    unit_id=unit,
                    name=name,
                    time_zone="Europe/Berlin",
                    working_hours=WEEKDAYS_9_TO_5,
                    skills=[SkillLevel(skill_id=skill, level=2)],
                    hourly_rate=5000,
                ),
            ).id

        lena = operator(w.lender, "Lena Lender")
        otto = operator(w.borrower, "Otto Own")
        stranger = operator(world.units["X"], "Stella Stranger")
    return Pairing(w, skill, sonar_type, sonar, lena, otto, stranger)


def at(start: str, end: str, day: str = MON) -> dict[str, str]:
    return {"start": f"{day}T{start}:00+01:00", "end": f"{day}T{end}:00+01:00"}


def book(
    client: Any,
    p: Pairing,
    resource: uuid.UUID,
    slot: dict[str, str],
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Any:
    body = {"resource_id": str(resource), "project_id": str(p.w.project), **slot, **extra}
    return client.post("/bookings", json=body, headers=headers or p.w.requester)


def operator_booking(client: Any, p: Pairing, device_booking_id: str) -> dict[str, Any]:
    r = client.get(f"/bookings?operator_for_id={device_booking_id}", headers=p.w.requester)
    assert r.status_code == 200, r.text
    (only,) = r.json()["items"]
    return only


def status(client: Any, p: Pairing, booking_id: str) -> str:
    r = client.get(f"/bookings/{booking_id}", headers=p.w.requester)
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


def count(client: Any, p: Pairing) -> int:
    r = client.get("/bookings", headers=p.w.requester)
    return int(r.json()["total"])


# --- direct bookings -------------------------------------------------------------------------


def test_a_device_that_needs_an_operator_is_refused_without_a_qualified_one(client, world):
    p = setup(world)
    slot = at("10:00", "11:00")
    missing = book(client, p, p.sonar, slot)
    assert missing.status_code == 422, missing.text
    assert (missing.json()["field"], missing.json()["code"]) == ("operator_id", "operator_required")
    assert "Sonar operation" in missing.json()["detail"]
    for unfit in (p.w.expert, p.w.device, p.stranger, uuid.uuid4()):
        r = book(client, p, p.sonar, slot, operator_id=str(unfit))
        assert r.status_code == 422, r.text
        assert (r.json()["field"], r.json()["code"]) == ("operator_id", "operator_unqualified")
    not_needed = book(client, p, p.w.device, slot, operator_id=str(p.lena))
    assert not_needed.status_code == 422, not_needed.text
    assert not_needed.json()["field"] == "operator_id"
    assert count(client, p) == 0


def test_device_and_operator_are_booked_together_under_every_rule(client, world):
    p = setup(world)
    made = book(client, p, p.sonar, at("10:00", "11:00"), operator_id=str(p.lena))
    assert made.status_code == 201, made.text
    device = made.json()
    assert device["resource_id"] == str(p.sonar) and device["operator_for_id"] is None
    operator = operator_booking(client, p, device["id"])
    assert operator["resource_id"] == str(p.lena)
    assert (operator["start"], operator["end"]) == (device["start"], device["end"])
    assert operator["status"] == "confirmed" and operator["agreement_id"] == str(p.w.agreement)
    statement = client.get(f"/projects/{p.w.project}/funds/statement", headers=p.w.requester)
    assert statement.json()["held"] == 1000 + 5000  # both priced, both held

    # The operator's rules refuse the pair: overlap, then working hours. Nothing is written.
    clash = book(client, p, p.sonar, at("10:30", "11:30"), operator_id=str(p.lena))
    assert clash.status_code == 409 and clash.json()["code"] == "overlap"
    clash = book(client, p, p.sonar, at("12:00", "13:00"), operator_id=str(p.lena))
    assert clash.status_code == 201, clash.text
    night = book(client, p, p.sonar, at("20:00", "21:00"), operator_id=str(p.otto))
    assert night.status_code == 409, night.text
    assert night.json()["code"] == "outside_working_hours"
    assert count(client, p) == 4  # two pairs; the refused ones left nothing behind


def test_the_pair_lives_and_dies_together(client, world):
    p = setup(world)
    # The borrower cancels the device: the operator goes too.
    device = book(client, p, p.sonar, at("09:00", "10:00"), operator_id=str(p.otto)).json()
    operator = operator_booking(client, p, device["id"])
    r = client.post(
        f"/bookings/{device['id']}/cancel", json={"reason": "rain"}, headers=p.w.requester
    )
    assert r.status_code == 200, r.text
    assert status(client, p, operator["id"]) == "cancelled"
    with world.session() as s:
        reasons = s.scalars(
            select(AuditEvent.reason).where(
                AuditEvent.object_id == operator["id"], AuditEvent.action == "booking.cancel"
            )
        ).all()
    assert reasons == ["the booking it is paired with was cancelled: borrower: rain"]

    # The lender cancels the operator: the device goes too.
    device = book(client, p, p.sonar, at("10:00", "11:00"), operator_id=str(p.lena)).json()
    operator = operator_booking(client, p, device["id"])
    r = client.post(
        f"/bookings/{operator['id']}/cancel", json={"reason": "ill"}, headers=p.w.manager
    )
    assert r.status_code == 200, r.text
    assert status(client, p, device["id"]) == "cancelled"

    # A released no-show device releases its operator.
    past = book(  # a session that has already happened, recorded by an admin
        client,
        p,
        p.sonar,
        at("10:00", "11:00", day="2025-03-03"),
        headers=world.user("root", "ADM", Role.ADMIN),
        operator_id=str(p.otto),
        backfill=True,
    ).json()
    operator = operator_booking(client, p, past["id"])
    r = client.post(f"/bookings/{past['id']}/release", json={}, headers=p.w.manager)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "released"
    assert status(client, p, operator["id"]) == "cancelled"


def test_each_of_the_pair_follows_its_own_agreement(client, world):
    p = setup(world, requires_approval=True)
    device = book(client, p, p.sonar, at("09:00", "10:00"), operator_id=str(p.otto)).json()
    operator = operator_booking(client, p, device["id"])
    # The device is lent under an agreement that needs approval; the operator is B's own.
    assert (device["status"], operator["status"]) == ("pending_approval", "confirmed")
    r = client.post(f"/bookings/{device['id']}/approve", json={}, headers=p.w.manager)
    assert r.status_code == 200 and r.json()["status"] == "confirmed"
    # Both lent by L under approval: declining the operator cancels the device.
    device = book(client, p, p.sonar, at("11:00", "12:00"), operator_id=str(p.lena)).json()
    operator = operator_booking(client, p, device["id"])
    assert operator["status"] == "pending_approval"
    r = client.post(
        f"/bookings/{operator['id']}/decline", json={"reason": "busy"}, headers=p.w.manager
    )
    assert r.status_code == 200, r.text
    assert status(client, p, device["id"]) == "cancelled"


def test_a_series_books_the_operator_with_every_occurrence(client, world):
    p = setup(world)
    body = {
        "resource_id": str(p.sonar),
        "project_id": str(p.w.project),
        "time_zone": "Europe/Berlin",
        "local_start": f"{MON}T10:00:00",
        "duration_minutes": 60,
        "rrule": "FREQ=WEEKLY;COUNT=3",
    }
    missing = client.post("/booking-series", json=body, headers=p.w.requester)
    assert missing.status_code == 422 and missing.json()["code"] == "operator_required"
    # Lena's leave on the second Monday: that occurrence clashes, with the operator.
    leave = {"start": "2027-03-08T00:00:00+01:00", "end": "2027-03-09T00:00:00+01:00"}
    assert client.post(f"/experts/{p.lena}/leave", json=leave, headers=p.w.manager).is_success
    refused = client.post(
        "/booking-series", json={**body, "operator_id": str(p.lena)}, headers=p.w.requester
    )
    assert refused.status_code == 409 and refused.json()["code"] == "unavailable"
    made = client.post(
        "/booking-series",
        json={**body, "operator_id": str(p.lena), "skip_conflicts": True},
        headers=p.w.requester,
    )
    assert made.status_code == 201, made.text
    occurrences = made.json()["bookings"]
    assert [b["start"][:10] for b in occurrences] == ["2027-03-01", "2027-03-15"]
    for occurrence in occurrences:
        operator = operator_booking(client, p, occurrence["id"])
        assert operator["resource_id"] == str(p.lena)
        assert operator["start"] == occurrence["start"]
    assert count(client, p) == 4


def test_forced_leave_over_an_operator_cancels_the_device_too(client, world):
    p = setup(world)
    device = book(client, p, p.sonar, at("10:00", "11:00"), operator_id=str(p.lena)).json()
    operator = operator_booking(client, p, device["id"])
    leave = {**at("09:00", "12:00"), "force": True}
    r = client.post(f"/experts/{p.lena}/leave", json=leave, headers=p.w.manager)
    assert r.status_code == 201, r.text
    assert status(client, p, operator["id"]) == "cancelled"
    assert status(client, p, device["id"]) == "cancelled"


# --- requests ---------------------------------------------------------------------------------


def ask(client: Any, p: Pairing, **extra: Any) -> Any:
    body = {
        "project_id": str(p.w.project),
        "title": "Harbour survey",
        "requirements": [{"kind": "device_type", "device_type_id": str(p.sonar_type)}],
        "duration_minutes": 60,
        "window_start": f"{MON}T09:00:00+01:00",
        "window_end": f"{MON}T17:00:00+01:00",
        **extra,
    }
    return client.post("/requests", json=body, headers=p.w.requester)


def test_a_request_operator_must_be_an_expert_of_the_requesting_unit(client, world):
    p = setup(world)
    for unfit in (p.lena, p.w.device, uuid.uuid4()):
        r = ask(client, p, operator_id=str(unfit))
        assert r.status_code == 422, r.text
        assert r.json()["field"] == "operator_id"
    named = ask(
        client,
        p,
        requirements=[{"kind": "resource", "resource_id": str(p.sonar)}],
        operator_id=str(_plain_expert(world, p)),
    )
    assert named.status_code == 422 and named.json()["field"] == "operator_id"
    r = ask(client, p, operator_id=str(p.otto))
    assert r.status_code == 201, r.text
    assert r.json()["operator_id"] == str(p.otto)
    assert ask(client, p).json()["operator_id"] is None


def _plain_expert(world: Any, p: Pairing) -> uuid.UUID:
    """An expert of the borrower without the operator skill."""
    with world.session() as s:
        return catalog.create_expert(
            s,
            SYSTEM,
            ExpertCreate(
                unit_id=p.w.borrower,
                name="Bob Borrower",
                time_zone="Europe/Berlin",
                working_hours=WEEKDAYS_9_TO_5,
                skills=[],
            ),
        ).id


def serve(client: Any, p: Pairing, request: dict[str, Any]) -> Any:
    return client.post(f"/requests/{request['id']}/serve", headers=p.w.requester)


def test_serving_pairs_each_device_with_the_request_operator_or_a_qualified_one(client, world):
    p = setup(world)
    # No operator named: the first qualified expert free then ("Lena Lender" by name).
    request = ask(client, p).json()
    served = serve(client, p, request)
    assert served.status_code == 200, served.text
    device, operator = served.json()["bookings"]
    assert device["resource_id"] == str(p.sonar)
    assert operator["resource_id"] == str(p.lena)
    assert operator["operator_for_id"] == device["id"]
    assert operator["request_id"] == device["request_id"] == request["id"]
    assert operator["requirement_id"] == device["requirement_id"] is not None
    assert (operator["start"], operator["end"]) == (device["start"], device["end"])

    # Lena is booked for the rest of the day: the next request gets Otto, at the first
    # hour the sonar is free again.
    assert book(client, p, p.lena, at("10:00", "17:00")).status_code == 201
    later = ask(client, p).json()
    device, operator = serve(client, p, later).json()["bookings"]
    assert operator["resource_id"] == str(p.otto)
    assert device["start"] == "2027-03-01T09:00:00Z"

    # Named operator: that expert, and no one else.
    named = ask(client, p, operator_id=str(p.otto)).json()
    device, operator = serve(client, p, named).json()["bookings"]
    assert operator["resource_id"] == str(p.otto)
    assert device["start"] == "2027-03-01T10:00:00Z"

    # A lender-side cancel of the device reopens the whole request, operator included.
    r = client.post(
        f"/bookings/{device['id']}/cancel", json={"reason": "broken"}, headers=p.w.manager
    )
    assert r.status_code == 200, r.text
    now = client.get(f"/requests/{named['id']}", headers=p.w.requester).json()
    assert (now["status"], now["reopen_code"]) == ("open", "resource_unavailable")
    assert status(client, p, operator["id"]) == "cancelled"


def test_serving_without_any_qualified_operator_is_refused(client, world):
    p = setup(world)
    with world.session() as s:
        for expert in (p.lena, p.otto):
            catalog.retire_resource(s, SYSTEM, Expert, expert, "left")
    request = ask(client, p).json()
    r = serve(client, p, request)
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "no_eligible_resource"
    assert count(client, p) == 0
