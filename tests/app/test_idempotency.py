"""Idempotency-Key: a retry returns the first answer; a reused key with another body is refused."""

from __future__ import annotations

import threading

from sqlalchemy import func, select

from app.bookings.models import Booking
from tests.app.booking_world import build
from tests.app.conftest import session_of

BODY_SLOT = {"start": "2027-03-01T10:00:00+01:00", "end": "2027-03-01T11:00:00+01:00"}


def _count(app) -> int:
    with session_of(app) as s:
        return s.scalar(select(func.count()).select_from(Booking))


def test_retry_returns_first_answer(client, world, app):
    w = build(world)
    body = {"resource_id": str(w.expert), "project_id": str(w.project), **BODY_SLOT}
    headers = {**w.requester, "Idempotency-Key": "k-1"}
    first = client.post("/bookings", json=body, headers=headers)
    again = client.post("/bookings", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert _count(app) == 1
    # without a key the same body is a new attempt, and it clashes
    assert client.post("/bookings", json=body, headers=w.requester).status_code == 409


def test_same_key_other_body_is_refused(client, world, app):
    w = build(world)
    body = {"resource_id": str(w.expert), "project_id": str(w.project), **BODY_SLOT}
    headers = {**w.requester, "Idempotency-Key": "k-2"}
    assert client.post("/bookings", json=body, headers=headers).status_code == 201
    other = {**body, "start": "2027-03-01T12:00:00+01:00", "end": "2027-03-01T13:00:00+01:00"}
    refused = client.post("/bookings", json=other, headers=headers)
    assert refused.status_code == 422
    assert refused.json()["field"] == "Idempotency-Key"
    assert _count(app) == 1


def test_errors_are_replayed_too_and_keys_are_per_caller(client, world, app):
    w = build(world)
    body = {
        "resource_id": str(w.expert),
        "project_id": str(w.project),
        "start": "2027-03-01T06:00:00+01:00",
        "end": "2027-03-01T07:00:00+01:00",
    }
    headers = {**w.requester, "Idempotency-Key": "k-3"}
    first = client.post("/bookings", json=body, headers=headers)
    assert first.status_code == 409
    assert client.post("/bookings", json=body, headers=headers).json() == first.json()
    # another caller with the same key is a different scope
    lead = world.headers("lead")
    mine = {**body, **BODY_SLOT}
    assert client.post(
        "/bookings", json=mine, headers={**lead, "Idempotency-Key": "k-3"}
    ).status_code in (201, 403)


def test_concurrent_retries_create_one_booking(client, world, app):
    w = build(world)
    body = {"resource_id": str(w.expert), "project_id": str(w.project), **BODY_SLOT}
    headers = {**w.requester, "Idempotency-Key": "k-race"}
    barrier = threading.Barrier(8)
    answers: list[tuple[int, str]] = []

    def attempt() -> None:
        barrier.wait()
        r = client.post("/bookings", json=body, headers=headers)
        answers.append((r.status_code, r.json().get("id", "")))

    threads = [threading.Thread(target=attempt) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert {status for status, _ in answers} == {201}
    assert len({ident for _, ident in answers}) == 1
    assert _count(app) == 1


def test_bad_key_is_400(client, world):
    w = build(world)
    r = client.post("/bookings", json={}, headers={**w.requester, "Idempotency-Key": "x" * 201})
    assert r.status_code == 400
