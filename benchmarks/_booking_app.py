"""The anchor of benchmarks/booking.py: a minimal booking app outside copool.

One route, ``POST /anchor``, that books a slot by check-then-insert on copool's own
``bookings`` table, in the fastest form we know: a bare ASGI callable (no framework, no
auth, no middleware, no ORM), run by the same uvicorn as copool, with the check and the
insert in one statement (``INSERT … SELECT … WHERE NOT EXISTS (live booking overlapping)``)
so that a booking costs one round trip:

- PostgreSQL: psycopg's async connections in autocommit, statements prepared by psycopg
  after their fifth use; the overlap test is on the ``block`` range column, so it uses the
  exclusion constraint's GiST index (which also stays the last word on a race, 409).
- SQLite: one connection used on the event loop (a statement takes microseconds; a thread
  hop would cost more), copool's pragmas (WAL, ``synchronous=NORMAL``, foreign keys on);
  one statement is one transaction, so the check and the insert are atomic.

Run by benchmarks/booking.py as ``uvicorn --factory benchmarks._booking_app:app_factory``
with ``COPOOL_DATABASE_URL`` set. 201 ``{"id": …}`` when booked, 409 on a clash.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

LIVE = ("tentative", "pending_approval", "confirmed", "completed")
"""copool's live booking states (``app.bookings.models.LIVE_STATUSES``)."""
PG_CONNECTIONS = 16
"""Connections the anchor keeps to PostgreSQL (the load has 32 concurrent requests)."""

COLUMNS = (
    'id, resource_id, project_id, agreement_id, borrower_unit_id, lender_unit_id, created_by, '
    'title, start, "end", block_start, block_end, status, status_reason, sequence, '
    "created_at, updated_at"
)
_LIVE_SQL = ", ".join(f"'{s}'" for s in LIVE)
PG_INSERT = (
    f"INSERT INTO bookings ({COLUMNS}) "
    "SELECT %(id)s, %(resource_id)s, %(project_id)s, %(agreement_id)s, %(borrower_unit_id)s, "
    "%(lender_unit_id)s, %(created_by)s, 'anchor', %(start)s, %(end)s, %(start)s, %(end)s, "
    "'confirmed', '', 0, now(), now() "
    "WHERE NOT EXISTS (SELECT 1 FROM bookings WHERE resource_id = %(resource_id)s "
    f"AND status IN ({_LIVE_SQL}) AND block && tstzrange(%(start)s, %(end)s, '[)'))"
)
# SQLite as copool stores it: UUIDs as 16-byte blobs, instants as naive UTC text.
SQLITE_INSERT = (
    f"INSERT INTO bookings ({COLUMNS}) "
    "SELECT :id, :resource_id, :project_id, :agreement_id, :borrower_unit_id, "
    ":lender_unit_id, :created_by, 'anchor', :start, :end, :start, :end, "
    "'confirmed', '', 0, :now, :now "
    "WHERE NOT EXISTS (SELECT 1 FROM bookings WHERE resource_id = :resource_id "
    f"AND status IN ({_LIVE_SQL}) AND block_start < :end AND block_end > :start)"
)


class AnchorBooking(msgspec.Struct):
    """What the anchor needs to write one booking row."""

    resource_id: uuid.UUID
    project_id: uuid.UUID
    agreement_id: uuid.UUID | None
    borrower_unit_id: uuid.UUID
    lender_unit_id: uuid.UUID
    created_by: uuid.UUID
    start: datetime
    end: datetime


_decode = msgspec.json.Decoder(AnchorBooking).decode
Send = Callable[[dict[str, Any]], Awaitable[None]]
Receive = Callable[[], Awaitable[dict[str, Any]]]


def _sqlite_text(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


class Anchor:
    """The ASGI app: lifespan opens the connections, ``POST /anchor`` books."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite: sqlite3.Connection | None = None
        self.pool: asyncio.Queue[Any] | None = None

    async def _open(self) -> None:
        if self.url.startswith("sqlite"):
            conn = sqlite3.connect(self.url.split("///", 1)[1], isolation_level=None,
                                   check_same_thread=False)
            for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON",
                           "busy_timeout=30000"):
                conn.execute(f"PRAGMA {pragma}")
            self.sqlite = conn
            return
        import psycopg

        dsn = self.url.replace("postgresql+psycopg://", "postgresql://", 1)
        self.pool = asyncio.Queue()
        for _ in range(PG_CONNECTIONS):
            self.pool.put_nowait(await psycopg.AsyncConnection.connect(dsn, autocommit=True))

    async def _close(self) -> None:
        if self.sqlite is not None:
            self.sqlite.close()
        while self.pool is not None and not self.pool.empty():
            await self.pool.get_nowait().close()

    async def _book(self, data: AnchorBooking) -> bool:
        ident = uuid.uuid4()
        if self.sqlite is not None:
            cur = self.sqlite.execute(SQLITE_INSERT, {
                "id": ident.bytes, "resource_id": data.resource_id.bytes,
                "project_id": data.project_id.bytes,
                "agreement_id": data.agreement_id.bytes if data.agreement_id else None,
                "borrower_unit_id": data.borrower_unit_id.bytes,
                "lender_unit_id": data.lender_unit_id.bytes, "created_by": data.created_by.bytes,
                "start": _sqlite_text(data.start), "end": _sqlite_text(data.end),
                "now": _sqlite_text(datetime.now(UTC))})
            return cur.rowcount == 1
        assert self.pool is not None
        conn = await self.pool.get()
        try:
            cur = await conn.execute(PG_INSERT, {
                "id": ident, "resource_id": data.resource_id, "project_id": data.project_id,
                "agreement_id": data.agreement_id, "borrower_unit_id": data.borrower_unit_id,
                "lender_unit_id": data.lender_unit_id, "created_by": data.created_by,
                "start": data.start, "end": data.end})
            return cur.rowcount == 1
        except Exception as exc:  # the exclusion constraint caught a race: a clash
            if getattr(exc, "sqlstate", None) == "23P01":
                return False
            raise
        finally:
            self.pool.put_nowait(conn)

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await self._open()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await self._close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if scope["method"] == "GET" and scope["path"] == "/health":
            await _answer(send, 200, b'{"status":"ok"}')
        elif scope["method"] == "POST" and scope["path"] == "/anchor":
            try:
                data = _decode(body)
            except msgspec.ValidationError as exc:
                await _answer(send, 422, msgspec.json.encode({"detail": str(exc)}))
                return
            booked = await self._book(data)
            await _answer(send, 201 if booked else 409,
                          b'{"booked":true}' if booked else b'{"code":"overlap"}')
        else:
            await _answer(send, 404, b'{"detail":"not found"}')


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def app_factory() -> Anchor:
    """The anchor on ``COPOOL_DATABASE_URL``."""
    return Anchor(os.environ["COPOOL_DATABASE_URL"])
