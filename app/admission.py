"""Admission control: each worker serves a bounded number of requests at once.

Without a bound, a worker under overload took every request it was sent: the requests
queued for the database pool's connections until the pool timed out (500 after 30 s; issue
12 measured 8 requests/s and a p50 of 30 s at 300 clients). Now a request that finds
``max_in_flight`` requests already in flight on its worker is answered at once with 503
and ``Retry-After``, before anything is read, looked up or parsed, so the requests that are
admitted keep the worker's full speed and the rest learn in a millisecond to come back.

``Retry-After`` is 1 s while refusals are few, and grows (up to 30 s, spread at random over
its upper half) when they come faster than ``REFUSALS_PER_SECOND``: with 2,000 clients that
honour it, the worker answers about that many refusals a second instead of spending itself
on them, and clients refused in the same second do not all return in the same second.

The bound is kept below what an admitted request may need: a thread of the worker's pool
(``app.main.WORKER_THREADS``) and one database connection (pool + overflow; a request never
holds two at a time). ``/health`` is not counted: it touches nothing and must answer while
the worker is busy.

A body announced larger than the app reads (``Content-Length`` over
``MAX_BODY_BYTES``) is refused with 413 here too, before a byte of it is read; bodies without
a length are cut off while read (Litestar's ``request_max_body_size`` and the idempotency
middleware's own limit, both ``MAX_BODY_BYTES``).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send
from sqlalchemy import Engine

from app.bookings.idempotency import MAX_BODY_BYTES
from app.problems import PROBLEM_JSON, RETRY_AFTER_SECONDS, Problem

log = logging.getLogger("copool")

UNCOUNTED_PATHS = frozenset({"/health", "/health/live", "/health/ready", "/metrics"})
"""Never refused: liveness, readiness and metrics must answer while the worker is busy."""


def _answer(status: int, title: str, detail: str, *extra: tuple[bytes, bytes]) -> tuple[
    int, list[tuple[bytes, bytes]], bytes
]:
    body = Problem(title=title, status=status, detail=detail).model_dump_json(
        exclude_defaults=True
    ).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *extra,
    ]
    return status, headers, body


BUSY = _answer(
    503,
    "Service busy",
    "the server is serving as many requests as it can; retry after Retry-After seconds",
)
REFUSALS_PER_SECOND = 30
"""The refusals a worker is willing to answer per second; ``Retry-After`` grows so that
clients who honour it come back at about this rate, whatever their number."""
MAX_RETRY_AFTER = 30


def _busy(retry_after: int) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    status, headers, body = BUSY
    return status, [*headers, (b"retry-after", str(retry_after).encode())], body
TOO_LARGE = _answer(413, "Request too large", f"the body passes {MAX_BODY_BYTES} bytes")


async def send_answer(send: Send, answer: tuple[int, list[tuple[bytes, bytes]], bytes]) -> None:
    """Send a prepared answer (status, headers, body) as one response."""
    status, headers, body = answer
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


@dataclass
class Gate:
    """The requests in flight on one worker (its event loop: no lock needed) and the bound."""

    limit: int
    in_flight: int = 0
    refused: int = 0
    """Requests answered 503 since the worker started."""
    _second: int = 0
    _this_second: int = 0
    _last_second: int = 0

    def refuse(self) -> int:
        """Count a refusal; the ``Retry-After`` to send: 1 s, and more when refusals come
        faster than ``REFUSALS_PER_SECOND`` (spread, so that waiting clients return apart)."""
        self.refused += 1
        now = int(time.monotonic())
        if now != self._second:
            self._last_second = self._this_second if now == self._second + 1 else 0
            self._second, self._this_second = now, 0
        self._this_second += 1
        pace = max(self._last_second, self._this_second)
        longest = min(MAX_RETRY_AFTER, max(RETRY_AFTER_SECONDS, -(-pace // REFUSALS_PER_SECOND)))
        # spread over [longest/2, longest], so that clients refused together do not all
        # come back in the same second
        return random.randint(max(RETRY_AFTER_SECONDS, longest // 2), longest)


def pool_capacity(engine: Engine) -> int:
    """Connections the engine's pool can hand out at once (pool size + overflow)."""
    pool = engine.pool
    size = pool.size() if hasattr(pool, "size") else 0
    overflow = getattr(pool, "_max_overflow", 0)
    return max(1, int(size) + max(0, int(overflow)))


def make_gate(max_in_flight: int, engine: Engine, threads: int) -> Gate:
    """A gate for ``max_in_flight`` requests, lowered (with a warning) to what the database
    pool and the thread pool can serve at once."""
    limit = min(max_in_flight, pool_capacity(engine), threads)
    if limit < max_in_flight:
        log.warning(
            "COPOOL_MAX_IN_FLIGHT=%d lowered to %d: the database pool (%d connections) and "
            "the thread pool (%d) bound it",
            max_in_flight, limit, pool_capacity(engine), threads,
        )
    return Gate(limit=limit)


def _declared_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else 0
    return 0


def install_gate(app: Litestar, gate: Gate) -> None:
    """Put the gate in front of the app's routing, so that a refused request costs no
    routing, middleware or exception handling: only Litestar's entry (which still adds the
    ``before_send`` headers of ``app.headers``) and this check."""
    app.asgi_handler = AdmissionMiddleware(app.asgi_handler, gate)


class AdmissionMiddleware:
    """ASGI middleware: 503 with ``Retry-After`` when the worker's gate is full; 413 for a
    body announced over ``MAX_BODY_BYTES``. Both before the body is read."""

    def __init__(self, app: ASGIApp, gate: Gate) -> None:
        self.app = app
        self.gate = gate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNCOUNTED_PATHS:
            await self.app(scope, receive, send)
            return
        gate = self.gate
        if gate.in_flight >= gate.limit:
            await send_answer(send, _busy(gate.refuse()))
            return
        if _declared_length(scope) > MAX_BODY_BYTES:
            await send_answer(send, TOO_LARGE)
            return
        gate.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            gate.in_flight -= 1


__all__ = ["AdmissionMiddleware", "Gate", "install_gate", "make_gate", "pool_capacity"]
