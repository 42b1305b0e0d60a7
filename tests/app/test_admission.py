"""Admission control: a worker serves at most ``max_in_flight`` requests; the next is
answered 503 with ``Retry-After`` at once, and an oversized body 413 before it is read."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import anyio.to_thread
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from app.admission import MAX_RETRY_AFTER, REFUSALS_PER_SECOND, Gate, pool_capacity
from app.auth.models import Role
from app.main import WORKER_THREADS, create_app
from app.settings import Settings

ADMITTED = 3


class Hold:
    """A route that holds its request until released, and counts who got in."""

    def __init__(self) -> None:
        self.entered = threading.Semaphore(0)
        self.release = threading.Event()

    def route(self) -> Any:
        @get("/test/hold", sync_to_thread=False)
        async def hold() -> dict[str, bool]:
            self.entered.release()
            await anyio.to_thread.run_sync(self.release.wait)
            return {"held": True}

        return hold


@pytest.fixture
def gated(settings: Settings) -> Iterator[tuple[Litestar, Hold]]:
    """The app with ``max_in_flight`` = ADMITTED and a route that holds requests."""
    app = create_app(settings.model_copy(update={"max_in_flight": ADMITTED}))
    hold = Hold()
    app.register(hold.route())
    yield app, hold
    hold.release.set()
    app.state.engine.dispose()


def test_the_request_past_the_bound_gets_503_at_once(gated: Any) -> None:
    app, hold = gated
    with TestClient(app=app) as client:
        answers: list[Any] = [None] * ADMITTED

        def call(i: int) -> None:
            answers[i] = client.get("/test/hold")

        threads = [threading.Thread(target=call, args=(i,)) for i in range(ADMITTED)]
        for thread in threads:
            thread.start()
        for _ in range(ADMITTED):
            assert hold.entered.acquire(timeout=30), "a held request never arrived"
        assert app.state.gate.in_flight == ADMITTED

        refused = client.post("/bookings", json={}, headers={"Authorization": "Bearer cpl_x"})
        assert refused.status_code == 503
        assert refused.headers["retry-after"] == "1"
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["status"] == 503
        assert client.get("/health").status_code == 200  # liveness is never refused

        hold.release.set()
        for thread in threads:
            thread.join(timeout=30)
        assert [a.status_code for a in answers] == [200] * ADMITTED
        assert app.state.gate.in_flight == 0
        assert app.state.gate.refused == 1
        assert client.get("/users/me").status_code == 401  # admitted again


def test_the_bound_stays_below_the_pools(settings: Settings) -> None:
    app = create_app(
        settings.model_copy(update={"max_in_flight": 1000, "db_pool_size": 4, "db_max_overflow": 3})
    )
    try:
        engine = app.state.engine
        expected = min(1000, pool_capacity(engine), WORKER_THREADS)
        assert app.state.gate.limit == expected < 1000
        if engine.dialect.name == "postgresql":
            assert app.state.gate.limit == 7
    finally:
        app.state.engine.dispose()


@pytest.mark.parametrize("keyed", [False, True])
def test_a_body_over_the_limit_is_refused_before_it_is_read(
    client: Any, world: Any, keyed: bool
) -> None:
    user = world.user("ann", "FEA", Role.REQUESTER)
    for headers in ({"Authorization": "Bearer cpl_junk"}, user):
        if keyed:
            headers = {**headers, "Idempotency-Key": "big-1"}
        answer = client.post(
            "/bookings",
            content=b"{" + b" " * (11 * 1024 * 1024) + b"}",
            headers={**headers, "Content-Type": "application/json"},
        )
        assert answer.status_code == 413, answer.text
        assert answer.json()["status"] == 413


def test_retry_after_grows_when_refusals_come_fast() -> None:
    gate = Gate(limit=1)
    assert gate.refuse() == 1  # a few refusals: come back in a second
    waits = [gate.refuse() for _ in range(30 * REFUSALS_PER_SECOND)]
    assert max(waits) > 1  # many: spread over longer waits, never past the cap
    assert all(1 <= w <= MAX_RETRY_AFTER for w in waits)
    assert gate.refused == 1 + len(waits)
