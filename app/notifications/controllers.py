"""HTTP routes: webhook endpoints (``/webhooks``), the inbox (``/me/notifications``) and
notification preferences (``/me/notification-preferences``)."""

from __future__ import annotations

import uuid

from litestar import Controller
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.notifications import services
from app.notifications.models import NotificationDelivery, NotificationEvent, WebhookEndpoint
from app.notifications.schemas import (
    DeliveryRead,
    NotificationRead,
    Preferences,
    ReadAll,
    WebhookCreate,
    WebhookIssued,
    WebhookRead,
    WebhookUpdate,
)
from app.pagination import Limit, Offset, page
from app.problems import LIST, READ, WRITE, problems
from app.routing import delete, get, patch, post, put
from app.schemas import Page
from app.settings import Settings

SIGNING = (
    "Each event is POSTed as JSON (`id`, `type`, `timestamp`, `data`) with the Standard "
    "Webhooks headers `webhook-id` (the event's stable id: deduplicate on it), "
    "`webhook-timestamp` and `webhook-signature: v1,<base64 HMAC-SHA256 of "
    "'id.timestamp.body'>` (two signatures for 24 h after a rotation). Redirects are not "
    "followed; private addresses are refused at delivery; failures are retried with backoff "
    "for a day; the endpoint is disabled after repeated failure."
)


def _issued(endpoint: WebhookEndpoint) -> WebhookIssued:
    return WebhookIssued(
        **WebhookRead.model_validate(endpoint).model_dump(), secret=endpoint.secret
    )


def _notification(delivery: NotificationDelivery, event: NotificationEvent) -> NotificationRead:
    return NotificationRead(
        id=delivery.id,
        event_id=event.id,
        kind=event.kind,
        subject_type=event.subject_type,
        subject_id=event.subject_id,
        unit_id=event.unit_id,
        data=event.payload,
        created_at=event.created_at,
        read_at=delivery.read_at,
    )


class WebhookController(Controller):
    """Signed HTTPS receivers of a unit's or the caller's events."""

    path = "/webhooks"
    tags = ["notifications"]

    @post(
        "/",
        responses=WRITE,
        summary="Add a webhook endpoint (its secret is shown once)",
        description=SIGNING,
    )
    def create_webhook(
        self, actor: Actor, db_session: Session, settings: Settings, data: WebhookCreate
    ) -> WebhookIssued:
        return _issued(services.create_webhook(db_session, actor, data, settings))

    @get("/", responses=LIST, summary="The webhook endpoints the caller keeps")
    def list_webhooks(
        self, actor: Actor, db_session: Session, limit: Limit = 50, offset: Offset = 0
    ) -> Page[WebhookRead]:
        rows, total = services.list_webhooks(db_session, actor, limit, offset)
        return page(WebhookRead, rows, total, limit, offset)

    @get("/{webhook_id:uuid}", responses=READ, summary="One webhook endpoint")
    def get_webhook(self, actor: Actor, db_session: Session, webhook_id: uuid.UUID) -> WebhookRead:
        return WebhookRead.model_validate(services.get_webhook(db_session, actor, webhook_id))

    @patch("/{webhook_id:uuid}", responses=WRITE, summary="Change or re-enable an endpoint")
    def update_webhook(
        self,
        actor: Actor,
        db_session: Session,
        settings: Settings,
        webhook_id: uuid.UUID,
        data: WebhookUpdate,
    ) -> WebhookRead:
        endpoint = services.update_webhook(db_session, actor, webhook_id, data, settings)
        return WebhookRead.model_validate(endpoint)

    @delete("/{webhook_id:uuid}", status_code=204, responses=WRITE, summary="Delete an endpoint")
    def delete_webhook(self, actor: Actor, db_session: Session, webhook_id: uuid.UUID) -> None:
        services.delete_webhook(db_session, actor, webhook_id)

    @post(
        "/{webhook_id:uuid}/rotate-secret",
        status_code=200,
        responses=WRITE,
        summary="New signing secret; the old one keeps signing (a second signature) for 24 h",
    )
    def rotate_secret(
        self, actor: Actor, db_session: Session, webhook_id: uuid.UUID
    ) -> WebhookIssued:
        return _issued(services.rotate_secret(db_session, actor, webhook_id))

    @get(
        "/{webhook_id:uuid}/deliveries",
        responses=problems(400, 401, 403, 404, 429, 503),
        summary="An endpoint's delivery log",
    )
    def list_deliveries(
        self,
        actor: Actor,
        db_session: Session,
        webhook_id: uuid.UUID,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[DeliveryRead]:
        rows, total = services.deliveries(db_session, actor, webhook_id, limit, offset)
        items = [DeliveryRead.model_validate({**_columns(d), "kind": kind}) for d, kind in rows]
        return Page[DeliveryRead](items=items, total=total, limit=limit, offset=offset)


def _columns(d: NotificationDelivery) -> dict[str, object]:
    return {
        "id": d.id,
        "event_id": d.event_id,
        "status": d.status,
        "attempts": d.attempts,
        "next_attempt_at": d.next_attempt_at,
        "last_error": d.last_error,
        "delivered_at": d.delivered_at,
        "created_at": d.created_at,
    }


class InboxController(Controller):
    """The caller's in-app notifications and preferences."""

    path = "/me"
    tags = ["notifications"]

    @get("/notifications", responses=LIST, summary="The caller's notifications, newest first")
    def list_notifications(
        self,
        actor: Actor,
        db_session: Session,
        unread: bool | None = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[NotificationRead]:
        rows, total = services.inbox(db_session, actor, unread=unread, limit=limit, offset=offset)
        items = [_notification(d, e) for d, e in rows]
        return Page[NotificationRead](items=items, total=total, limit=limit, offset=offset)

    @post(
        "/notifications/{notification_id:uuid}/read",
        status_code=200,
        responses=WRITE,
        summary="Mark one notification read",
    )
    def mark_read(
        self, actor: Actor, db_session: Session, notification_id: uuid.UUID
    ) -> NotificationRead:
        return _notification(*services.mark_read(db_session, actor, notification_id))

    @post(
        "/notifications/read-all",
        status_code=200,
        responses=WRITE,
        summary="Mark every unread notification read",
    )
    def mark_all_read(self, actor: Actor, db_session: Session) -> ReadAll:
        return ReadAll(marked=services.mark_all_read(db_session, actor))

    @get(
        "/notification-preferences",
        responses=READ,
        summary="Channels per event kind, and the daily e-mail digest",
    )
    def get_preferences(self, actor: Actor, db_session: Session) -> Preferences:
        return services.get_preferences(db_session, actor)

    @put(
        "/notification-preferences",
        responses=WRITE,
        summary="Replace the caller's notification preferences",
        description="`channels` maps an event kind to the channels it reaches the caller on "
        "(`inbox`, `email`, `webhook`: the caller's own endpoints); kinds left out reach "
        "every channel. `email_digest`: e-mails wait for one message a day (07:00 UTC).",
    )
    def put_preferences(self, actor: Actor, db_session: Session, data: Preferences) -> Preferences:
        return services.put_preferences(db_session, actor, data)
