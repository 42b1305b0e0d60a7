"""``Idempotency-Key`` on mutating POSTs: a retry gets the first answer, never a second effect.

One transaction holds both the effect and the answer. For a POST with the header, the
middleware reads the body (refusing more than ``MAX_BODY_BYTES`` with 413 as it reads),
authenticates the caller, and opens the request's own session, which the handler then
uses (advanced-alchemy finds it in the ASGI scope). In that transaction it claims the key
with ``INSERT … ON CONFLICT DO NOTHING`` on the unique ``(scope, key)``; the handler runs;
the answer is written into the claimed row; then the transaction commits and only then is
the answer sent. So:

- a concurrent retry's claim waits on the unique key for the first transaction (on
  PostgreSQL the insert blocks on the uncommitted row, on SQLite the writer lock orders
  whole transactions), then finds the committed answer and replays it — no polling;
- a crash before the commit leaves nothing behind (the claim rolls back with the work),
  so a retry after a restart simply runs; after the commit the retry finds the answer;
- keys are claimed only after authentication, scoped to the user (not the token), and a
  replay needs a valid, unrevoked key of that user; an unauthenticated request passes
  through untouched and gets its 401;
- the same key with another method, path or body is refused with 422;
- 4xx answers are kept (the effect rolled back, the answer stored in a transaction of its
  own); 5xx answers are not, so the client may retry them;
- answers that carry a secret (a new API key, a feed URL) are never stored: a replay of
  such a request answers 409 ``secret_not_replayable`` (the object was made once; list it);
- records expire after ``idempotency_ttl_hours`` (24 h by default): an expired key may be
  claimed anew, and ``copool bookings sweep`` purges them.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

import anyio.to_thread
from advanced_alchemy.extensions.litestar._utils import (
    delete_aa_scope_state,
    get_aa_scope_state,
    set_aa_scope_state,
)
from litestar.types import ASGIApp, Message, Scope
from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.auth.services import authenticate
from app.base import utcnow
from app.bookings.models import IdempotencyRecord
from app.db import make_session_factory
from app.errors import NotAuthenticated
from app.problems import PROBLEM_JSON, Problem

log = logging.getLogger("copool")

HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 200
MAX_BODY_BYTES = 10 * 1024 * 1024
"""Bodies of keyed POSTs are read up to this size; more is refused with 413 while reading."""
COMMIT_FAILED = "copool.commit_failed"
OWNED = "copool.idempotency.owned"
"""Scope flag: the middleware, not the before-send hook, commits this request's session."""
SECRET_PATHS = (
    re.compile(r"^/users/[^/]+/api-keys/?$"),
    re.compile(r"^/feed-subscriptions/?$"),
    re.compile(r"^/feed-subscriptions/[^/]+/rotate/?$"),
    re.compile(r"^/webhooks/?$"),
    re.compile(r"^/webhooks/[^/]+/rotate-secret/?$"),
)

Answer = tuple[int, str | None, bytes]


def commit_before_answering(autocommit: Any) -> Callable[[Message, Scope], None]:
    """The plugin's autocommit hook, made honest: a 2xx is sent only once its commit holds.

    The hook runs as the answer's first message leaves. It commits there; when the commit
    fails (a deferred constraint or trigger on PostgreSQL, a lost connection), the answer
    becomes a 503 problem with ``Retry-After`` instead of a 2xx for work that was not
    saved (advanced-alchemy's own hook only logs such a failure). Requests whose
    transaction the idempotency middleware owns are left to it.
    """

    def handler(message: Message, scope: Scope) -> None:
        if scope.get(OWNED):
            return
        failed: bytes | None = scope.get(COMMIT_FAILED)  # type: ignore[assignment]
        if failed is not None and message["type"] == "http.response.body":
            message["body"], message["more_body"] = failed, False
            return
        if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
            session = get_aa_scope_state(scope, scope["app"].state.session_scope_key)
            if session is not None:
                try:
                    session.commit()
                except Exception:
                    log.exception("commit failed; answering 503")
                    session.rollback()
                    body = _problem(503, "Service unavailable", "the change could not be "
                                    "saved; retry shortly")[2]
                    scope[COMMIT_FAILED] = body  # type: ignore[literal-required]
                    message["status"] = 503
                    message["headers"] = [
                        (b"content-type", PROBLEM_JSON.encode()),
                        (b"content-length", str(len(body)).encode()),
                        (b"retry-after", b"1"),
                    ]
        autocommit(message, scope)

    return handler


def _problem(status: int, title: str, detail: str, code: str | None = None) -> Answer:
    body = Problem(title=title, status=status, detail=detail, field="Idempotency-Key", code=code)
    return status, PROBLEM_JSON, body.model_dump_json(exclude_none=True).encode()


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    return pg_insert if dialect == "postgresql" else sqlite_insert


def _claim(
    session: Session, owner: str, key: str, digest: str, ttl: timedelta
) -> tuple[str, Answer | None]:
    """Claim the key in ``session``'s transaction, or say what its committed record holds."""
    insert = _insert(session)
    for _ in range(2):
        claimed = session.execute(
            insert(IdempotencyRecord)
            .values(scope=owner, key=key, request_sha256=digest, state="pending")
            .on_conflict_do_nothing(index_elements=["scope", "key"])
            .returning(IdempotencyRecord.id)
        ).first()
        if claimed is not None:
            return "claimed", None
        row = session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.scope == owner, IdempotencyRecord.key == key
            )
        )
        if row is None:
            continue  # stored as a 4xx and purged meanwhile: claim again
        if utcnow() - row.created_at > ttl:
            session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == row.id))
            continue
        if row.request_sha256 != digest:
            return "mismatch", None
        if row.state == "secret":
            return "secret", None
        return "done", (row.status_code or 200, row.content_type, row.body or b"")
    return "mismatch", None


def _open(
    factory: Any, token: str, touch: int, cache: float, owner_key: str, digest: str,
    ttl: timedelta,
) -> tuple[Session | None, str, Answer | None]:
    """Authenticate and claim in a new session (None: not authenticated, pass through)."""
    session: Session = factory()
    try:
        actor = authenticate(session, token, touch_seconds=touch, cache_seconds=cache)
    except NotAuthenticated:
        session.rollback()
        session.close()
        return None, "anonymous", None
    outcome, answer = _claim(session, str(actor.user_id), owner_key, digest, ttl)
    if outcome != "claimed":
        session.commit()  # the touch of last_used_at; nothing else was written
        session.close()
        return None, outcome, answer
    session.info["idempotency"] = (str(actor.user_id), owner_key)
    return session, outcome, None


def _store(session: Session, state: str, answer: Answer) -> None:
    owner, key = session.info["idempotency"]
    status, content_type, body = answer
    session.execute(
        update(IdempotencyRecord)
        .where(IdempotencyRecord.scope == owner, IdempotencyRecord.key == key)
        .values(
            state=state,
            status_code=status,
            content_type=content_type,
            body=None if state == "secret" else body,
        )
    )


def _finish(session: Session, answer: Answer, secret: bool, digest: str) -> Answer:
    """Commit the effect with its answer (2xx/3xx), or keep only the answer (4xx), or neither."""
    state = "secret" if secret else "done"
    status = answer[0]
    try:
        if status < 400:
            _store(session, state, answer)
            session.commit()
            return answer
        session.rollback()
        if status < 500:
            owner, key = session.info["idempotency"]
            session.execute(
                _insert(session)(IdempotencyRecord)
                .values(scope=owner, key=key, request_sha256=digest, state=state,
                        status_code=status, content_type=answer[1],
                        body=None if secret else answer[2])
                .on_conflict_do_nothing(index_elements=["scope", "key"])
            )
            session.commit()
        return answer
    except Exception:
        session.rollback()
        return _problem(503, "Service unavailable", "the request could not be committed; retry "
                        "with the same Idempotency-Key")
    finally:
        session.close()


async def _send(send: Any, answer: Answer, replayed: bool) -> None:
    status, content_type, body = answer
    headers = [
        (b"content-type", (content_type or "application/json").encode()),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
    ]
    if replayed:
        headers.append((b"idempotent-replayed", b"true"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _read_body(receive: Any) -> bytes | None:
    """The request body, or None once it passes ``MAX_BODY_BYTES`` (read no further)."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _key(scope: Any) -> tuple[str | None, str]:
    """The Idempotency-Key (None: absent) and the bearer token of a request."""
    headers = dict(scope["headers"])
    raw = headers.get(HEADER)
    scheme, _, token = headers.get(b"authorization", b"").decode("latin-1").partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    return (None if raw is None else raw.decode("latin-1").strip()), token


class IdempotencyMiddleware:
    """ASGI middleware applying the rules in the module docstring to every keyed POST."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        key, token = _key(scope) if scope["type"] == "http" else (None, "")
        if scope["type"] != "http" or scope["method"] != "POST" or key is None:
            await self.app(scope, receive, send)
            return
        if not key or len(key) > MAX_KEY_LENGTH:
            detail = f"Idempotency-Key: 1 to {MAX_KEY_LENGTH} characters"
            await _send(send, _problem(400, "Invalid input", detail), replayed=False)
            return
        body = await _read_body(receive)
        if body is None:
            detail = f"the body passes {MAX_BODY_BYTES} bytes"
            await _send(send, _problem(413, "Request too large", detail), replayed=False)
            return
        digest = hashlib.sha256(
            b"\n".join([b"POST", scope["path"].encode(), scope.get("query_string", b""), body])
        ).hexdigest()
        state = scope["app"].state
        settings = state.settings
        session, outcome, answer = await anyio.to_thread.run_sync(
            _open, make_session_factory(state.engine), token, settings.api_key_touch_seconds,
            settings.auth_cache_seconds, key, digest, timedelta(hours=settings.idempotency_ttl_hours),
        )
        replay = _replaying(body)
        if outcome == "anonymous":
            await self.app(scope, replay, send)  # type: ignore[arg-type]
        elif outcome == "mismatch":
            await _send(send, _problem(422, "Idempotency key reused", "this Idempotency-Key "
                                       "was used with a different request"), replayed=False)
        elif outcome == "secret":
            await _send(send, _problem(409, "Not replayable", "the first answer carried a "
                                       "secret, which copool does not keep; the object was "
                                       "made once: list it", "secret_not_replayable"),
                        replayed=True)
        elif outcome == "done":
            assert answer is not None
            await _send(send, answer, replayed=True)
        else:
            assert session is not None
            await self._run(scope, replay, send, session, digest, state.session_scope_key)

    async def _run(
        self, scope: Any, receive: Callable[[], Awaitable[Any]], send: Any, session: Session,
        digest: str, session_key: str,
    ) -> None:
        """Run the handler on the claimed session; commit with the answer, then send it."""
        scope[OWNED] = True
        set_aa_scope_state(scope, session_key, session)
        captured: list[dict[str, Any]] = []

        async def capture(message: dict[str, Any]) -> None:
            captured.append(message)

        try:
            await self.app(scope, receive, capture)  # type: ignore[arg-type]
        finally:
            delete_aa_scope_state(scope, session_key)
        start = next((m for m in captured if m["type"] == "http.response.start"), None)
        status = start["status"] if start else 500
        content_type = next(
            (v.decode("latin-1") for n, v in (start or {}).get("headers", [])
             if n.lower() == b"content-type"),
            None,
        )
        body = b"".join(m.get("body", b"") for m in captured if m["type"] == "http.response.body")
        secret = any(p.match(scope["path"]) for p in SECRET_PATHS)
        final = await anyio.to_thread.run_sync(
            _finish, session, (status, content_type, body), secret, digest
        )
        if final[0] == status and start is not None:
            for message in captured:
                await send(message)
        else:
            await _send(send, final, replayed=False)


def _replaying(body: bytes) -> Callable[[], Awaitable[dict[str, Any]]]:
    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def purge(session: Session, now: datetime, ttl: timedelta) -> int:
    """Delete idempotency records older than ``ttl``; returns how many."""
    result = session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < now - ttl)
    )
    return int(getattr(result, "rowcount", 0) or 0)
