"""Cascades that keep requests whole (issue 9, finding 8).

A request is served whole or not at all, and what follows it follows it: dependents of a
cancelled, declined or reopened request go back to open; a lender-side cancel reopens the
request; leave, blackouts, imported busy time and an agreement's end over live bookings
are refused unless forced, and when forced they release the bookings.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.models import Role
from tests.app.booking_world import Lending, build

MON = "2027-03-01"  # a Monday; Berlin is UTC+1
WINDOW = {"window_start": f"{MON}T09:00:00+01:00", "window_end": f"{MON}T17:00:00+01:00"}


def at(day: str, start: str, end: str) -> dict[str, str]:
    return {"start": f"{day}T{start}:00+01:00", "end": f"{day}T{end}:00+01:00"}


def book_direct(client: Any, w: Lending, resource: Any, span: dict[str, str]) -> Any:
    """A direct booking of ``resource`` for the project over ``span`` (the answer, 201)."""
    r = client.post(
        "/bookings",
        json={"resource_id": str(resource), "project_id": str(w.project), **span},
        headers=w.requester,
    )
    assert r.status_code == 201, r.text
    return r


def backfill_direct(
    client: Any, world: Any, w: Lending, resource: Any, span: dict[str, str]
) -> Any:
    """A booking that has already ended, recorded by an admin (``backfill``), 201."""
    if "root" not in world.tokens:
        world.user("root", "ADM", Role.ADMIN)
    r = client.post(
        "/bookings",
        json={"resource_id": str(resource), "project_id": str(w.project), "backfill": True, **span},
        headers=world.headers("root"),
    )
    assert r.status_code == 201, r.text
    return r


def ask(client: Any, w: Lending, *requirements: dict[str, Any], **extra: Any) -> dict[str, Any]:
    body = {
        "project_id": str(w.project),
        "title": "Survey",
        "requirements": list(requirements),
        "duration_minutes": 60,
        **WINDOW,
        **extra,
    }
    r = client.post("/requests", json=body, headers=w.requester)
    assert r.status_code == 201, r.text
    return r.json()


def serve(client: Any, w: Lending, request: dict[str, Any]) -> list[dict[str, Any]]:
    r = client.post(f"/requests/{request['id']}/serve", headers=w.requester)
    assert r.status_code == 200, r.text
    return r.json()["bookings"]


def skill(w: Lending) -> dict[str, Any]:
    return {"kind": "skill", "skill_id": str(w.skill)}


def drone(w: Lending) -> dict[str, Any]:
    return {"kind": "device_type", "device_type_id": str(w.device_type)}


def request_of(client: Any, w: Lending, request: dict[str, Any]) -> dict[str, Any]:
    r = client.get(f"/requests/{request['id']}", headers=w.requester)
    assert r.status_code == 200, r.text
    return r.json()


def booking(client: Any, w: Lending, booking_id: str) -> dict[str, Any]:
    r = client.get(f"/bookings/{booking_id}", headers=w.requester)
    assert r.status_code == 200, r.text
    return r.json()


def statuses(client: Any, w: Lending, bookings: list[dict[str, Any]]) -> set[str]:
    return {booking(client, w, b["id"])["status"] for b in bookings}


def audit_actions(world: Any, object_id: str) -> list[str]:
    with world.session() as s:
        return list(
            s.scalars(
                select(AuditEvent.action)
                .where(AuditEvent.object_id == object_id)
                .order_by(AuditEvent.at, AuditEvent.id)
            )
        )


def chain(client: Any, w: Lending) -> tuple[dict[str, Any], ...]:
    """Served requests a ← b ← c (each depends on the one before), and an open d ← a."""
    a = ask(client, w, skill(w))
    a_bookings = serve(client, w, a)
    b = ask(client, w, drone(w), depends_on_id=a["id"])
    b_bookings = serve(client, w, b)
    c = ask(client, w, skill(w), depends_on_id=b["id"])
    c_bookings = serve(client, w, c)
    d = ask(client, w, drone(w), depends_on_id=a["id"])
    return a, a_bookings, b, b_bookings, c, c_bookings, d


# --- dependents follow the request they depend on ------------------------------------------


def test_cancelling_a_request_reopens_its_served_dependents_down_the_chain(client, world):
    w = build(world)
    a, _, b, b_bookings, c, c_bookings, d = chain(client, w)
    assert request_of(client, w, b)["status"] == "confirmed"
    r = client.post(
        f"/requests/{a['id']}/cancel", json={"reason": "budget cut"}, headers=w.requester
    )
    assert r.status_code == 200, r.text
    for dependent, held in ((b, b_bookings), (c, c_bookings)):
        now = request_of(client, w, dependent)
        assert now["status"] == "open"
        assert now["reopen_code"] == "dependency_cancelled"
        assert statuses(client, w, held) == {"cancelled"}
        assert "request.reopen" in audit_actions(world, dependent["id"])
    assert "was cancelled: budget cut" in request_of(client, w, b)["status_reason"]
    # A dependent that held nothing stays as it was.
    untouched = request_of(client, w, d)
    assert untouched["status"] == "open" and untouched["reopen_code"] is None


def test_a_declined_request_reopens_its_dependents(client, world):
    w = build(world, requires_approval=True)
    a = ask(client, w, skill(w))
    (a_booking,) = serve(client, w, a)
    b = ask(client, w, drone(w), depends_on_id=a["id"])
    b_bookings = serve(client, w, b)
    assert request_of(client, w, b)["status"] == "pending_approval"
    r = client.post(
        f"/bookings/{a_booking['id']}/decline", json={"reason": "not then"}, headers=w.manager
    )
    assert r.status_code == 200, r.text
    assert request_of(client, w, a)["status"] == "declined"
    now = request_of(client, w, b)
    assert (now["status"], now["reopen_code"]) == ("open", "dependency_cancelled")
    assert statuses(client, w, b_bookings) == {"cancelled"}


def test_a_cancelled_last_booking_cancels_the_request_and_reopens_dependents(client, world):
    w = build(world)
    a = ask(client, w, skill(w))
    (a_booking,) = serve(client, w, a)
    b = ask(client, w, drone(w), depends_on_id=a["id"])
    b_bookings = serve(client, w, b)
    r = client.post(
        f"/bookings/{a_booking['id']}/cancel", json={"reason": "changed plans"}, headers=w.requester
    )
    assert r.status_code == 200, r.text
    # A borrower-side cancel of the request's last booking still cancels the request...
    assert request_of(client, w, a)["status"] == "cancelled"
    # ... and what followed it goes back to open.
    assert request_of(client, w, b)["reopen_code"] == "dependency_cancelled"
    assert statuses(client, w, b_bookings) == {"cancelled"}


# --- a lender-side cancel reopens the request --------------------------------------------------


def test_lender_cancel_of_one_booking_reopens_the_whole_request_and_its_dependents(client, world):
    w = build(world)
    a = ask(client, w, skill(w), drone(w))
    a_bookings = serve(client, w, a)
    assert len(a_bookings) == 2
    b = ask(client, w, skill(w), depends_on_id=a["id"])
    b_bookings = serve(client, w, b)
    device_booking = next(x for x in a_bookings if x["resource_id"] == str(w.device))
    r = client.post(
        f"/bookings/{device_booking['id']}/cancel",
        json={"reason": "rotor broke"},
        headers=w.manager,
    )
    assert r.status_code == 200, r.text
    assert r.json()["status_reason"] == "lender: rotor broke"
    now = request_of(client, w, a)
    assert (now["status"], now["reopen_code"]) == ("open", "resource_unavailable")
    assert "rotor broke" in now["status_reason"]
    # Not half-served: the expert's booking went with the device's.
    assert statuses(client, w, a_bookings) == {"cancelled"}
    assert request_of(client, w, b)["reopen_code"] == "dependency_cancelled"
    assert statuses(client, w, b_bookings) == {"cancelled"}
    # The reopened request can be served again.
    assert len(serve(client, w, a)) == 2


# --- leave, blackouts, busy time and an agreement's end over live bookings --------------------


def test_leave_over_live_bookings_is_refused_then_forced(client, world):
    w = build(world, funds=1_000_000)
    direct = book_direct(client, w, w.expert, at(MON, "13:00", "15:00"))
    a = ask(client, w, skill(w), drone(w))
    a_bookings = serve(client, w, a)  # 09:00-10:00, expert and drone
    statement = client.get(f"/projects/{w.project}/funds/statement", headers=w.requester).json()
    assert statement["held"] > 0
    leave = {**at(MON, "09:30", "14:00"), "note": "private: surgery"}

    refused = client.post(f"/experts/{w.expert}/leave", json=leave, headers=w.manager)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["code"] == "affects_bookings" and problem["field"] == "force"
    expert_booking = next(x for x in a_bookings if x["resource_id"] == str(w.expert))
    assert {c["id"]: c["request_id"] for c in problem["conflicts"]} == {
        expert_booking["id"]: a["id"],
        direct.json()["id"]: None,
    }
    assert problem["conflicts"][0]["start"] == "2027-03-01T08:00:00+00:00"
    assert problem["conflicts"][0]["status"] == "confirmed"
    # Nothing was written.
    assert client.get(f"/experts/{w.expert}/leave", headers=w.manager).json()["items"] == []
    assert statuses(client, w, a_bookings) == {"confirmed"}

    forced = client.post(
        f"/experts/{w.expert}/leave", json={**leave, "force": True}, headers=w.manager
    )
    assert forced.status_code == 201, forced.text
    now = request_of(client, w, a)
    assert (now["status"], now["reopen_code"]) == ("open", "resource_unavailable")
    assert statuses(client, w, a_bookings) == {"cancelled"}  # the drone's too
    cancelled = booking(client, w, direct.json()["id"])
    assert cancelled["status"] == "cancelled"
    assert "on leave" in cancelled["status_reason"] and "surgery" not in cancelled["status_reason"]
    statement = client.get(f"/projects/{w.project}/funds/statement", headers=w.requester).json()
    assert statement["held"] == 0 and statement["spent"] == 0  # holds released, no fee
    assert "booking.cancel" in audit_actions(world, direct.json()["id"])
    assert "booking.resource_unavailable" in audit_actions(world, expert_booking["id"])


def test_leave_over_completed_or_other_time_is_not_refused(client, world):
    w = build(world)
    past = backfill_direct(client, world, w, w.expert, at("2025-03-03", "10:00", "11:00"))
    done = client.post(f"/bookings/{past.json()['id']}/complete", json={}, headers=w.requester)
    assert done.status_code == 200, done.text
    later = book_direct(client, w, w.expert, at(MON, "15:00", "16:00"))
    for span in (at("2025-03-03", "09:00", "12:00"), at(MON, "09:00", "15:00")):
        r = client.post(f"/experts/{w.expert}/leave", json=span, headers=w.manager)
        assert r.status_code == 201, r.text
    assert booking(client, w, past.json()["id"])["status"] == "completed"
    assert booking(client, w, later.json()["id"])["status"] == "confirmed"


def test_blackout_over_a_direct_booking_is_refused_then_forced(client, world):
    w = build(world)
    direct = book_direct(client, w, w.device, at(MON, "10:00", "11:00"))
    blackout = at(MON, "08:00", "10:30")
    refused = client.post(f"/devices/{w.device}/blackouts", json=blackout, headers=w.manager)
    assert refused.status_code == 409, refused.text
    assert [c["id"] for c in refused.json()["conflicts"]] == [direct.json()["id"]]
    assert client.get(f"/devices/{w.device}/blackouts", headers=w.manager).json()["items"] == []
    forced = client.post(
        f"/devices/{w.device}/blackouts", json={**blackout, "force": True}, headers=w.manager
    )
    assert forced.status_code == 201, forced.text
    gone = booking(client, w, direct.json()["id"])
    assert gone["status"] == "cancelled" and "maintenance" in gone["status_reason"]
    events = audit_actions(world, forced.json()["id"])
    assert events == ["maintenance.create"]


BUSY_ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:busy-1@example.org
DTSTAMP:20261201T000000Z
DTSTART:20270301T090000Z
DTEND:20270301T100000Z
SUMMARY:Dentist
END:VEVENT
END:VCALENDAR
"""


def test_busy_import_over_a_request_booking_is_refused_then_forced(client, world):
    w = build(world)
    a = ask(client, w, skill(w), drone(w))
    a_bookings = serve(client, w, a)  # 08:00-09:00 UTC
    later = book_direct(client, w, w.expert, at(MON, "10:00", "11:00"))  # 09-10 UTC: busy
    headers = {**w.manager, "Content-Type": "text/calendar"}
    refused = client.post(f"/experts/{w.expert}/busy-import", content=BUSY_ICS, headers=headers)
    assert refused.status_code == 409, refused.text
    assert refused.json()["code"] == "affects_bookings"
    assert [c["id"] for c in refused.json()["conflicts"]] == [later.json()["id"]]
    forced = client.post(
        f"/experts/{w.expert}/busy-import?force=true", content=BUSY_ICS, headers=headers
    )
    assert forced.status_code == 200, forced.text
    assert forced.json()["released"] == [later.json()["id"]]
    assert booking(client, w, later.json()["id"])["status"] == "cancelled"
    # The request's bookings end where the busy time starts: they stay.
    assert statuses(client, w, a_bookings) == {"confirmed"}


def test_terminating_an_agreement_over_live_loans_is_refused_then_forced(client, world):
    w = build(world)
    boss = world.user("um", "L", Role.UNIT_MANAGER)
    a = ask(client, w, skill(w))
    (a_booking,) = serve(client, w, a)
    direct = book_direct(client, w, w.device, at(MON, "12:00", "13:00"))
    refused = client.post(
        f"/agreements/{w.agreement}/terminate", json={"reason": "reorg"}, headers=boss
    )
    assert refused.status_code == 409, refused.text
    assert {c["id"] for c in refused.json()["conflicts"]} == {a_booking["id"], direct.json()["id"]}
    assert client.get(f"/agreements/{w.agreement}", headers=boss).json()["terminated_at"] is None
    forced = client.post(
        f"/agreements/{w.agreement}/terminate",
        json={"reason": "reorg", "force": True},
        headers=boss,
    )
    assert forced.status_code == 200, forced.text
    assert forced.json()["terminated_at"] is not None
    now = request_of(client, w, a)
    assert (now["status"], now["reopen_code"]) == ("open", "resource_unavailable")
    gone = booking(client, w, direct.json()["id"])
    assert gone["status"] == "cancelled"
    assert gone["status_reason"] == "the agreement it ran under was terminated: reorg"
    assert "agreement.terminate" in audit_actions(world, str(w.agreement))
