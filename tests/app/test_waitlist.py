"""The waitlist: a cancellation frees an hour that three waiting requests want; the re-plan
(the runs' snapshot, solver and apply path) books or offers it to the best-placed one and
the others stay waiting. Offers: declined or expired, the time passes to the next; two
accepts of the same slot at once, one wins. Every test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update

from app.allocation.models import AllocationRun
from app.bookings import waitlist
from app.bookings.models import Booking, FreedWindow, Request, WaitlistOffer
from app.jobs.local import LocalWorker
from app.notifications.models import NotificationEvent
from tests.app.booking_world import Lending, build

MONDAY = date(2027, 3, 8)
TEN = datetime(2027, 3, 8, 10, tzinfo=ZoneInfo("Europe/Berlin")).astimezone(UTC)
HOUR = timedelta(hours=1)


def taken_hour(client: Any, w: Lending) -> str:
    """Eva booked directly 10:00–11:00 Berlin on a Monday; the booking's id."""
    made = client.post(
        "/bookings",
        headers=w.requester,
        json={
            "resource_id": str(w.expert),
            "project_id": str(w.project),
            "start": TEN.isoformat(),
            "end": (TEN + HOUR).isoformat(),
        },
    )
    assert made.status_code == 201, made.text
    booking_id: str = made.json()["id"]
    return booking_id


def waiting(client: Any, w: Lending, title: str, priority: int, **extra: Any) -> str:
    """A request for an hydrologist in exactly that hour, waiting for freed time."""
    made = client.post(
        "/requests",
        headers=w.requester,
        json={
            "project_id": str(w.project),
            "title": title,
            "requirements": [{"kind": "skill", "skill_id": str(w.skill)}],
            "duration_minutes": 60,
            "window_start": TEN.isoformat(),
            "window_end": (TEN + HOUR).isoformat(),
            "priority": priority,
            "waitlist": True,
            **extra,
        },
    )
    assert made.status_code == 201, made.text
    request_id: str = made.json()["id"]
    return request_id


def three_waiting(client: Any, w: Lending, **extra: Any) -> dict[str, str]:
    booking = taken_hour(client, w)
    ids = {
        "low": waiting(client, w, "Survey low", 2, **extra),
        "best": waiting(client, w, "Survey urgent", 5, **extra),
        "mid": waiting(client, w, "Survey mid", 3, **extra),
    }
    cancelled = client.post(
        f"/bookings/{booking}/cancel", json={"reason": "plans changed"}, headers=w.requester
    )
    assert cancelled.status_code == 200, cancelled.text
    return ids


def replan(world: Any) -> dict[str, int]:
    with world.session() as s:
        return waitlist.replan(s)


def offers(client: Any, w: Lending, request_id: str) -> list[dict[str, Any]]:
    answer = client.get(f"/requests/{request_id}/offers", headers=w.requester)
    assert answer.status_code == 200, answer.text
    result: list[dict[str, Any]] = answer.json()
    return result


def status(client: Any, w: Lending, request_id: str) -> str:
    value: str = client.get(f"/requests/{request_id}", headers=w.requester).json()["status"]
    return value


def test_a_cancellation_is_offered_to_the_best_placed_request(client: Any, world: Any) -> None:
    w = build(world)
    ids = three_waiting(client, w)
    with world.session() as s:
        freed = s.scalars(select(FreedWindow)).all()
    assert [(f.start, f.end, f.cause) for f in freed] == [(TEN, TEN + HOUR, "cancelled")]

    assert replan(world)["offered"] == 1
    best = offers(client, w, ids["best"])
    assert [(o["status"], o["rank"], o["resource_ids"]) for o in best] == [
        ("open", 0, [str(w.expert)])
    ]
    assert (_at(best[0]["start"]), _at(best[0]["end"])) == (TEN, TEN + HOUR)
    for other in ("low", "mid"):
        assert offers(client, w, ids[other]) == []
        assert status(client, w, ids[other]) == "open"
    with world.session() as s:
        told = s.scalars(
            select(NotificationEvent).where(NotificationEvent.kind == "waitlist_offer")
        )
        assert [e.subject_id for e in told] == [uuid.UUID(best[0]["id"])]
    assert replan(world)["offered"] == 0  # the window is done; nobody else is offered it

    accepted = client.post(f"/offers/{best[0]['id']}/accept", headers=w.requester)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["status"] == "accepted"
    booking = client.get(f"/bookings/{accepted.json()['booking_ids'][0]}", headers=w.requester)
    assert booking.json()["status"] == "confirmed"
    assert _at(booking.json()["start"]) == TEN
    assert status(client, w, ids["best"]) == "confirmed"
    assert status(client, w, ids["mid"]) == "open"


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


def test_auto_accept_books_the_best_placed_at_once(client: Any, world: Any) -> None:
    w = build(world)
    ids = three_waiting(client, w, auto_accept=True)
    assert replan(world)["booked"] == 1
    assert status(client, w, ids["best"]) == "confirmed"
    assert status(client, w, ids["low"]) == status(client, w, ids["mid"]) == "open"
    with world.session() as s:
        live = s.scalars(select(Booking).where(Booking.request_id == uuid.UUID(ids["best"]))).all()
    assert [(b.start, b.status) for b in live] == [(TEN, "confirmed")]


def test_a_live_in_process_worker_offers_the_freed_hour(
    client: Any, world: Any, settings: Any
) -> None:
    w = build(world)
    worker = LocalWorker(settings, periodic_after_s=0)  # what `copool serve` starts
    worker.start()
    try:
        ids = three_waiting(client, w)
        freed_at = time.monotonic()
        deadline = freed_at + 60
        while time.monotonic() < deadline and not offers(client, w, ids["best"]):
            time.sleep(0.2)  # polling the outcome, not timing anything
        print(f"waitlist: offered {time.monotonic() - freed_at:.1f} s after the cancellation")
    finally:
        worker.stop()
    assert [o["status"] for o in offers(client, w, ids["best"])] == ["open"]
    assert offers(client, w, ids["low"]) == offers(client, w, ids["mid"]) == []


def test_declined_and_expired_offers_pass_to_the_next(client: Any, world: Any) -> None:
    w = build(world)
    ids = three_waiting(client, w)
    replan(world)
    first = offers(client, w, ids["best"])[0]
    declined = client.post(f"/offers/{first['id']}/decline", headers=w.requester)
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert replan(world)["offered"] == 1
    second = offers(client, w, ids["mid"])
    assert [o["status"] for o in second] == ["open"]
    assert offers(client, w, ids["low"]) == []

    with world.session() as s:  # its deadline passes
        s.execute(
            update(WaitlistOffer)
            .where(WaitlistOffer.id == uuid.UUID(second[0]["id"]))
            .values(deadline=datetime.now(UTC) - timedelta(minutes=1))
        )
    late = client.post(f"/offers/{second[0]['id']}/accept", headers=w.requester)
    assert late.status_code == 409 and late.json()["code"] == "offer_expired"
    result = replan(world)
    assert (result["expired"], result["offered"]) == (1, 1)
    assert [o["status"] for o in offers(client, w, ids["mid"])] == ["expired"]
    assert [o["status"] for o in offers(client, w, ids["low"])] == ["open"]
    again = client.post(f"/offers/{first['id']}/accept", headers=w.requester)
    assert again.status_code == 409 and again.json()["code"] == "wrong_status"


def test_two_accepts_of_one_slot_at_once_one_wins(client: Any, world: Any, app: Any) -> None:
    """Two offers of the same hour to different requests (an offer made by an older re-plan
    still open, say), accepted by two threads released by one barrier."""
    w = build(world)
    ids = three_waiting(client, w)
    replan(world)
    first = offers(client, w, ids["best"])[0]
    with world.session() as s:
        rival = WaitlistOffer(
            request_id=uuid.UUID(ids["mid"]),
            window_id=None,
            resource_ids=[str(w.expert)],
            start=TEN,
            end=TEN + HOUR,
            cost=first["cost"],
            rank=1,
            status="open",
            deadline=datetime.now(UTC) + HOUR,
            booking_ids=[],
        )
        s.add(rival)
        s.flush()
        rival_id = str(rival.id)
    from litestar.testing import TestClient

    barrier = threading.Barrier(2)
    answers: dict[str, int] = {}

    def accept(offer_id: str) -> None:
        # a client of its own without a second lifespan (the app's runs for the test)
        own = TestClient(app=app)
        try:
            barrier.wait(timeout=120)  # a thread that fails first breaks it: no hang
            answers[offer_id] = own.post(
                f"/offers/{offer_id}/accept", headers=w.requester
            ).status_code
        finally:
            own.close()

    threads = [threading.Thread(target=accept, args=(o,)) for o in (first["id"], rival_id)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(answers.values()) == [200, 409], answers
    with world.session() as s:
        live = s.scalars(
            select(Booking).where(Booking.resource_id == w.expert, Booking.status == "confirmed")
        ).all()
        statuses = {
            str(r.id): r.status
            for r in s.scalars(
                select(Request).where(
                    Request.id.in_([uuid.UUID(ids["best"]), uuid.UUID(ids["mid"])])
                )
            )
        }
    assert len(live) == 1  # one booking of the hour, never two
    assert sorted(statuses.values()) == ["confirmed", "open"]


def test_a_request_left_out_for_capacity_waits_unless_it_said_no(client: Any, world: Any) -> None:
    """``waitlist`` left out: the request waits once the latest applied run that considered
    it left it out for capacity; ``waitlist: false`` never waits."""
    w = build(world)
    booking = taken_hour(client, w)
    undecided = waiting(client, w, "Left out", 4, waitlist=None)
    refused = waiting(client, w, "Never wait", 5, waitlist=False)
    other = waiting(client, w, "Left out for a budget", 3, waitlist=None)
    with world.session() as s:  # what an applied run that left them out records
        user = s.get(Request, uuid.UUID(undecided)).created_by
        run = AllocationRun(
            created_by=user,
            unit_id=w.borrower,
            status="done",
            horizon_start=TEN,
            horizon_end=TEN + HOUR,
            project_ids=[],
            unit_ids=[],
            applied_at=datetime.now(UTC),
            result={
                "assignments": [],
                "unallocated": [
                    {"request_id": r, "reasons": [{"code": code}]}
                    for r, code in (
                        (undecided, "no_capacity"),
                        (refused, "no_capacity"),
                        (other, "budget_short"),
                    )
                ],
            },
        )
        s.add(run)
    client.post(f"/bookings/{booking}/cancel", json={"reason": "x"}, headers=w.requester)
    assert replan(world)["offered"] == 1
    assert [o["status"] for o in offers(client, w, undecided)] == ["open"]
    assert offers(client, w, refused) == offers(client, w, other) == []


def test_moves_declines_and_releases_free_time(client: Any, world: Any) -> None:
    """Each way a live booking gives up time writes the window it held."""
    w = build(world)
    moved = taken_hour(client, w)
    shifted = client.patch(
        f"/bookings/{moved}", json={"start": (TEN + 2 * HOUR).isoformat()}, headers=w.requester
    )
    assert shifted.status_code == 200, shifted.text
    shortened = client.patch(
        f"/bookings/{moved}",
        json={"end": (TEN + 2 * HOUR + HOUR / 2).isoformat()},
        headers=w.requester,
    )
    assert shortened.status_code == 200, shortened.text
    with world.session() as s:
        freed = [
            (f.start, f.end, f.cause)
            for f in s.scalars(select(FreedWindow).order_by(FreedWindow.created_at))
        ]
    assert freed == [(TEN, TEN + HOUR, "moved"), (TEN + 2 * HOUR, TEN + 3 * HOUR, "moved")]
