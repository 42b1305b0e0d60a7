"""Idempotency across a crash, and secrets that no table keeps (issue 12, goals 3 and 4).

Two crashes: one inside the request's transaction, one after its commit but before the
client heard the answer.

A keyed ``POST /bookings`` is killed with ``kill -9`` while it is inside its transaction
(it has claimed its key and waits for the resource, which the test holds). The server is
started again on the same database and the client retries with the same key: the retry
is answered at once — no record of the dead request blocks it, because the claim was part
of the transaction that died — and exactly one booking exists, whatever the retries.

On PostgreSQL the test sees the dead request waiting for the lock (``pg_locks``) before
it kills the server; on SQLite, where a writer waits inside the driver, it waits until the
server has taken the request off the socket. Either way exactly-once must hold.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, inspect, select, text
from sqlalchemy.engine import make_url

from app.auth.models import Role
from app.bookings.models import Booking
from tests.app.booking_world import build
from tests.app.live_server import live_server_process

SLOT = {"start": "2027-03-01T10:00:00+01:00", "end": "2027-03-01T11:00:00+01:00"}


class _Holder:
    """Holds the lock that the keyed request will wait for: the resource's row on
    PostgreSQL, SQLite's writer lock on SQLite."""

    def __init__(self, world: Any, db_url: str, resource: uuid.UUID) -> None:
        self.postgres = db_url.startswith("postgresql")
        if self.postgres:
            self.session = world.session().__enter__()
            self.session.execute(
                text("SELECT id FROM resources WHERE id = :id FOR UPDATE"), {"id": resource}
            )
        else:
            path = make_url(db_url).database
            self.conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            self.conn.execute("BEGIN IMMEDIATE")

    def release(self) -> None:
        if self.postgres:
            self.session.rollback()
            self.session.close()
        else:
            self.conn.execute("ROLLBACK")
            self.conn.close()


def _lock_waiters(world: Any) -> int:
    with world.session() as s:
        return int(s.scalar(text(
            "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
            "WHERE NOT l.granted AND a.datname = current_database()")) or 0)


def _wait_in_flight(world: Any, holder: _Holder, sent: threading.Event) -> None:
    """Until the keyed request is inside the server (waiting for the held lock)."""
    assert sent.wait(30), "the request was never sent"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if not holder.postgres:
            return  # sent and the writer lock held: the server can only wait for it
        if _lock_waiters(world) >= 1:
            return
        time.sleep(0.02)
    raise AssertionError("the keyed request never waited for the resource")


def _bookings(world: Any) -> int:
    with world.session() as s:
        return int(s.scalar(select(func.count()).select_from(Booking)) or 0)


def test_a_retry_after_kill_9_mid_request_books_exactly_once(
    world: Any, db_url: str, tmp_path: Path
) -> None:
    w = build(world)
    body = {"resource_id": str(w.expert), "project_id": str(w.project), **SLOT}
    headers = {**w.requester, "Idempotency-Key": "k-crash"}
    holder = _Holder(world, db_url, w.expert)
    sent = threading.Event()
    outcome: list[Any] = []

    def post(base: str) -> None:
        try:
            with httpx.Client(timeout=60, event_hooks={"request": [lambda _r: sent.set()]}) as c:
                outcome.append(c.post(f"{base}/bookings", json=body, headers=headers))
        except httpx.TransportError as error:
            outcome.append(error)

    with live_server_process(db_url, 1, tmp_path / "first.log") as (base, proc):
        first = threading.Thread(target=post, args=(base,))
        first.start()
        _wait_in_flight(world, holder, sent)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        first.join(timeout=30)
    assert outcome and isinstance(outcome[0], httpx.TransportError)  # the client saw the crash
    holder.release()
    assert _bookings(world) == 0  # nothing of the dead request survived

    with live_server_process(db_url, 1, tmp_path / "second.log") as (base, _proc):
        retry = httpx.post(f"{base}/bookings", json=body, headers=headers, timeout=5)
        again = httpx.post(f"{base}/bookings", json=body, headers=headers, timeout=5)
    assert retry.status_code == 201, retry.text
    assert again.status_code == 201 and again.json() == retry.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert _bookings(world) == 1


def _raw_post(base: str, path: str, payload: bytes, headers: dict[str, str]) -> socket.socket:
    """Send a POST and leave its answer unread (the client that never hears back)."""
    url = httpx.URL(base)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    sock = socket.create_connection((url.host, url.port or 80), timeout=30)
    sock.sendall(
        f"POST {path} HTTP/1.1\r\nHost: {url.host}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(payload)}\r\n{head}\r\n".encode() + payload
    )
    return sock


def _wait_for_bookings(world: Any, count: int) -> None:
    deadline = time.monotonic() + 30
    while _bookings(world) < count:
        assert time.monotonic() < deadline, "the first request never committed"
        time.sleep(0.02)


def test_a_retry_after_kill_9_between_commit_and_answer_gets_the_stored_answer(
    world: Any, db_url: str, tmp_path: Path
) -> None:
    w = build(world)
    body = {"resource_id": str(w.expert), "project_id": str(w.project), **SLOT}
    headers = {**w.requester, "Idempotency-Key": "k-lost-answer"}
    payload = json.dumps(body).encode()  # a retry sends the same bytes
    with live_server_process(db_url, 1, tmp_path / "first.log") as (base, proc):
        sock = _raw_post(base, "/bookings", payload, headers)
        _wait_for_bookings(world, 1)  # committed; its answer is never read
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        sock.close()
    with world.session() as s:
        booking_id = str(s.scalar(select(Booking.id)))
    with live_server_process(db_url, 1, tmp_path / "second.log") as (base, _proc):
        retry = httpx.post(f"{base}/bookings", content=payload, timeout=5,
                           headers={**headers, "content-type": "application/json"})
    assert retry.status_code == 201, retry.text
    assert retry.headers.get("idempotent-replayed") == "true"
    assert retry.json()["id"] == booking_id
    assert _bookings(world) == 1


@pytest.fixture
def issued_secrets(client: Any, world: Any) -> list[str]:
    """API keys and feeds issued with ``Idempotency-Key`` (and replays refused)."""
    w = build(world)
    world.user("admin", "X", Role.ADMIN)
    admin = world.headers("admin")
    secrets: list[str] = []
    for n in range(3):
        keyed = {**admin, "Idempotency-Key": f"key-{n}"}
        path = f"/users/{world.users['req']}/api-keys"
        answer = client.post(path, json={"name": f"laptop {n}"}, headers=keyed)
        assert answer.status_code == 201, answer.text
        secrets.append(answer.json()["token"])
        assert client.post(path, json={"name": f"laptop {n}"}, headers=keyed).status_code == 409
    for n, kind in enumerate(["mine", "expert"]):
        feed = {"kind": kind} if kind == "mine" else {"kind": kind, "target_id": str(w.expert)}
        keyed = {**w.requester, "Idempotency-Key": f"feed-{n}"}
        answer = client.post("/feed-subscriptions", json=feed, headers=keyed)
        assert answer.status_code == 201, answer.text
        issued = answer.json()
        secrets += [issued["token"], issued["url"]]
    return secrets


def test_no_table_holds_a_secret_in_plaintext(issued_secrets: list[str], world: Any) -> None:
    with world.session() as s:
        tables = inspect(s.get_bind()).get_table_names()
        dump = "\n".join(
            repr(row) for table in tables
            for row in s.execute(text(f'SELECT * FROM "{table}"')).all()
        )
    tokens = [t for t in issued_secrets if "://" not in t]
    assert len(tokens) == 5
    assert "laptop 2" in dump  # the scan sees the rows the secrets belong to
    for secret in tokens:
        assert secret not in dump
