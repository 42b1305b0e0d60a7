"""Races through the real HTTP app: many clients book one resource at the same instant.

A uvicorn server runs the app in a subprocess (one or two worker processes) on the test
database; 50 threads, each with its own HTTP connection, wait at a barrier and then book
slots of one resource that all clash with each other. Exactly one of them may win, the
others get a 409 naming the winner's slot — never a 500, never a second booking. One
server serves every trial of a variant, so the test stays quick.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.bookings.models import LIVE_STATUSES, Booking
from tests.app.booking_world import Lending, build
from tests.app.live_server import live_server, together

pytestmark = pytest.mark.slow

CLIENTS = 50
TRIALS = 20
REBOOK_ROUNDS = 2
# The first Monday of the trials; each trial books a later weekday, 09:00 local (UTC+1).
FIRST_DAY = datetime(2027, 1, 4, 8, 0, tzinfo=UTC)

VARIANTS = [("sqlite", 1), ("postgresql", 1), ("postgresql", 2)]

STUCK = ("requests timed out: the server stalled under 50 concurrent bookings. A transaction "
         "that holds SQLite's writer lock or a PostgreSQL row lock must be able to commit "
         "without a free worker thread (the session's commit runs in before_send)")


def _timed_out(errors: list[Any]) -> bool:
    return any(isinstance(e, httpx.TimeoutException) for e in errors)


def _live_count(world: Any, resource_id: uuid.UUID, start: datetime, end: datetime) -> int:
    with world.session() as s:
        return int(s.scalar(select(func.count()).select_from(Booking).where(
            Booking.resource_id == resource_id, Booking.status.in_(LIVE_STATUSES),
            Booking.start < end, Booking.end > start)) or 0)


def _trial_slots(w: Lending, trial: int) -> tuple[uuid.UUID, list[tuple[datetime, datetime]]]:
    """One resource and 50 slots of it that pairwise clash.

    Even trials: the expert, one hour from 09:00 + i·48 s — every pair overlaps outright.
    Odd trials: the drone (15 min set-up and tear-down), ten minutes from 10:00 + i·47 s —
    slots far apart do not overlap, but their blocks (buffers included) all do.
    """
    day = FIRST_DAY + timedelta(days=7 * (trial // 5) + trial % 5)
    if trial % 2 == 0:
        starts = [day + timedelta(seconds=48 * i) for i in range(CLIENTS)]
        return w.expert, [(s, s + timedelta(hours=1)) for s in starts]
    starts = [day + timedelta(hours=1, seconds=47 * i) for i in range(CLIENTS)]
    return w.device, [(s, s + timedelta(minutes=10)) for s in starts]


@pytest.fixture(autouse=True)
def _admit_every_racer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Admit all CLIENTS racers at once (``app.admission`` bounds a worker to 24 requests in
    flight by default, and to its pool's connections): the race is the database's."""
    monkeypatch.setenv("COPOOL_MAX_IN_FLIGHT", str(CLIENTS + 8))
    monkeypatch.setenv("COPOOL_DB_MAX_OVERFLOW", str(CLIENTS))


@pytest.mark.parametrize(("db_url", "workers"), VARIANTS, indirect=["db_url"],
                         ids=[f"{db}-{n}worker" for db, n in VARIANTS])
def test_fifty_clients_one_slot_exactly_one_wins(
    world: Any, db_url: str, workers: int, tmp_path: Path
) -> None:
    w = build(world)
    clients = [httpx.Client(headers=w.requester, timeout=15) for _ in range(CLIENTS)]
    try:
        with live_server(db_url, workers, tmp_path / "uvicorn.log") as base:
            for trial in range(TRIALS):
                resource, slots = _trial_slots(w, trial)

                def book(i: int, client: httpx.Client, resource: uuid.UUID = resource,
                         slots: list[tuple[datetime, datetime]] = slots) -> httpx.Response:
                    start, end = slots[i]
                    return client.post(f"{base}/bookings", json={
                        "resource_id": str(resource), "project_id": str(w.project),
                        "start": start.isoformat(), "end": end.isoformat()})

                answers = together(CLIENTS, book, clients)
                errors = [a for a in answers if not isinstance(a, httpx.Response)]
                assert not errors, f"trial {trial}: {STUCK if _timed_out(errors) else errors[:3]}"
                statuses = sorted(a.status_code for a in answers)
                assert statuses.count(201) == 1, f"trial {trial}: {statuses}"
                assert statuses.count(409) == CLIENTS - 1, f"trial {trial}: {statuses}"
                winner = next(a.json() for a in answers if a.status_code == 201)
                for answer in answers:
                    if answer.status_code == 409:
                        problem = answer.json()
                        assert problem["code"] == "overlap", problem
                        assert problem["conflicts"][0]["booking_id"] == winner["id"], problem
                window = (slots[0][0] - timedelta(hours=1), slots[-1][1] + timedelta(hours=1))
                assert _live_count(world, resource, *window) == 1, f"trial {trial}"
    finally:
        for client in clients:
            client.close()
    with world.session() as s:
        total = s.scalar(select(func.count()).select_from(Booking)) or 0
    assert total == TRIALS  # no row was written for any loser


@pytest.mark.parametrize(("db_url", "workers"), VARIANTS, indirect=["db_url"],
                         ids=[f"{db}-{n}worker" for db, n in VARIANTS])
def test_cancel_while_others_race_for_the_slot(
    world: Any, db_url: str, workers: int, tmp_path: Path
) -> None:
    """The holder cancels while 49 clients keep trying: exactly one of them gets the slot."""
    w = build(world)
    clients = [httpx.Client(headers=w.requester, timeout=15) for _ in range(CLIENTS)]
    body = {"resource_id": str(w.expert), "project_id": str(w.project)}
    try:
        with live_server(db_url, workers, tmp_path / "uvicorn.log") as base:
            for round_ in range(REBOOK_ROUNDS):
                start = FIRST_DAY + timedelta(days=round_, hours=2)
                slot = {"start": start.isoformat(),
                        "end": (start + timedelta(hours=1)).isoformat()}
                first = clients[0].post(f"{base}/bookings", json={**body, **slot})
                assert first.status_code == 201, first.text
                holder = first.json()["id"]

                def act(i: int, client: httpx.Client, holder: str = holder,
                        slot: dict[str, str] = slot) -> list[httpx.Response]:
                    if i == 0:
                        return [client.post(f"{base}/bookings/{holder}/cancel",
                                            json={"reason": "plans changed"})]
                    answers = []
                    for _ in range(400):  # keep trying until someone holds the slot anew
                        answer = client.post(f"{base}/bookings", json={**body, **slot})
                        answers.append(answer)
                        if answer.status_code != 409:
                            break
                        if answer.json()["conflicts"][0]["booking_id"] != holder:
                            break
                        time.sleep(0.01)
                    return answers

                results = together(CLIENTS, act, clients)
                errors = [r for r in results if not isinstance(r, list)]
                assert not errors, STUCK if _timed_out(errors) else errors[:3]
                assert results[0][0].status_code == 200, results[0][0].text
                assert results[0][0].json()["status"] == "cancelled"
                tries = [a for answers in results[1:] for a in answers]
                statuses = {a.status_code for a in tries}
                assert statuses <= {201, 409}, statuses
                won = [a.json() for a in tries if a.status_code == 201]
                assert len(won) == 1, f"round {round_}: {len(won)} winners"
                for answer in tries:
                    if answer.status_code == 409:
                        clash = answer.json()["conflicts"][0]["booking_id"]
                        assert clash in (holder, won[0]["id"])
                assert _live_count(world, w.expert, start, start + timedelta(hours=1)) == 1
    finally:
        for client in clients:
            client.close()
