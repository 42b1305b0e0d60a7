"""Throttling: failed authentications per client address (shared by every worker, through
a live server that believes ``X-Forwarded-For`` from 127.0.0.1), writes per API key, and
no round trip for it on the success path."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from litestar.testing import TestClient
from sqlalchemy import event

from app.auth.models import Role
from app.main import create_app
from app.settings import Settings
from tests.app.conftest import World
from tests.app.live_server import live_server

LIMIT = 5
WINDOW = 86_400  # one window for the whole test: its boundary is at midnight UTC


def _from(address: str, token: str | None = None) -> dict[str, str]:
    headers = {"X-Forwarded-For": address}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


@pytest.fixture
def server(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A live server (two workers on PostgreSQL) with a failure limit of LIMIT."""
    monkeypatch.setenv("COPOOL_AUTH_FAILURE_LIMIT", str(LIMIT))
    monkeypatch.setenv("COPOOL_THROTTLE_WINDOW_SECONDS", str(WINDOW))
    workers = 2 if db_url.startswith("postgresql") else 1
    with live_server(db_url, workers, tmp_path / "uvicorn.log") as base:
        yield base


def test_wrong_keys_from_one_address_get_429_after_the_limit(
    server: str, world: World
) -> None:
    world.user("ann", "FEA", Role.REQUESTER)
    good = world.tokens["ann"]
    statuses = []
    with httpx.Client(base_url=server, timeout=30) as http:
        for i in range(3 * LIMIT):
            answer = http.get("/users/me", headers=_from("203.0.113.7", f"cpl_wrong{i}"))
            statuses.append(answer.status_code)
            if answer.status_code == 429:
                assert int(answer.headers["retry-after"]) >= 1
                assert answer.json()["status"] == 429
        assert statuses == [401] * LIMIT + [429] * (2 * LIMIT)
        # another address is not affected: its key works, its wrong key is a plain 401
        assert http.get("/users/me", headers=_from("198.51.100.2", good)).status_code == 200
        assert http.get("/users/me", headers=_from("198.51.100.2", "cpl_x")).status_code == 401
        # nor is a request that presents no key
        assert http.get("/health", headers=_from("203.0.113.7")).status_code == 200


def test_guessed_feed_tokens_get_429_after_the_limit(server: str, world: World) -> None:
    statuses = []
    with httpx.Client(base_url=server, timeout=30) as http:
        for i in range(2 * LIMIT):
            statuses.append(http.get(f"/feeds/guess{i}.ics", headers=_from("192.0.2.9")).status_code)
        assert statuses == [404] * LIMIT + [429] * LIMIT
        assert http.get("/feeds/guess.ics", headers=_from("192.0.2.10")).status_code == 404


@pytest.fixture
def limited(settings: Settings) -> Iterator[list[TestClient[Any]]]:
    """Two app instances ("workers") on one database, 3 writes per key and window."""
    capped = settings.model_copy(
        update={"write_limit_per_key": 3, "throttle_window_seconds": WINDOW}
    )
    apps = [create_app(capped), create_app(capped)]
    with TestClient(app=apps[0]) as first, TestClient(app=apps[1]) as second:
        yield [first, second]
    for app in apps:
        app.state.engine.dispose()


def test_writes_per_key_are_limited_across_workers(limited: list[Any]) -> None:
    first, second = limited
    world = World(app=first.app)
    ann = world.user("ann", "FEA", Role.REQUESTER)
    bob = world.user("bob", "FEA", Role.REQUESTER)
    path = f"/users/{world.users['ann']}/api-keys"
    assert [first.post(path, json={}, headers=ann).status_code for _ in range(3)] == [201] * 3
    refused = first.post(path, json={}, headers=ann)
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert first.get("/users/me", headers=ann).status_code == 200  # reads are not limited
    # the other worker learns the shared count with its first write (one may pass it)
    statuses = [second.post(path, json={}, headers=ann).status_code for _ in range(2)]
    assert statuses == [201, 429]
    other = f"/users/{world.users['bob']}/api-keys"
    assert first.post(other, json={}, headers=bob).status_code == 201  # another key is fine


def test_the_success_path_makes_no_throttle_round_trip(client: Any, world: World) -> None:
    ann = world.user("ann", "FEA", Role.REQUESTER)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "throttle_counters" in statement:
            statements.append(statement)

    engine = client.app.state.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        path = f"/users/{world.users['ann']}/api-keys"
        for _ in range(20):
            assert client.get("/users/me", headers=ann).status_code == 200
            assert client.post(path, json={}, headers=ann).status_code == 201
        assert statements == []  # 20 writes: under one chunk of the default limit
        assert client.get("/users/me", headers={"Authorization": "Bearer cpl_no"}).status_code == 401
        assert len(statements) == 1  # a failure is counted, in one statement
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def _post(app: Any, token: str, keyed: bool) -> tuple[int, int]:
    """POST /bookings straight into the app's ASGI callable with an endless body; the
    status answered and how many body chunks the app read."""
    reads = 0

    async def receive() -> dict[str, Any]:
        nonlocal reads
        reads += 1
        return {"type": "http.request", "body": b" " * 65_536, "more_body": True}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    headers = [(b"authorization", f"Bearer {token}".encode()),
               (b"content-type", b"application/json")]
    if keyed:
        headers.append((b"idempotency-key", b"k-1"))
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST", "scheme": "http", "path": "/bookings", "raw_path": b"/bookings",
             "root_path": "", "query_string": b"", "headers": headers,
             "client": ("192.0.2.77", 4000), "server": ("testserver", 80)}
    anyio.run(app, scope, receive, send)
    return next(m["status"] for m in sent if m["type"] == "http.response.start"), reads


@pytest.mark.parametrize("keyed", [False, True])
def test_a_junk_key_is_refused_before_the_body_is_read(
    client: Any, world: World, keyed: bool
) -> None:
    assert _post(client.app, "cpl_junk", keyed) == (401, 0)
    assert _post(client.app, "not-even-a-copool-key", keyed) == (401, 0)
    world.user("ann", "FEA", Role.REQUESTER)
    status, reads = _post(client.app, world.tokens["ann"], keyed)  # read until the limit
    assert status == 413 and reads > 100
