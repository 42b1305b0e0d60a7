"""The deliverer: claim due deliveries, send them outside any transaction, record results.

At least once: a delivery row is written with its event (``outbox.emit``) and stays
``pending`` until a send succeeded. Claiming pushes ``next_attempt_at`` out by the lease
(``COPOOL_NOTIFY_LEASE_SECONDS``) and counts the attempt in one short transaction
(PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so workers never claim the same row; SQLite: the
single writer); a worker that dies before recording leaves the row due again when the
lease runs out. A failure is retried after an exponential delay with jitter
(:func:`backoff`) until ``COPOOL_NOTIFY_RETRY_HOURS`` after the event, then ``failed``.
Receivers deduplicate by the event's stable id (``webhook-id``, ``X-Copool-Event-Id``).
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.auth.models import User
from app.base import utcnow
from app.db import session_scope
from app.notifications import mail, signing
from app.notifications.addresses import RefusedAddress, check_destination, pinned
from app.notifications.models import (
    Channel,
    DeliveryStatus,
    NotificationDelivery,
    NotificationEvent,
    WebhookEndpoint,
)
from app.settings import Settings


def backoff(
    attempt: int, settings: Settings, rng: Callable[[], float] = random.random
) -> timedelta:
    """Delay after the ``attempt``-th failure: base × 2^(attempt-1), at most the maximum,
    of which the upper half is random (so retries of many rows spread out)."""
    full = min(
        settings.notify_backoff_base_seconds * 2 ** min(attempt - 1, 40),
        settings.notify_backoff_max_seconds,
    )
    return timedelta(seconds=full / 2 + rng() * full / 2)


@dataclass
class Claimed:
    """A delivery taken by this worker for one attempt, with all it needs to send."""

    delivery_id: uuid.UUID
    attempt: int
    channel: str
    event_id: uuid.UUID
    event_at: datetime
    endpoint_id: uuid.UUID | None = None
    url: str = ""
    secrets: tuple[str, ...] = ()
    body: bytes = b""
    message: EmailMessage | None = None


def webhook_body(event: NotificationEvent) -> bytes:
    """The JSON body of an event (Standard Webhooks' ``type``/``timestamp``/``data``)."""
    return json.dumps(
        {
            "id": str(event.id),
            "type": event.kind,
            "timestamp": event.created_at.isoformat(),
            "data": {
                "subject_type": event.subject_type,
                "subject_id": str(event.subject_id),
                "unit_ids": event.unit_ids,
                "actor_id": str(event.actor_id) if event.actor_id else None,
                **event.payload,
            },
        },
        separators=(",", ":"),
        sort_keys=True,
    ).encode()


def _secrets(endpoint: WebhookEndpoint, now: datetime) -> tuple[str, ...]:
    """The secrets that sign now: the current one, and the previous one for 24 h after a
    rotation."""
    until = endpoint.previous_secret_until
    if endpoint.previous_secret and until is not None and until > now:
        return (endpoint.secret, endpoint.previous_secret)
    return (endpoint.secret,)


def _skip(row: NotificationDelivery, why: str) -> None:
    row.status = DeliveryStatus.SKIPPED.value
    row.last_error = why
    row.next_attempt_at = None


def claim(session: Session, settings: Settings, now: datetime) -> list[Claimed]:
    """Take up to a batch of due deliveries for one attempt (see the module doc)."""
    rows = session.scalars(
        select(NotificationDelivery)
        .where(
            NotificationDelivery.status == DeliveryStatus.PENDING.value,
            NotificationDelivery.next_attempt_at <= now,
        )
        .order_by(NotificationDelivery.next_attempt_at)
        .limit(settings.notify_batch_size)
        .with_for_update(skip_locked=True)
    ).all()
    if not rows:
        return []
    events = _by_id(session, NotificationEvent, {r.event_id for r in rows})
    endpoints = _by_id(session, WebhookEndpoint, {r.endpoint_id for r in rows if r.endpoint_id})
    users = _by_id(session, User, {r.user_id for r in rows if r.user_id})
    out = []
    for row in rows:
        event = events[row.event_id]
        taken = Claimed(row.id, row.attempts + 1, row.channel, event.id, event.created_at)
        if row.channel == Channel.WEBHOOK.value:
            endpoint = endpoints.get(row.endpoint_id) if row.endpoint_id else None
            if endpoint is None or not endpoint.active or endpoint.deleted_at is not None:
                _skip(row, "endpoint disabled or deleted")
                continue
            taken.endpoint_id, taken.url = endpoint.id, endpoint.url
            taken.secrets, taken.body = _secrets(endpoint, now), webhook_body(event)
        elif row.channel == Channel.EMAIL.value:
            user = users.get(row.user_id) if row.user_id else None
            if not settings.smtp_host or user is None:
                _skip(row, "no recipient" if user is None else "no SMTP server configured")
                continue
            try:
                taken.message = mail.compose(session, event, user, settings, now)
            except Exception as exc:  # one message that cannot be written must not block the rest
                row.status, row.next_attempt_at = DeliveryStatus.FAILED.value, None
                row.last_error = f"composing the e-mail failed: {type(exc).__name__}: {exc}"
                continue
        row.attempts = taken.attempt
        row.next_attempt_at = now + timedelta(seconds=settings.notify_lease_seconds)
        out.append(taken)
    return out


def _by_id(session: Session, model: Any, ids: set[uuid.UUID | None]) -> dict[uuid.UUID, Any]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    found: dict[uuid.UUID, Any] = {
        o.id: o for o in session.scalars(select(model).where(model.id.in_(wanted)))
    }
    return found


def _client(settings: Settings) -> httpx.Client:
    """An HTTP client that never follows redirects and ignores proxy variables."""
    return httpx.Client(
        follow_redirects=False,
        timeout=settings.webhook_timeout_seconds,
        trust_env=False,
        headers={"user-agent": "copool-webhooks/1"},
    )


def send_webhook(client: httpx.Client, settings: Settings, c: Claimed) -> str | None:
    """POST one signed event to the addresses checked; None when the receiver answered
    2xx, else what went wrong."""
    try:
        addresses = check_destination(c.url, allow_private=settings.webhook_allow_private)
    except RefusedAddress as exc:
        return str(exc)
    headers = signing.headers(c.secrets, str(c.event_id), int(time.time()), c.body)
    error = "no address answered"
    for address in addresses:  # the next one only when this one cannot be reached
        target, host, server_name = pinned(c.url, address)
        try:
            answer = client.post(
                target,
                content=c.body,
                headers={**headers, "host": host},
                extensions={"sni_hostname": server_name},
            )
        except httpx.ConnectError as exc:
            error = f"ConnectError: {exc}"
            continue
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if answer.is_success:
            return None
        if answer.is_redirect:
            return f"answered {answer.status_code} (redirects are not followed)"
        return f"answered {answer.status_code}"
    return error


def send(settings: Settings, claimed: list[Claimed]) -> list[tuple[Claimed, str | None]]:
    """Send what was claimed: webhooks a few at once, e-mails over one SMTP connection."""
    hooks = [c for c in claimed if c.channel == Channel.WEBHOOK.value]
    mails = [c for c in claimed if c.message is not None]
    results: list[tuple[Claimed, str | None]] = []
    if hooks:
        with (
            _client(settings) as client,
            ThreadPoolExecutor(settings.notify_send_concurrency) as pool,
        ):
            errors = pool.map(lambda c: send_webhook(client, settings, c), hooks)
            results += list(zip(hooks, errors, strict=True))
    if mails:
        failed = mail.send_all(settings, [(c.delivery_id, c.message) for c in mails if c.message])
        results += [(c, failed.get(c.delivery_id)) for c in mails]
    return results


def record(
    session: Session, settings: Settings, results: list[tuple[Claimed, str | None]], now: datetime
) -> None:
    """Write each attempt's outcome: delivered, retried after :func:`backoff`, or failed once
    the retry window after the event has passed; and each endpoint's failure streak."""
    ids = sorted(c.delivery_id for c, _ in results)
    rows = {
        r.id: r
        for r in session.scalars(
            select(NotificationDelivery)
            .where(NotificationDelivery.id.in_(ids))
            .order_by(NotificationDelivery.id)
            .with_for_update()
        )
    }
    streaks: dict[uuid.UUID, list[bool]] = {}
    for c, error in results:
        row = rows[c.delivery_id]
        if c.endpoint_id is not None:
            streaks.setdefault(c.endpoint_id, []).append(error is None)
        if row.status != DeliveryStatus.PENDING.value:
            continue  # delivered meanwhile by a worker that took it after our lease
        if error is None:
            row.status, row.delivered_at = DeliveryStatus.DELIVERED.value, now
            row.next_attempt_at, row.last_error = None, ""
            continue
        row.last_error = error[:2000]
        if row.attempts != c.attempt:
            continue  # another worker has taken it since: its attempt decides
        retry_at = now + backoff(c.attempt, settings)
        if retry_at > c.event_at + timedelta(hours=settings.notify_retry_hours):
            row.status, row.next_attempt_at = DeliveryStatus.FAILED.value, None
        else:
            row.next_attempt_at = retry_at
    _streaks(session, settings, streaks, now)


def _streaks(
    session: Session, settings: Settings, streaks: dict[uuid.UUID, list[bool]], now: datetime
) -> None:
    """Count each endpoint's consecutive failures; disable it after
    ``COPOOL_WEBHOOK_DISABLE_AFTER`` of them over ``COPOOL_WEBHOOK_DISABLE_AFTER_HOURS``."""
    if not streaks:
        return
    endpoints = session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.id.in_(sorted(streaks)))
        .order_by(WebhookEndpoint.id)
        .with_for_update()
    )
    window = timedelta(hours=settings.webhook_disable_after_hours)
    for endpoint in endpoints:
        for ok in streaks[endpoint.id]:
            if ok:
                endpoint.consecutive_failures, endpoint.failing_since = 0, None
                continue
            endpoint.consecutive_failures += 1
            endpoint.failing_since = endpoint.failing_since or now
        since = endpoint.failing_since
        if (
            endpoint.active
            and since is not None
            and endpoint.consecutive_failures >= settings.webhook_disable_after
            and now - since >= window
        ):
            endpoint.active, endpoint.disabled_at = False, now


def deliver_due(
    factory: sessionmaker[Session], settings: Settings, *, budget_seconds: float = 50.0
) -> dict[str, int]:
    """Claim, send and record batch after batch until nothing is due or the time budget is
    spent; counts of attempts, deliveries and failures."""
    counts = {"attempts": 0, "delivered": 0, "errors": 0}
    deadline = time.monotonic() + budget_seconds
    while time.monotonic() < deadline:
        with session_scope(factory) as session:
            claimed = claim(session, settings, utcnow())
        if not claimed:
            break
        results = send(settings, claimed)
        with session_scope(factory) as session:
            record(session, settings, results, utcnow())
        counts["attempts"] += len(results)
        counts["errors"] += sum(1 for _, e in results if e is not None)
    counts["delivered"] = counts["attempts"] - counts["errors"]
    return counts
