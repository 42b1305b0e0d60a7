"""Idempotency-Key: a retry returns the first answer; a reused key with another body is refused."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, text, update

from app.auth.models import Role
from app.base import utcnow
from app.bookings import idempotency
from app.bookings.models import Booking, IdempotencyRecord
from app.catalog.models import Resource
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


def _records(app) -> int:
    with session_of(app) as s:
        return s.scalar(select(func.count()).select_from(IdempotencyRecord))


def test_junk_tokens_claim_nothing_and_get_401(client, world, app):
    w = build(world)
    body = {"resource_id": str(w.expert), "project_id": str(w.project), **BODY_SLOT}
    for i in range(20):
        r = client.post("/bookings", json=body,
                        headers={"Authorization": f"Bearer cpl_junk{i}", "Idempotency-Key": "k"})
        assert r.status_code == 401
    assert _records(app) == 0


def test_a_replay_needs_a_live_key_of_the_same_user(client, world, app):
    w = build(world)
    world.user("admin", "X", Role.ADMIN)
    admin = world.headers("admin")
    me = client.get("/users/me", headers=w.requester).json()
    issued = client.post(f"/users/{me['id']}/api-keys", json={"name": "second"}, headers=admin)
    assert issued.status_code == 201, issued.text
    second = {"Authorization": f"Bearer {issued.json()['token']}", "Idempotency-Key": "k-user"}
    body = {"resource_id": str(w.expert), "project_id": str(w.project), **BODY_SLOT}
    first = client.post("/bookings", json=body, headers={**w.requester, "Idempotency-Key": "k-user"})
    assert first.status_code == 201
    # the same user's other key sees the same record: keys are scoped to the user
    again = client.post("/bookings", json=body, headers=second)
    assert again.status_code == 201 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    revoked = client.post(f"/api-keys/{issued.json()['id']}/revoke", json={}, headers=admin)
    assert revoked.status_code == 200
    assert client.post("/bookings", json=body, headers=second).status_code == 401


def test_answers_with_a_secret_are_never_stored(client, world, app):
    build(world)
    world.user("admin", "X", Role.ADMIN)
    world.user("staff", "X", Role.REQUESTER)
    admin = {**world.headers("admin"), "Idempotency-Key": "k-secret"}
    path = f"/users/{world.users['staff']}/api-keys"
    first = client.post(path, json={"name": "laptop"}, headers=admin)
    assert first.status_code == 201
    token = first.json()["token"]
    again = client.post(path, json={"name": "laptop"}, headers=admin)
    assert again.status_code == 409 and again.json()["code"] == "secret_not_replayable"
    with session_of(app) as s:
        dump = " ".join(str(v) for v in s.execute(text("SELECT * FROM idempotency_records")).all())
    assert token not in dump
    listed = client.get(path, headers=world.headers("admin")).json()["items"]
    assert [k["name"] for k in listed].count("laptop") == 1  # made once


def test_a_body_over_the_limit_is_refused_while_reading(client, world, app, monkeypatch):
    w = build(world)
    monkeypatch.setattr(idempotency, "MAX_BODY_BYTES", 1000)
    r = client.post("/bookings", content=b"{" + b" " * 5000 + b"}",
                    headers={**w.requester, "Idempotency-Key": "k-big",
                             "content-type": "application/json"})
    assert r.status_code == 413
    assert _records(app) == 0


def test_a_retry_during_the_first_transaction_gets_the_first_answer(client, world, app):
    # The first request claims the key and then waits for a lock held elsewhere; the retry
    # arrives meanwhile, waits on the key (not polling), and replays the committed answer.
    w = build(world)
    body = {"resource_id": str(w.expert), "project_id": str(w.project), **BODY_SLOT}
    headers = {**w.requester, "Idempotency-Key": "k-wait"}
    holder = session_of(app)
    holder.execute(select(Resource).where(Resource.id == w.expert).with_for_update())
    answers: dict[str, Any] = {}

    def post(name: str) -> None:
        r = client.post("/bookings", json=body, headers=headers)
        answers[name] = (r.status_code, r.json(), r.headers.get("idempotent-replayed"))

    first = threading.Thread(target=post, args=("first",))
    first.start()
    postgres = app.state.engine.dialect.name == "postgresql"
    if postgres:
        _wait_for_a_lock_wait(app)  # the first holds its claim and waits for the resource
    retry = threading.Thread(target=post, args=("retry",))
    retry.start()
    if postgres:
        _wait_for_a_lock_wait(app, count=2)
    holder.rollback()
    holder.close()
    first.join(timeout=60)
    retry.join(timeout=60)
    assert answers["first"][0] == answers["retry"][0] == 201
    assert answers["first"][1] == answers["retry"][1]
    assert {answers["first"][2], answers["retry"][2]} == {None, "true"}
    assert _count(app) == 1


def _wait_for_a_lock_wait(app, count: int = 1) -> None:
    """Until ``count`` backends of this database wait for a lock (PostgreSQL)."""
    import time

    query = text("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                 "WHERE NOT l.granted AND a.datname = current_database()")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with session_of(app) as s:
            if s.scalar(query) >= count:
                return
        time.sleep(0.01)
    raise AssertionError("the requests never waited for the lock")


def test_expired_records_are_claimed_anew_and_purged(client, world, app):
    w = build(world)
    body = {"resource_id": str(w.expert), "project_id": str(w.project), **BODY_SLOT}
    headers = {**w.requester, "Idempotency-Key": "k-old"}
    assert client.post("/bookings", json=body, headers=headers).status_code == 201
    with session_of(app) as s:
        s.execute(update(IdempotencyRecord).values(created_at=utcnow() - timedelta(hours=25)))
        s.commit()
    # past the TTL the key is new again: the same booking now clashes with the first
    assert client.post("/bookings", json=body, headers=headers).status_code == 409
    with session_of(app) as s:
        s.execute(update(IdempotencyRecord).values(created_at=utcnow() - timedelta(hours=25)))
        assert idempotency.purge(s, utcnow(), timedelta(hours=24)) == 1
        s.commit()
    assert _records(app) == 0
