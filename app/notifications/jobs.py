"""The notification jobs the worker runs (``app.jobs.schedule``): deliver what is due, and
the daily e-mail digest."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from app.allocation.models import AllocationRun, RunStatus
from app.auth.models import User
from app.base import utcnow
from app.bookings.models import Request
from app.db import session_scope
from app.notifications import kinds, mail
from app.notifications.delivery import deliver_due
from app.notifications.models import (
    Channel,
    DeliveryStatus,
    NotificationDelivery,
    NotificationEvent,
)
from app.notifications.outbox import emit

if TYPE_CHECKING:
    from app.jobs.tasks import Runtime

DELIVER_BUDGET_SECONDS = 10.0
"""How long one tick of the delivery job may keep sending before it lets others run."""


def deliver(rt: Runtime) -> dict[str, Any]:
    """Send the due webhooks and e-mails, batch after batch, for a few seconds."""
    return deliver_due(rt.factory, rt.settings, budget_seconds=DELIVER_BUDGET_SECONDS)


def digest(rt: Runtime) -> dict[str, Any]:
    """Send each user whose e-mails wait for the digest one message listing them all."""
    if not rt.settings.smtp_host:
        return {"users": 0, "skipped": "no SMTP server configured"}
    now = utcnow()
    with session_scope(rt.factory) as session:
        rows = session.execute(
            select(NotificationDelivery, NotificationEvent)
            .join(NotificationEvent, NotificationEvent.id == NotificationDelivery.event_id)
            .where(
                NotificationDelivery.status == DeliveryStatus.DIGEST.value,
                NotificationDelivery.channel == Channel.EMAIL.value,
            )
            .order_by(NotificationDelivery.user_id, NotificationEvent.created_at)
        ).all()
        by_user: dict[uuid.UUID, list[tuple[uuid.UUID, NotificationEvent]]] = {}
        for delivery, event in rows:
            if delivery.user_id is not None:
                by_user.setdefault(delivery.user_id, []).append((delivery.id, event))
        users = {u.id: u for u in session.scalars(select(User).where(User.id.in_(by_user)))}
        messages = [
            (uid, _digest_message(session, users[uid], [e for _, e in items], rt, now))
            for uid, items in by_user.items()
        ]
    failed = mail.send_all(rt.settings, messages)
    sent_ids = [d for uid, items in by_user.items() if uid not in failed for d, _ in items]
    with session_scope(rt.factory) as session:
        for row in session.scalars(
            select(NotificationDelivery).where(NotificationDelivery.id.in_(sent_ids))
        ):
            row.status, row.delivered_at, row.attempts = (
                DeliveryStatus.DELIVERED.value,
                now,
                row.attempts + 1,
            )
    return {"users": len(by_user) - len(failed), "items": len(sent_ids), "failed": len(failed)}


def _digest_message(
    session: Any, user: User, events: list[NotificationEvent], rt: Runtime, now: Any
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = rt.settings.smtp_from
    msg["To"] = f"{user.name} <{user.email}>"
    msg["Subject"] = f"[copool] Daily digest: {len(events)} notifications"
    msg["Date"] = format_datetime(now)
    msg["X-Copool-Event-Ids"] = " ".join(str(e.id) for e in events)
    parts: list[str] = []
    for event in events:
        view = mail.booking_view(session, event)
        tz = mail.recipient_zone(session, user, view)
        parts += [*mail.body_lines(event, view, tz), "", "-" * 40, ""]
    msg.set_content("\n".join(parts))
    return msg


def run_finished(rt: Runtime, run_id: uuid.UUID) -> None:
    """After a worker's solve: tell the run's unit and starter it is done (or failed), and
    each left-out request's people when funds were short (``budget_refused``)."""
    with session_scope(rt.factory) as session:
        run = session.get(AllocationRun, run_id)
        if run is None or run.status not in (RunStatus.DONE.value, RunStatus.FAILED.value):
            return
        emit(
            session,
            kinds.RUN_DONE,
            subject_type="allocation_run",
            subject_id=run.id,
            unit_ids=[run.unit_id],
            user_ids=[run.created_by],
            data={"run_id": str(run.id), "status": run.status, "error": run.error[:500]},
        )
        for left in (run.result or {}).get("unallocated", []):
            codes = {r.get("code") for r in left.get("reasons", [])}
            request = session.get(Request, uuid.UUID(str(left["request_id"])))
            if "budget_short" in codes and request is not None:
                emit(
                    session,
                    kinds.BUDGET_REFUSED,
                    subject_type="request",
                    subject_id=request.id,
                    unit_ids=[request.unit_id],
                    user_ids=[request.created_by],
                    data={
                        "run_id": str(run.id),
                        "request_id": str(request.id),
                        "title": request.title,
                    },
                )
