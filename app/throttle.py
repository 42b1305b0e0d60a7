"""Throttling shared by every worker of a deployment: failed authentication per client
address, writes per API key.

**Failures per address.** An answer 401 (a bad, unknown, revoked or expired API key) or a
404 from ``GET /feeds/{token}`` (an unknown feed token) counts one failure for the client's
address (``scope["client"]``: uvicorn puts the ``X-Forwarded-For`` address there only for a
proxy in ``COPOOL_TRUSTED_PROXIES``). Past ``COPOOL_AUTH_FAILURE_LIMIT`` failures in a
window of ``COPOOL_THROTTLE_WINDOW_SECONDS``, the answer is 429 with ``Retry-After`` (the
seconds left in the window), and until the window ends the worker answers that address 429
at once, before any lookup, unless the request carries an API key the worker has seen
authenticate lately (``app.auth.services.KEYS``) — a colleague behind the same address
with a working key keeps working. Other addresses are not affected.

**Writes per key.** A non-GET request with an API key counts one write for the key; past
``COPOOL_WRITE_LIMIT_PER_KEY`` in a window it gets 429. Each worker counts in memory and
adds its count to the shared counter every ``chunk`` writes (a fiftieth of the limit, at
most 100), so the success path pays one round trip per ``chunk`` writes; across W workers a
key may pass the limit by at most W × ``chunk``.

**Junk before the body.** A write whose API key this worker has not seen authenticate
lately is authenticated here, before its body is read: an unknown, revoked or expired key
gets its 401 (or 429) at once, whatever the body's size, and a good key lands in the auth
cache, so that the route's own authentication makes no second lookup.

**Shared counters.** Fixed windows in one small table, ``throttle_counters`` (UNLOGGED on
PostgreSQL: losing it in a crash only forgets counts), updated by one
``INSERT … ON CONFLICT DO UPDATE … RETURNING`` round trip that starts a new window when the
stored one has passed. Only failures and write chunks touch it.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from sqlalchemy import BigInteger, Column, Engine, Integer, String, Table, case, delete
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.admission import send_answer
from app.auth.services import KEYS, TOKEN_PREFIX, hash_token, identify
from app.base import metadata
from app.db import READ_METHODS, read_only_engine
from app.errors import NotAuthenticated
from app.problems import PROBLEM_JSON, Problem

log = logging.getLogger("copool")

COUNTERS = Table(
    "throttle_counters",
    metadata,
    Column("bucket", String(80), primary_key=True),
    Column("window_start", BigInteger, nullable=False),
    Column("hits", Integer, nullable=False),
    comment="Fixed-window counters of app.throttle (failures per address, writes per key)",
)
FEED_PREFIX = "/feeds/"
PURGE_EVERY = 1000
"""Every this many shared counts, counters of windows that have passed are deleted."""
KNOWN_KEY_SECONDS = 300.0
"""A key authenticated this recently on the worker passes a throttled address."""


def add_hits(engine: Engine, bucket: str, window_start: int, hits: int) -> int:
    """Add ``hits`` to ``bucket`` in the window starting at ``window_start`` (a new window
    resets it); the bucket's total in that window, in one round trip."""
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(COUNTERS).values(bucket=bucket, window_start=window_start, hits=hits)
    upsert = stmt.on_conflict_do_update(
        index_elements=[COUNTERS.c.bucket],
        set_={
            "hits": case(
                (COUNTERS.c.window_start == stmt.excluded.window_start,
                 COUNTERS.c.hits + stmt.excluded.hits),
                else_=stmt.excluded.hits,
            ),
            "window_start": stmt.excluded.window_start,
        },
    ).returning(COUNTERS.c.hits)
    with engine.begin() as conn:
        return int(conn.execute(upsert).scalar_one())


def purge(engine: Engine, before: int) -> int:
    """Delete counters of windows starting before ``before``; how many."""
    with engine.begin() as conn:
        result = conn.execute(delete(COUNTERS).where(COUNTERS.c.window_start < before))
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass
class _KeyWrites:
    window_start: int
    pending: int = 0
    """Writes counted here and not yet added to the shared counter."""
    shared: int = 0
    """The shared counter's total when this worker last added to it."""


@dataclass
class Throttle:
    """One worker's view of the shared counters (shared by its middleware instances)."""

    engine: Engine
    window_seconds: int
    failure_limit: int
    write_limit: int
    auth_cache_seconds: float = 0.0
    blocked: dict[str, int] = field(default_factory=dict)
    """Address → the window in which it passed the failure limit."""
    writes: dict[str, _KeyWrites] = field(default_factory=dict)
    counted: int = 0
    _read_engine: Engine | None = None

    @property
    def chunk(self) -> int:
        """Writes a worker counts before adding them to the shared counter."""
        return max(1, min(self.write_limit // 50, 100))

    def window(self) -> int:
        """Start (Unix seconds) of the current window."""
        return int(time.time()) // self.window_seconds * self.window_seconds

    def retry_after(self) -> int:
        """Seconds until the current window ends."""
        return max(1, math.ceil(self.window() + self.window_seconds - time.time()))

    def is_blocked(self, address: str) -> bool:
        """Whether ``address`` passed the failure limit in the current window."""
        return self.blocked.get(address) == self.window()

    def fail(self, address: str) -> bool:
        """Count a failure of ``address`` (shared); whether it is now over the limit."""
        window = self.window()
        hits = self._shared(f"fail:{address}", window, 1)
        if hits > self.failure_limit:
            if len(self.blocked) > 100_000:
                self.blocked.clear()
            self.blocked[address] = window
            return True
        return False

    def writes_exhausted(self, digest: str) -> bool:
        """Whether the key (by its token's digest) used its writes of the current window."""
        known = self.writes.get(digest)
        return (
            known is not None
            and known.window_start == self.window()
            and known.shared + known.pending >= self.write_limit
        )

    def note_write(self, digest: str) -> tuple[int, int]:
        """Count one write of a key here; the window and the writes to add to the shared
        counter now (every ``chunk`` writes, else 0)."""
        window = self.window()
        known = self.writes.get(digest)
        if known is None or known.window_start != window:
            if len(self.writes) > 100_000:
                self.writes.clear()
            known = self.writes[digest] = _KeyWrites(window)
        known.pending += 1
        if known.pending < self.chunk:
            return window, 0
        pending, known.pending = known.pending, 0
        known.shared += pending  # until the shared total comes back
        return window, pending

    def add_writes(self, digest: str, window: int, writes: int) -> None:
        """Add a key's writes to the shared counter and note the total of every worker."""
        total = self._shared(f"write:{digest[:40]}", window, writes)
        known = self.writes.get(digest)
        if known is not None and known.window_start == window:
            known.shared = max(known.shared, total)

    def check_key(self, token: str) -> str | None:
        """Authenticate ``token`` in a read-only transaction of its own (the key lands in
        the auth cache); the reason it is refused, or None."""
        try:
            with Session(bind=self.read_engine) as session:
                identify(session, token, cache_seconds=self.auth_cache_seconds)
        except NotAuthenticated as exc:
            return exc.detail
        except SQLAlchemyError:  # busy or unreachable: the route's own check answers
            log.debug("early authentication skipped", exc_info=True)
        return None

    @property
    def read_engine(self) -> Engine:
        """The engine's read-only twin (made once)."""
        if self._read_engine is None:
            self._read_engine = read_only_engine(self.engine)
        return self._read_engine

    def _shared(self, bucket: str, window: int, hits: int) -> int:
        self.counted += 1
        if self.counted % PURGE_EVERY == 0:
            purge(self.engine, window - self.window_seconds)
        return add_hits(self.engine, bucket, window, hits)


def client_address(scope: Scope) -> str:
    """The client's address as the server saw it (after trusted proxies)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _bearer(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


def _too_many(retry_after: int, detail: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = Problem(title="Too many requests", status=429, detail=detail).model_dump_json(
        exclude_defaults=True
    ).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"retry-after", str(retry_after).encode()),
    ]
    return 429, headers, body


def _not_authenticated(detail: str) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    body = Problem(title="Not authenticated", status=401, detail=detail).model_dump_json(
        exclude_defaults=True
    ).encode()
    headers = [
        (b"content-type", PROBLEM_JSON.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", b'Bearer realm="copool"'),
    ]
    return 401, headers, body


FAILURES = "too many failed authentications from this address; retry after Retry-After seconds"
WRITES = "this API key made its writes of this window; retry after Retry-After seconds"


class ThrottleMiddleware:
    """ASGI middleware applying the module docstring's limits."""

    def __init__(self, app: ASGIApp, throttle: Throttle) -> None:
        self.app = app
        self.throttle = throttle

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        throttle = self.throttle
        address = client_address(scope)
        token = _bearer(scope)
        digest = hash_token(token) if token.startswith(TOKEN_PREFIX) else ""
        # Only requests that present a secret are counted and refused: an API key or a
        # feed token (a request without either gets its 401 without a lookup).
        secret = bool(token) or scope["path"].startswith(FEED_PREFIX)
        if not (secret and throttle.failure_limit):
            secret = False
        elif throttle.is_blocked(address) and not (digest and KEYS.get(digest, KNOWN_KEY_SECONDS)):
            await send_answer(send, _too_many(throttle.retry_after(), FAILURES))
            return
        if token and scope.get("method") not in READ_METHODS and await self._refused_early(
            scope, send, token, digest, address
        ):
            return
        writes = bool(throttle.write_limit and digest and scope.get("method") not in READ_METHODS)
        if writes and throttle.writes_exhausted(digest):
            await send_answer(send, _too_many(throttle.retry_after(), WRITES))
            return
        if not (secret or writes):
            await self.app(scope, receive, send)
            return
        if secret:
            status = await self._answer(scope, receive, send, address)
        else:
            status = await self._status(scope, receive, send)
        if writes and status not in (401, 429, 503):
            window, pending = throttle.note_write(digest)
            if pending:  # a round trip every ``chunk`` writes, after the answer went out
                await anyio.to_thread.run_sync(throttle.add_writes, digest, window, pending)

    async def _refused_early(
        self, scope: Scope, send: Send, token: str, digest: str, address: str
    ) -> bool:
        """Authenticate a write's uncached key before its body is read; answer 401 (or 429)
        and return True when it is refused."""
        throttle = self.throttle
        if not throttle.auth_cache_seconds or (
            digest and KEYS.get(digest, throttle.auth_cache_seconds)
        ):
            return False
        reason = await anyio.to_thread.run_sync(throttle.check_key, token)
        if reason is None:
            return False
        if throttle.failure_limit and await anyio.to_thread.run_sync(throttle.fail, address):
            await send_answer(send, _too_many(throttle.retry_after(), FAILURES))
        else:
            await send_answer(send, _not_authenticated(reason))
        return True

    async def _status(self, scope: Scope, receive: Receive, send: Send) -> int:
        """Run the app; the status it answered."""
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        return status

    async def _answer(self, scope: Scope, receive: Receive, send: Send, address: str) -> int:
        """Run the app; a failure's answer is held until it is counted (then sent, or
        replaced by a 429). Returns the status sent."""
        feed = scope["path"].startswith(FEED_PREFIX)
        held: list[Message] = []
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            if not (status == 401 or (feed and status == 404)):
                await send(message)
                return
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                if await anyio.to_thread.run_sync(self.throttle.fail, address):
                    status = 429
                    await send_answer(send, _too_many(self.throttle.retry_after(), FAILURES))
                    return
                for kept in held:
                    await send(kept)

        await self.app(scope, receive, watch)
        return status


def make_throttle(engine: Engine, settings: Any) -> Throttle:
    """The worker's throttle from the settings."""
    return Throttle(
        engine=engine,
        window_seconds=settings.throttle_window_seconds,
        failure_limit=settings.auth_failure_limit,
        write_limit=settings.write_limit_per_key,
        auth_cache_seconds=settings.auth_cache_seconds,
    )
