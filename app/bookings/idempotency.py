"""``Idempotency-Key`` on mutating POSTs: a retry gets the first answer, never a second effect.

The first request with a key claims it by inserting a ``pending`` record (a unique
constraint on ``(scope, key)`` lets exactly one request win, on both engines); its answer
is stored when it has been sent. A retry with the same key and the same method, path and
body gets the stored answer (header ``Idempotent-Replayed: true``); a retry while the first
is still running waits for it (up to ``WAIT_SECONDS``, then 409); the same key with a
different request is refused with 422. Answers of 5xx are not kept, so the client may
retry them. ``scope`` is the SHA-256 of the caller's bearer token: keys never collide
across callers, and an unauthenticated request is passed through untouched (it gets 401).
A record stays pending forever only if the process died mid-request; such a key answers
409 until the record is older than ``STALE_SECONDS``, after which it may be claimed anew.
"""

from __future__ import annotations

import asyncio
import hashlib
from datetime import timedelta
from typing import Any

import anyio.to_thread
from litestar.types import ASGIApp
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import IntegrityError

from app.base import utcnow
from app.bookings.models import IdempotencyRecord
from app.db import make_session_factory
from app.problems import PROBLEM_JSON, Problem

HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 200
WAIT_SECONDS = 15.0
STALE_SECONDS = 300


def _problem(status: int, title: str, detail: str) -> tuple[int, str, bytes]:
    body = Problem(title=title, status=status, detail=detail, field="Idempotency-Key")
    return status, PROBLEM_JSON, body.model_dump_json().encode()


def _claim(engine: Engine, scope: str, key: str, digest: str) -> tuple[str, Any]:
    """Insert a pending record, or report what the existing one says."""
    factory = make_session_factory(engine)
    with factory() as session:
        try:
            session.add(IdempotencyRecord(scope=scope, key=key, request_sha256=digest))
            session.commit()
            return "claimed", None
        except IntegrityError:
            session.rollback()
        row = session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
            )
        )
        session.commit()
        if row is None:  # deleted after a 5xx between our insert and select: claim again
            return "retry", None
        if row.request_sha256 != digest:
            return "mismatch", None
        if row.state == "done":
            return "done", (row.status_code, row.content_type, row.body)
        if utcnow() - row.created_at > timedelta(seconds=STALE_SECONDS):
            with factory() as s2:
                s2.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == row.id))
                s2.commit()
            return "retry", None
        return "pending", None


def _finish(
    engine: Engine, scope: str, key: str, status: int, content_type: str | None, body: bytes
) -> None:
    with make_session_factory(engine)() as session:
        condition = (IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
        if status >= 500:
            session.execute(delete(IdempotencyRecord).where(*condition))
        else:
            session.execute(
                update(IdempotencyRecord)
                .where(*condition)
                .values(state="done", status_code=status, content_type=content_type, body=body)
            )
        session.commit()


async def _send_stored(
    send: Any, status: int, content_type: str | None, body: bytes, replayed: bool
) -> None:
    headers = [
        (b"content-type", (content_type or "application/json").encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class IdempotencyMiddleware:
    """ASGI middleware applying the rules in the module docstring to every POST."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        raw_key = headers.get(HEADER)
        token = headers.get(b"authorization", b"")
        if raw_key is None or not token:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1").strip()
        if not key or len(key) > MAX_KEY_LENGTH:
            await _send_stored(
                send,
                *_problem(
                    400, "Invalid input", f"Idempotency-Key: 1 to {MAX_KEY_LENGTH} characters"
                ),
                replayed=False,
            )
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        owner = hashlib.sha256(token).hexdigest()
        digest = hashlib.sha256(
            b"\n".join(
                [
                    scope["method"].encode(),
                    scope["path"].encode(),
                    scope.get("query_string", b""),
                    body,
                ]
            )
        ).hexdigest()
        engine: Engine = scope["app"].state.engine

        deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
        while True:
            outcome, stored = await anyio.to_thread.run_sync(_claim, engine, owner, key, digest)
            if outcome == "mismatch":
                await _send_stored(
                    send,
                    *_problem(
                        422,
                        "Idempotency key reused",
                        "this Idempotency-Key was used with a different request",
                    ),
                    replayed=False,
                )
                return
            if outcome == "done":
                await _send_stored(send, stored[0], stored[1], stored[2] or b"", replayed=True)
                return
            if outcome == "claimed":
                break
            if asyncio.get_running_loop().time() > deadline:
                await _send_stored(
                    send,
                    *_problem(
                        409,
                        "Conflict",
                        "the first request with this Idempotency-Key is still running",
                    ),
                    replayed=False,
                )
                return
            await asyncio.sleep(0.05 if outcome == "pending" else 0)

        sent_body = False

        async def replay_receive() -> dict[str, Any]:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 500
        content_type: str | None = None
        answer: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            nonlocal status, content_type
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name.lower() == b"content-type":
                        content_type = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, replay_receive, capture)  # type: ignore[arg-type]
        finally:
            await anyio.to_thread.run_sync(
                _finish, engine, owner, key, status, content_type, b"".join(answer)
            )
