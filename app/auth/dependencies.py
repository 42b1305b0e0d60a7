"""Resolving the bearer token of a request into an ``Actor``."""

from __future__ import annotations

from typing import Any

from litestar import Request
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.auth.services import authenticate
from app.bookings.idempotency import OWNED
from app.errors import NotAuthenticated
from app.settings import Settings


def provide_actor(
    request: Request[Any, Any, Any], db_session: Session, settings: Settings
) -> Actor:
    """The caller, from ``Authorization: Bearer <key>``; 401 otherwise."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise NotAuthenticated("send an API key as 'Authorization: Bearer <key>'")
    actor = authenticate(db_session, token.strip(), touch_seconds=settings.api_key_touch_seconds)
    if request.scope.get(OWNED):
        # A keyed POST: the claim, the work and the answer share one transaction, which
        # the idempotency middleware commits (app.bookings.idempotency).
        return actor
    # End this transaction here, in the dependency's worker thread. Left open, it would hold
    # SQLite's writer lock (app.db) until the handler, in another thread-pool hop, finished:
    # with every pool thread waiting for that lock, the handler never got a thread (deadlock).
    db_session.commit()
    return actor
