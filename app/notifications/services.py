"""Webhook endpoints, the inbox and preferences: what the controllers call.

Who may do what: anyone (but auditors, who only read) keeps endpoints of their own; a
unit's endpoints are kept by its unit managers (admins: every unit's). Another unit's
endpoint answers 404, like every invisible object.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.auth.models import Role
from app.base import utcnow
from app.errors import InvalidInput, NotFound
from app.notifications.addresses import url_problem
from app.notifications.models import (
    Channel,
    NotificationDelivery,
    NotificationEvent,
    NotificationPreference,
    WebhookEndpoint,
)
from app.notifications.schemas import Preferences, WebhookCreate, WebhookUpdate
from app.notifications.signing import new_secret
from app.settings import Settings

ROTATION_OVERLAP = timedelta(hours=24)
"""How long the previous secret keeps signing after a rotation."""


def _check_url(url: str, settings: Settings) -> None:
    problem = url_problem(url, allow_http_loopback=settings.webhook_allow_http_loopback)
    if problem:
        raise InvalidInput(f"url: {problem}", field="url")


def create_webhook(
    session: Session, actor: Actor, data: WebhookCreate, settings: Settings
) -> WebhookEndpoint:
    """Make an endpoint with a fresh secret (returned once by the controller)."""
    _check_url(data.url, settings)
    if data.unit_id is not None and not actor.manages_unit(data.unit_id, Role.UNIT_MANAGER):
        raise NotFound(f"unit {data.unit_id} not found")
    endpoint = WebhookEndpoint(
        unit_id=data.unit_id,
        user_id=None if data.unit_id else actor.user_id,
        created_by=actor.user_id,
        url=data.url,
        description=data.description,
        events=data.events,
        secret=new_secret(),
    )
    session.add(endpoint)
    session.flush()
    return endpoint


def _visible(actor: Actor) -> ColumnElement[bool]:
    if actor.is_admin:
        return WebhookEndpoint.deleted_at.is_(None)
    mine = WebhookEndpoint.user_id == actor.user_id
    if actor.has(Role.UNIT_MANAGER):
        mine = mine | (WebhookEndpoint.unit_id == actor.unit_id)
    return WebhookEndpoint.deleted_at.is_(None) & mine


def get_webhook(session: Session, actor: Actor, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    """One endpoint the actor keeps, or 404."""
    endpoint = session.scalar(
        select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, _visible(actor))
    )
    if endpoint is None:
        raise NotFound(f"webhook {endpoint_id} not found")
    return endpoint


def list_webhooks(
    session: Session, actor: Actor, limit: int, offset: int
) -> tuple[list[WebhookEndpoint], int]:
    """The endpoints the actor keeps, oldest first, and how many there are."""
    query = select(WebhookEndpoint).where(_visible(actor))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(WebhookEndpoint.created_at, WebhookEndpoint.id).limit(limit).offset(offset)
    )
    return list(rows), total


def update_webhook(
    session: Session, actor: Actor, endpoint_id: uuid.UUID, data: WebhookUpdate, settings: Settings
) -> WebhookEndpoint:
    """Change an endpoint; re-enabling it clears its failure streak."""
    endpoint = get_webhook(session, actor, endpoint_id)
    if data.url is not None:
        _check_url(data.url, settings)
        endpoint.url = data.url
    if data.events is not None:
        endpoint.events = data.events
    if data.description is not None:
        endpoint.description = data.description
    if data.active is not None and data.active != endpoint.active:
        endpoint.active = data.active
        endpoint.disabled_at = None if data.active else utcnow()
        endpoint.consecutive_failures, endpoint.failing_since = 0, None
    session.flush()
    return endpoint


def delete_webhook(session: Session, actor: Actor, endpoint_id: uuid.UUID) -> None:
    """Delete an endpoint: nothing more is sent to it; its delivery log stays."""
    endpoint = get_webhook(session, actor, endpoint_id)
    endpoint.deleted_at, endpoint.active = utcnow(), False
    session.flush()


def rotate_secret(session: Session, actor: Actor, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    """A new secret; the old one signs too (a second signature) for 24 hours."""
    endpoint = get_webhook(session, actor, endpoint_id)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = utcnow() + ROTATION_OVERLAP
    endpoint.secret = new_secret()
    session.flush()
    return endpoint


def deliveries(
    session: Session, actor: Actor, endpoint_id: uuid.UUID, limit: int, offset: int
) -> tuple[list[tuple[NotificationDelivery, str]], int]:
    """An endpoint's delivery log, newest first, with each event's kind."""
    get_webhook(session, actor, endpoint_id)
    where = NotificationDelivery.endpoint_id == endpoint_id
    total = session.scalar(select(func.count()).select_from(NotificationDelivery).where(where))
    rows = session.execute(
        select(NotificationDelivery, NotificationEvent.kind)
        .join(NotificationEvent, NotificationEvent.id == NotificationDelivery.event_id)
        .where(where)
        .order_by(NotificationDelivery.created_at.desc(), NotificationDelivery.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [(d, k) for d, k in rows], total or 0


def _inbox(actor: Actor) -> ColumnElement[bool]:
    return (NotificationDelivery.user_id == actor.user_id) & (
        NotificationDelivery.channel == Channel.INBOX.value
    )


def inbox(
    session: Session, actor: Actor, *, unread: bool | None, limit: int, offset: int
) -> tuple[list[tuple[NotificationDelivery, NotificationEvent]], int]:
    """The actor's inbox, newest first (``unread``: only unread, or only read)."""
    where = _inbox(actor)
    if unread is not None:
        where = where & (
            NotificationDelivery.read_at.is_(None)
            if unread
            else NotificationDelivery.read_at.is_not(None)
        )
    total = session.scalar(select(func.count()).select_from(NotificationDelivery).where(where))
    rows = session.execute(
        select(NotificationDelivery, NotificationEvent)
        .join(NotificationEvent, NotificationEvent.id == NotificationDelivery.event_id)
        .where(where)
        .order_by(NotificationEvent.created_at.desc(), NotificationDelivery.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [(d, e) for d, e in rows], total or 0


def mark_read(
    session: Session, actor: Actor, notification_id: uuid.UUID
) -> tuple[NotificationDelivery, NotificationEvent]:
    """Mark one inbox entry read (again: no change)."""
    row = session.execute(
        select(NotificationDelivery, NotificationEvent)
        .join(NotificationEvent, NotificationEvent.id == NotificationDelivery.event_id)
        .where(NotificationDelivery.id == notification_id, _inbox(actor))
    ).first()
    if row is None:
        raise NotFound(f"notification {notification_id} not found")
    delivery, event = row
    delivery.read_at = delivery.read_at or utcnow()
    session.flush()
    return delivery, event


def mark_all_read(session: Session, actor: Actor, now: datetime | None = None) -> int:
    """Mark every unread inbox entry read; how many there were."""
    result = session.execute(
        update(NotificationDelivery)
        .where(_inbox(actor), NotificationDelivery.read_at.is_(None))
        .values(read_at=now or utcnow())
    )
    return int(getattr(result, "rowcount", 0) or 0)


def get_preferences(session: Session, actor: Actor) -> Preferences:
    """The actor's choices (every channel for every kind, no digest, until they choose)."""
    pref = session.scalar(
        select(NotificationPreference).where(NotificationPreference.user_id == actor.user_id)
    )
    if pref is None:
        return Preferences()
    return Preferences.model_validate(
        {"channels": pref.channels, "email_digest": pref.email_digest}
    )


def put_preferences(session: Session, actor: Actor, data: Preferences) -> Preferences:
    """Replace the actor's choices as a whole."""
    pref = session.scalar(
        select(NotificationPreference)
        .where(NotificationPreference.user_id == actor.user_id)
        .with_for_update()
    )
    if pref is None:
        pref = NotificationPreference(user_id=actor.user_id)
        session.add(pref)
    pref.channels = {k: [c.value for c in v] for k, v in data.channels.items()}
    pref.email_digest = data.email_digest
    session.flush()
    return get_preferences(session, actor)
