"""``emit``: record a domain event and its deliveries in the caller's transaction.

The event and every delivery row are written by the same commit as the change they tell
about, so a crash after the commit loses nothing (the rows stay due for the worker) and a
rollback sends nothing. Recipients are resolved now: a named unit's users holding the
roles ``kinds.UNIT_ROLES`` lists for the kind, the users named directly, their webhook
endpoints and the units' endpoints whose filter takes the kind; never the actor.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from advanced_alchemy.mixins.uuid import uuid7
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.auth.models import User
from app.base import utcnow
from app.notifications import kinds
from app.notifications.models import (
    Channel,
    DeliveryStatus,
    NotificationDelivery,
    NotificationEvent,
    NotificationPreference,
    WebhookEndpoint,
)

_ALL_CHANNELS = tuple(c.value for c in Channel)


class UnknownKind(ValueError):
    """``emit`` was called with a kind ``kinds`` does not list (a programming error)."""


def emit(
    session: Session,
    kind: str,
    *,
    subject_type: str,
    subject_id: uuid.UUID,
    unit_ids: Collection[uuid.UUID] = (),
    user_ids: Collection[uuid.UUID] = (),
    data: Mapping[str, Any],
    actor_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Write one event of ``kind`` about ``subject`` for the units' and users' people (in the
    caller's transaction, nothing committed here); returns the event's stable id."""
    if kind not in kinds.UNIT_ROLES:
        raise UnknownKind(kind)
    units = list(dict.fromkeys(unit_ids))
    event = NotificationEvent(
        id=uuid7(),
        kind=kind,
        subject_type=subject_type,
        subject_id=subject_id,
        unit_id=units[0] if units else None,
        unit_ids=[str(u) for u in units],
        actor_id=actor_id,
        payload=dict(data),
    )
    session.add(event)
    users, prefs = _recipients(session, kind, units, user_ids, actor_id)
    rows = _user_deliveries(event.id, kind, users, prefs)
    hooked = [u for u in users if Channel.WEBHOOK.value in wanted(prefs.get(u), kind)]
    endpoints = _endpoints(session, kind, units, hooked)
    now = utcnow()
    rows += [
        NotificationDelivery(
            event_id=event.id,
            endpoint_id=e,
            channel=Channel.WEBHOOK.value,
            status=DeliveryStatus.PENDING.value,
            next_attempt_at=now,
        )
        for e in endpoints
    ]
    session.add_all(rows)
    session.flush()
    return event.id


def _recipients(
    session: Session,
    kind: str,
    units: list[uuid.UUID],
    user_ids: Collection[uuid.UUID],
    actor_id: uuid.UUID | None,
) -> tuple[list[uuid.UUID], dict[uuid.UUID, NotificationPreference]]:
    """Active users of the units holding one of the kind's roles, and the named users, with
    the preferences of those who chose any (one query)."""
    named = set(user_ids)
    if not units and not named:
        return [], {}
    conditions = []
    if units:
        conditions.append(User.unit_id.in_(units))
    if named:
        conditions.append(User.id.in_(named))
    candidates = session.execute(
        select(User.id, User.roles, NotificationPreference)
        .outerjoin(NotificationPreference, NotificationPreference.user_id == User.id)
        .where(User.active.is_(True), or_(*conditions))
    ).all()
    roles = set(kinds.UNIT_ROLES[kind])
    chosen: dict[uuid.UUID, NotificationPreference | None] = {
        uid: pref
        for uid, held, pref in candidates
        if (uid in named or roles.intersection(held or ())) and uid != actor_id
    }
    prefs = {uid: pref for uid, pref in chosen.items() if pref is not None}
    return sorted(chosen), prefs


def wanted(pref: NotificationPreference | None, kind: str) -> tuple[str, ...]:
    """The channels a user takes ``kind`` on (every channel unless they chose otherwise)."""
    if pref is None:
        return _ALL_CHANNELS
    return tuple(pref.channels.get(kind, _ALL_CHANNELS))


def _user_deliveries(
    event_id: uuid.UUID,
    kind: str,
    users: list[uuid.UUID],
    prefs: Mapping[uuid.UUID, NotificationPreference],
) -> list[NotificationDelivery]:
    """The inbox entry (delivered at once) and the e-mail (due now, or held for the digest)."""
    now = utcnow()
    rows: list[NotificationDelivery] = []
    for uid in users:
        pref = prefs.get(uid)
        channels = wanted(pref, kind)
        if Channel.INBOX.value in channels:
            rows.append(
                NotificationDelivery(
                    event_id=event_id,
                    user_id=uid,
                    channel=Channel.INBOX.value,
                    status=DeliveryStatus.DELIVERED.value,
                    delivered_at=now,
                )
            )
        if Channel.EMAIL.value in channels:
            digest = pref is not None and pref.email_digest
            rows.append(
                NotificationDelivery(
                    event_id=event_id,
                    user_id=uid,
                    channel=Channel.EMAIL.value,
                    status=(DeliveryStatus.DIGEST if digest else DeliveryStatus.PENDING).value,
                    next_attempt_at=now,
                )
            )
    return rows


def _endpoints(
    session: Session, kind: str, units: Iterable[uuid.UUID], users: Iterable[uuid.UUID]
) -> list[uuid.UUID]:
    """Live endpoints of the units and users whose event filter takes ``kind``."""
    unit_list, user_list = list(units), list(users)
    if not unit_list and not user_list:
        return []
    owner = []
    if unit_list:
        owner.append(WebhookEndpoint.unit_id.in_(unit_list))
    if user_list:
        owner.append(WebhookEndpoint.user_id.in_(user_list))
    rows = session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.events).where(
            WebhookEndpoint.active.is_(True),
            WebhookEndpoint.deleted_at.is_(None),
            or_(*owner),
        )
    ).all()
    return sorted({eid for eid, events in rows if not events or kind in events})
