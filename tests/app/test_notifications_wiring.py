"""Each wired transition writes exactly one event, to the right people (their inboxes)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.bookings import services as bookings
from app.bookings.models import Booking
from app.notifications.models import NotificationDelivery, NotificationEvent
from tests.app.booking_world import Lending, build
from tests.app.conftest import World

MON = "2027-03-01"


def at(start: str, end: str) -> dict[str, str]:
    return {"start": f"{MON}T{start}:00+01:00", "end": f"{MON}T{end}:00+01:00"}


def book(client: Any, w: Lending, resource: uuid.UUID, span: dict[str, str]) -> dict[str, Any]:
    r = client.post(
        "/bookings",
        json={"resource_id": str(resource), "project_id": str(w.project), **span},
        headers=w.requester,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def told(world: World) -> list[tuple[str, str, frozenset[str]]]:
    """Every event so far: (kind, subject id, the names of the users whose inbox has it)."""
    names = {v: k for k, v in world.users.items()}
    with world.session() as s:
        events = s.scalars(select(NotificationEvent).order_by(NotificationEvent.id)).all()
        inbox = s.execute(
            select(NotificationDelivery.event_id, NotificationDelivery.user_id).where(
                NotificationDelivery.channel == "inbox"
            )
        ).all()
    return [
        (
            e.kind,
            str(e.subject_id),
            frozenset(names[u] for ev, u in inbox if ev == e.id and u is not None),
        )
        for e in events
    ]


def test_approval_needed_approved_and_cancel_by_the_other_side(client: Any, world: World) -> None:
    w = build(world, requires_approval=True)
    first = book(client, w, w.expert, at("09:00", "10:00"))
    assert first["status"] == "pending_approval"
    assert told(world) == [("approval_needed", first["id"], frozenset({"rm"}))]
    ok = client.post(f"/bookings/{first['id']}/approve", json={"reason": "fine"}, headers=w.manager)
    assert ok.status_code == 200, ok.text
    assert told(world)[1:] == [("approved", first["id"], frozenset({"req", "lead"}))]
    gone = client.post(
        f"/bookings/{first['id']}/cancel", json={"reason": "no"}, headers=w.requester
    )
    assert gone.status_code == 200, gone.text
    assert told(world)[2:] == [("cancelled", first["id"], frozenset({"rm"}))]


def test_declined_tells_the_borrower_side(client: Any, world: World) -> None:
    w = build(world, requires_approval=True)
    b = book(client, w, w.expert, at("11:00", "12:00"))
    no = client.post(f"/bookings/{b['id']}/decline", json={"reason": "busy"}, headers=w.manager)
    assert no.status_code == 200, no.text
    assert told(world)[1:] == [("declined", b["id"], frozenset({"req", "lead"}))]


def test_a_cancel_by_the_lender_tells_the_borrower(client: Any, world: World) -> None:
    w = build(world)
    b = book(client, w, w.expert, at("09:00", "10:00"))
    assert told(world) == []  # confirmed at once: nobody needs to act
    r = client.post(f"/bookings/{b['id']}/cancel", json={"reason": "ill"}, headers=w.manager)
    assert r.status_code == 200, r.text
    assert told(world) == [("cancelled", b["id"], frozenset({"req", "lead"}))]


def test_leave_over_a_booking_tells_both_sides(client: Any, world: World) -> None:
    w = build(world)
    b = book(client, w, w.expert, at("13:00", "15:00"))
    leave = {**at("12:00", "16:00"), "note": "leave", "force": True}
    r = client.post(f"/experts/{w.expert}/leave", json=leave, headers=w.manager)
    assert r.status_code == 201, r.text
    # the manager placed the leave: the lender side's other managers would be told, not them
    assert told(world) == [("unavailable_over_booking", b["id"], frozenset({"req", "lead"}))]


def test_agreement_terminated_tells_both_units_managers(client: Any, world: World) -> None:
    w = build(world)
    boss = world.user("boss", "L", Role.UNIT_MANAGER)
    world.user("bboss", "B", Role.UNIT_MANAGER)
    r = client.post(f"/agreements/{w.agreement}/terminate", json={"reason": "over"}, headers=boss)
    assert r.status_code == 200, r.text
    assert told(world) == [("agreement_ending", str(w.agreement), frozenset({"bboss"}))]


def test_no_show_release_by_the_sweep_tells_both_sides(client: Any, world: World) -> None:
    w = build(world)
    b = book(client, w, w.device, at("09:00", "10:00"))
    with world.session() as s:
        booking = s.get(Booking, uuid.UUID(b["id"]))
        assert booking is not None
        counts = bookings.sweep(s, SYSTEM, now=booking.start + timedelta(hours=1))
    assert counts["released"] == 1
    assert told(world) == [("no_show_released", b["id"], frozenset({"rm", "req", "lead"}))]


def test_an_overdue_pledge_is_told_once(client: Any, world: World) -> None:
    from app.notifications.pledges import overdue

    w = build(world, funds=0)
    b_boss = world.user("bboss", "B", Role.UNIT_MANAGER)
    made = client.post(
        f"/projects/{w.project}/funds/pledges",
        json={"unit_id": str(w.borrower), "amount": 60_000},
        headers=b_boss,
    )
    assert made.status_code == 201, made.text
    later = datetime.now(UTC) + timedelta(days=31)
    with world.session() as s:
        assert overdue(s, datetime.now(UTC), 30) == 0  # not due yet
        assert overdue(s, later, 30) == 1
    with world.session() as s:
        assert overdue(s, later, 30) == 0  # told once
    ((kind, _, people),) = told(world)
    assert kind == "pledge_overdue" and people == {"bboss", "lead"}


def test_a_finished_run_tells_its_unit_and_budget_refusals_tell_the_requests_people(
    client: Any, app: Any, world: World, settings: Any
) -> None:
    from app.allocation.models import AllocationRun
    from app.jobs.tasks import Runtime
    from app.notifications import jobs as notification_jobs
    from tests.app.test_cascades import ask, skill

    w = build(world)
    request = ask(client, w, skill(w))
    with world.session() as s:
        run = AllocationRun(
            created_by=world.users["req"],
            unit_id=w.borrower,
            status="done",
            horizon_start=datetime(2027, 3, 1, tzinfo=UTC),
            horizon_end=datetime(2027, 3, 6, tzinfo=UTC),
            result={
                "assignments": [],
                "unallocated": [
                    {"request_id": request["id"], "reasons": [{"code": "budget_short"}]}
                ],
            },
        )
        s.add(run)
        s.flush()
        run_id = run.id
    rt = Runtime(settings)
    try:
        notification_jobs.run_finished(rt, run_id)
    finally:
        rt.close()
    assert sorted(told(world)) == [
        ("budget_refused", request["id"], frozenset({"req", "lead"})),
        ("run_done", str(run_id), frozenset({"req", "lead"})),
    ]


def test_a_displaced_request_tells_the_borrower_side_once_per_booking(
    client: Any, world: World
) -> None:
    from app.bookings.models import ReopenCode, Request
    from tests.app.test_cascades import ask, serve, skill

    w = build(world)
    request = ask(client, w, skill(w))
    (served,) = serve(client, w, request)
    with world.session() as s:
        row = bookings.lock_request(s, uuid.UUID(request["id"]))
        assert isinstance(row, Request)
        bookings.reopen_request(s, SYSTEM, row, ReopenCode.DISPLACED_BY, "an emergency")
    assert told(world) == [("displaced", served["id"], frozenset({"req", "lead"}))]


def test_withdrawing_a_served_request_tells_the_lender_of_each_booking(
    client: Any, world: World
) -> None:
    w = build(world)
    ask = client.post(
        "/requests",
        json={
            "project_id": str(w.project),
            "title": "Survey",
            "duration_minutes": 60,
            "window_start": f"{MON}T08:00:00+01:00",
            "window_end": f"{MON}T18:00:00+01:00",
            "requirements": [{"kind": "skill", "skill_id": str(w.skill), "min_level": 1}],
        },
        headers=w.requester,
    )
    assert ask.status_code == 201, ask.text
    served = client.post(f"/requests/{ask.json()['id']}/serve", headers=w.requester)
    assert served.status_code == 200, served.text
    [booking] = served.json()["bookings"]
    before = told(world)
    gone = client.post(
        f"/requests/{ask.json()['id']}/cancel",
        json={"reason": "plans changed"},
        headers=w.requester,
    )
    assert gone.status_code == 200, gone.text
    assert told(world)[len(before) :] == [("cancelled", booking["id"], frozenset({"rm"}))]
