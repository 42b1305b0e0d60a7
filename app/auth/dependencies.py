"""Resolving the bearer token of a request into an ``Actor``."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from litestar import Request
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.auth.policy import check_auditor_write
from app.auth.services import authenticate, identify, touch_due, touch_key
from app.bookings.idempotency import OWNED
from app.db import NOWAIT, READ_METHODS, is_lock_failure
from app.errors import Busy, NotAuthenticated
from app.settings import Settings

log = logging.getLogger("copool")


def touch_without_waiting(engine: Engine, key_id: uuid.UUID) -> None:
    """Stamp a key's ``last_used_at`` in a short write transaction of its own that never
    waits for a lock: when the writer lock (SQLite) or the key's row (PostgreSQL) is taken, the stamp
    is skipped and a later request makes it. For GETs, whose own transaction is read-only."""
    try:
        with Session(bind=engine) as session:
            session.connection(execution_options={NOWAIT: True})
            touch_key(session, key_id)
            session.commit()
    except Busy:
        log.debug("last_used_at of key %s not stamped: the writer is busy", key_id)
    except DBAPIError as exc:
        if not is_lock_failure(exc):
            raise
        log.debug("last_used_at of key %s not stamped: %s", key_id, exc.orig)


def provide_actor(
    request: Request[Any, Any, Any], db_session: Session, settings: Settings
) -> Actor:
    """The caller, from ``Authorization: Bearer <key>``; 401 otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("send an API key as 'Authorization: Bearer <key>'")
    if request.method in READ_METHODS:
        # The request's transaction is read-only (app.main): authenticate there, and stamp
        # last_used_at, when due, beside it without waiting for writers.
        actor, key = identify(
            db_session, token.strip(), cache_seconds=settings.auth_cache_seconds
        )
        if touch_due(key, settings.api_key_touch_seconds):
            # Hand the read's connection back first, so that no request ever holds one
            # connection while waiting for a second (a pool deadlock under load).
            db_session.commit()
            touch_without_waiting(request.app.state.engine, key.id)
        return actor
    try:
        actor = authenticate(
            db_session,
            token.strip(),
            touch_seconds=settings.api_key_touch_seconds,
            cache_seconds=settings.auth_cache_seconds,
        )
    except NotAuthenticated:
        # Give SQLite's writer lock back now, not when the 401 is sent: the throttle
        # (app.throttle) counts the failure in a write transaction of its own first.
        db_session.rollback()
        raise
    check_auditor_write(actor, request.method, request.scope.get("path_template", ""))
    if request.scope.get(OWNED):
        # A keyed POST: the claim, the work and the answer share one transaction, which
        # the idempotency middleware commits (app.bookings.idempotency).
        return actor
    # End this transaction here, in the dependency's worker thread. Left open, it would hold
    # SQLite's writer lock (app.db) until the handler, in another thread-pool hop, finished:
    # with every pool thread waiting for that lock, the handler never got a thread (deadlock).
    db_session.commit()
    return actor
