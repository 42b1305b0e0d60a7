"""Direct bookings: rules, conflicts, approvals, cancellation, check-in."""

from __future__ import annotations

from app.auth.models import Role
from tests.app.booking_world import build

MON = "2027-03-01"  # a Monday


def slot(day: str, start: str, end: str, zone_offset: str = "+01:00") -> dict[str, str]:
    return {"start": f"{day}T{start}:00{zone_offset}", "end": f"{day}T{end}:00{zone_offset}"}


def test_book_then_overlap_is_409_naming_the_slot(client, world):
    w = build(world)
    body = {
        "resource_id": str(w.expert),
        "project_id": str(w.project),
        **slot(MON, "10:00", "12:00"),
    }
    first = client.post("/bookings", json=body, headers=w.requester)
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "confirmed"
    clash = client.post(
        "/bookings", json={**body, **slot(MON, "11:00", "13:00")}, headers=w.requester
    )
    assert clash.status_code == 409, clash.text
    problem = clash.json()
    assert problem["code"] == "overlap"
    assert problem["conflicts"][0]["start"] == "2027-03-01T09:00:00+00:00"
    assert problem["conflicts"][0]["booking_id"] == first.json()["id"]
    touching = client.post(
        "/bookings", json={**body, **slot(MON, "12:00", "13:00")}, headers=w.requester
    )
    assert touching.status_code == 201, touching.text


def test_outside_working_hours_and_blackout_are_refused(client, world):
    w = build(world)
    base = {"resource_id": str(w.expert), "project_id": str(w.project)}
    early = client.post(
        "/bookings", json={**base, **slot(MON, "08:00", "10:00")}, headers=w.requester
    )
    assert early.status_code == 409
    assert early.json()["code"] == "outside_working_hours"
    saturday = client.post(
        "/bookings", json={**base, **slot("2027-03-06", "10:00", "11:00")}, headers=w.requester
    )
    assert saturday.json()["code"] == "outside_working_hours"
    leave = client.post(
        f"/experts/{w.expert}/leave", json=slot(MON, "00:00", "23:00"), headers=w.manager
    )
    assert leave.status_code == 201, leave.text
    blocked = client.post(
        "/bookings", json={**base, **slot(MON, "10:00", "11:00")}, headers=w.requester
    )
    assert blocked.status_code == 409
    assert blocked.json()["code"] == "unavailable"


def test_device_buffers_keep_bookings_apart(client, world):
    w = build(world)
    base = {"resource_id": str(w.device), "project_id": str(w.project)}
    assert (
        client.post(
            "/bookings", json={**base, **slot(MON, "10:00", "11:00")}, headers=w.requester
        ).status_code
        == 201
    )
    # 15 min tear-down after + 15 min set-up before: 11:20 is too early, 11:30 fits.
    too_close = client.post(
        "/bookings", json={**base, **slot(MON, "11:20", "12:00")}, headers=w.requester
    )
    assert too_close.status_code == 409
    assert (
        client.post(
            "/bookings", json={**base, **slot(MON, "11:30", "12:00")}, headers=w.requester
        ).status_code
        == 201
    )


def test_approval_flow_and_decline_frees_the_slot(client, world):
    w = build(world, requires_approval=True)
    body = {
        "resource_id": str(w.expert),
        "project_id": str(w.project),
        **slot(MON, "10:00", "12:00"),
    }
    booking = client.post("/bookings", json=body, headers=w.requester).json()
    assert booking["status"] == "pending_approval"
    # the borrower cannot approve its own loan
    assert (
        client.post(f"/bookings/{booking['id']}/approve", json={}, headers=w.requester).status_code
        == 403
    )
    declined = client.post(
        f"/bookings/{booking['id']}/decline", json={"reason": "busy"}, headers=w.manager
    )
    assert declined.status_code == 200, declined.text
    assert declined.json()["status"] == "declined"
    again = client.post("/bookings", json=body, headers=w.requester)
    assert again.status_code == 201
    approved = client.post(
        f"/bookings/{again.json()['id']}/approve", json={"reason": "ok"}, headers=w.manager
    )
    assert approved.json()["status"] == "confirmed"
    assert approved.json()["sequence"] == 1


def test_agreement_cap_and_lending_cap(client, world):
    w = build(world, hours_cap=3)
    base = {"resource_id": str(w.expert), "project_id": str(w.project)}
    assert (
        client.post(
            "/bookings", json={**base, **slot(MON, "09:00", "11:00")}, headers=w.requester
        ).status_code
        == 201
    )
    over = client.post(
        "/bookings", json={**base, **slot(MON, "13:00", "15:00")}, headers=w.requester
    )
    assert over.status_code == 409
    assert over.json()["code"] == "agreement_cap"


def test_lending_cap_limits_share_of_working_time(client, world):
    # 2% of March 2027's 23 working days × 8 h = 3.68 h
    w = build(world, lending_cap_bp=200)
    base = {"resource_id": str(w.expert), "project_id": str(w.project)}
    assert (
        client.post(
            "/bookings", json={**base, **slot(MON, "09:00", "12:00")}, headers=w.requester
        ).status_code
        == 201
    )
    over = client.post(
        "/bookings", json={**base, **slot("2027-03-02", "09:00", "10:00")}, headers=w.requester
    )
    assert over.status_code == 409
    assert over.json()["code"] == "lending_cap"


def test_cancel_frees_slot_and_outsider_sees_nothing(client, world):
    w = build(world)
    body = {
        "resource_id": str(w.expert),
        "project_id": str(w.project),
        **slot(MON, "10:00", "12:00"),
    }
    booking = client.post("/bookings", json=body, headers=w.requester).json()
    assert client.get(f"/bookings/{booking['id']}", headers=w.outsider).status_code == 404
    assert client.post("/bookings", json=body, headers=w.outsider).status_code == 404
    cancelled = client.post(
        f"/bookings/{booking['id']}/cancel", json={"reason": "plans changed"}, headers=w.requester
    )
    assert cancelled.json()["status"] == "cancelled"
    assert client.post("/bookings", json=body, headers=w.requester).status_code == 201


def test_bad_input_names_the_field(client, world):
    w = build(world)
    base = {"resource_id": str(w.expert), "project_id": str(w.project)}
    inverted = client.post(
        "/bookings",
        json={**base, "start": "2027-03-01T12:00:00+01:00", "end": "2027-03-01T10:00:00+01:00"},
        headers=w.requester,
    )
    assert inverted.status_code == 400
    assert inverted.json()["errors"][0]["field"] == "end"
    numeric = client.post("/bookings", json={**base, "start": 0, "end": 100}, headers=w.requester)
    assert numeric.status_code == 400
    naive = client.post(
        "/bookings",
        json={**base, "start": "2027-03-01T10:00:00", "end": "2027-03-01T11:00:00"},
        headers=w.requester,
    )
    assert naive.status_code == 400


def test_free_slot_search_and_free_busy(client, world):
    w = build(world)
    base = {"resource_id": str(w.expert), "project_id": str(w.project)}
    client.post("/bookings", json={**base, **slot(MON, "09:00", "13:00")}, headers=w.requester)
    found = client.get(
        "/availability/slots",
        params={
            "skill_id": str(w.skill),
            "min_level": 3,
            "duration_minutes": 120,
            "start": "2027-03-01T00:00:00Z",
            "end": "2027-03-08T00:00:00Z",
        },
        headers=w.requester,
    )
    assert found.status_code == 200, found.text
    assert found.json()[0]["start"] == "2027-03-01T12:00:00Z"
    too_skilled = client.get(
        "/availability/slots",
        params={
            "skill_id": str(w.skill),
            "min_level": 5,
            "duration_minutes": 120,
            "start": "2027-03-01T00:00:00Z",
            "end": "2027-03-08T00:00:00Z",
        },
        headers=w.requester,
    )
    assert too_skilled.json() == []
    hidden = client.get(
        "/availability/slots",
        params={
            "skill_id": str(w.skill),
            "duration_minutes": 60,
            "start": "2027-03-01T00:00:00Z",
            "end": "2027-03-08T00:00:00Z",
        },
        headers=w.outsider,
    )
    assert hidden.json() == []
    fb = client.get(
        f"/availability/resources/{w.expert}",
        params={"start": "2027-03-01T00:00:00Z", "end": "2027-03-02T00:00:00Z"},
        headers=w.requester,
    )
    assert fb.json()["busy"] == [["2027-03-01T08:00:00Z", "2027-03-01T12:00:00Z"]]
    assert fb.json()["free"] == [["2027-03-01T12:00:00Z", "2027-03-01T16:00:00Z"]]


def test_query_instants_must_be_rfc3339_with_offset(client, world):
    w = build(world)
    for params in ({"start": "0", "end": "2027-03-08T00:00:00Z"},
                   {"start": "2027-03-01T00:00:00", "end": "2027-03-08T00:00:00Z"},
                   {"start": "2027-03-01T00:00:00Z", "end": "next week"}):
        r = client.get("/availability/slots", params={
            "skill_id": str(w.skill), "duration_minutes": 60, **params}, headers=w.requester)
        assert r.status_code == 400, r.text
        assert r.json()["field"] in ("start", "end")
    audit = client.get("/audit-events", params={"since": "1700000000"},
                       headers=world.user("aud", "X", Role.AUDITOR))
    assert audit.status_code == 400
    assert audit.json()["field"] == "since"


def test_an_overlap_names_another_units_booking_only_as_a_busy_slot(client, world):
    from app.auth.models import Role
    from tests.app.booking_world import build

    w = build(world)
    lender = world.user("lm", "L", Role.UNIT_MANAGER)
    slot = {"resource_id": str(w.expert), "project_id": str(w.project),
            "start": "2027-03-01T10:00:00+01:00", "end": "2027-03-01T11:00:00+01:00"}
    own = client.post("/bookings", json=slot, headers=lender)
    assert own.status_code == 201, own.text
    refused = client.post("/bookings", json=slot, headers=w.requester)
    assert refused.status_code == 409 and refused.json()["code"] == "overlap"
    [conflict] = refused.json()["conflicts"]
    assert set(conflict) == {"start", "end"}  # B may not see L's booking: no id, no status
    again = client.post("/bookings", json=slot, headers=lender)
    assert again.json()["conflicts"][0]["booking_id"] == own.json()["id"]


def test_only_the_projects_people_act_for_the_borrower(client, world):
    from app.auth.models import Role
    from tests.app.booking_world import build

    w = build(world)
    stranger = world.user("stranger", "B", Role.REQUESTER)  # of unit B, not on the project
    slot = {"resource_id": str(w.expert), "project_id": str(w.project),
            "start": "2027-03-01T10:00:00+01:00", "end": "2027-03-01T11:00:00+01:00"}
    booking = client.post("/bookings", json=slot, headers=w.requester).json()
    refused = client.post(f"/bookings/{booking['id']}/cancel", json={"reason": "mine"},
                          headers=stranger)
    assert refused.status_code == 403, refused.text
    manager = world.user("bm", "B", Role.UNIT_MANAGER)  # the unit's manager may
    assert client.post(f"/bookings/{booking['id']}/cancel", json={"reason": "ok"},
                       headers=manager).status_code == 200
