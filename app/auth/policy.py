"""Auditors read everything and write nothing but their own calendar feed subscriptions.

A user who holds the ``auditor`` role (and not ``admin``) may send only these writes:

- ``POST /feed-subscriptions`` (subscribe to a feed: it is theirs),
- ``POST /feed-subscriptions/{feed_id}/rotate`` and ``…/revoke`` (of their own feeds; the
  feeds service answers 404 for anyone else's).

Every other write, API key issuance and revocation included, answers 403 before the
request body is read. The check runs where the caller is identified
(``app.auth.dependencies.provide_actor``), so no route can forget it.
"""

from __future__ import annotations

from app.auth.actor import Actor
from app.auth.models import Role
from app.errors import PermissionDenied

AUDITOR_WRITES = frozenset(
    {
        ("POST", "/feed-subscriptions"),
        ("POST", "/feed-subscriptions/{feed_id}/rotate"),
        ("POST", "/feed-subscriptions/{feed_id}/revoke"),
    }
)
"""(method, path template) of the only writes an auditor may send."""

READ_ONLY_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def check_auditor_write(actor: Actor, method: str, path_template: str) -> None:
    """Refuse (403) a write by an auditor unless it is one of ``AUDITOR_WRITES``."""
    if Role.AUDITOR not in actor.roles or actor.is_admin or method in READ_ONLY_METHODS:
        return
    if (method, path_template.rstrip("/") or "/") in AUDITOR_WRITES:
        return
    raise PermissionDenied(
        "auditors only read; the one write they may make is to their own feed subscriptions"
    )
