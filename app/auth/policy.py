"""Who sees what beyond their own unit: auditors, and co-funders of a project.

Co-funders. A unit that holds a cost share (``project_shares.share_bp > 0``) in a project
co-funds it: its users see the project's bookings, titles included, in ``GET /bookings``
(and each booking by id) and in their unit's calendar feed, as the borrowing and lending
units do. Seeing is all: changing a booking still needs the borrower's or lender's side.

Auditors read everything and write nothing but their own calendar feed subscriptions and
their own inbox (what they have read, which notifications they want).

A user who holds the ``auditor`` role (and not ``admin``) may send only these writes:

- ``POST /feed-subscriptions`` (subscribe to a feed: it is theirs),
- ``POST /feed-subscriptions/{feed_id}/rotate`` and ``…/revoke`` (of their own feeds; the
  feeds service answers 404 for anyone else's),
- ``POST /me/notifications/{notification_id}/read``, ``POST /me/notifications/read-all``
  and ``PUT /me/notification-preferences`` (their own inbox and preferences).

Every other write, API key issuance and revocation included, answers 403 before the
request body is read. The check runs where the caller is identified
(``app.auth.dependencies.provide_actor``), so no route can forget it.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import ColumnElement, Select, or_, select, true

from app.auth.actor import Actor
from app.auth.models import Role
from app.bookings.models import Booking
from app.errors import PermissionDenied
from app.projects.models import ProjectShare

AUDITOR_WRITES = frozenset(
    {
        ("POST", "/feed-subscriptions"),
        ("POST", "/feed-subscriptions/{feed_id}/rotate"),
        ("POST", "/feed-subscriptions/{feed_id}/revoke"),
        ("POST", "/me/notifications/{notification_id}/read"),
        ("POST", "/me/notifications/read-all"),
        ("PUT", "/me/notification-preferences"),
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
        "auditors only read; the writes they may make are to their own feed subscriptions "
        "and their own inbox"
    )


def cofunded_projects(unit: uuid.UUID | ColumnElement[Any]) -> Select[uuid.UUID]:
    """SQL: the projects in which ``unit`` (an id or a bound parameter) holds a cost share."""
    return select(ProjectShare.project_id).where(
        ProjectShare.unit_id == unit, ProjectShare.share_bp > 0
    )


def booking_visible(actor: Actor, booking: type[Booking] = Booking) -> ColumnElement[bool]:
    """SQL: the bookings ``actor`` may read: their unit borrows or lends them, or co-funds
    the project (admins and auditors: all)."""
    if actor.sees_everything:
        return true()
    return or_(
        booking.borrower_unit_id == actor.unit_id,
        booking.lender_unit_id == actor.unit_id,
        booking.project_id.in_(cofunded_projects(actor.unit_id)),
    )
