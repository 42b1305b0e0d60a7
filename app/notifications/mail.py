"""Notification e-mails: a plain-text body with times in the recipient's zone, and for a
booking an ``.ics`` (``METHOD:REQUEST``, or ``METHOD:CANCEL`` once it is withdrawn) with
the same UID and SEQUENCE as the calendar feeds; sent over SMTP.

The recipient's zone is their unit's ``time_zone``; a unit without one (older schema)
falls back to the booked resource's zone, then UTC.
"""

from __future__ import annotations

import smtplib
import ssl
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from app.auth.models import User
from app.bookings.models import Booking
from app.catalog.models import Resource
from app.feeds.content import UID_DOMAIN
from app.notifications import kinds
from app.notifications.models import NotificationEvent
from app.settings import Settings
from app.units.models import Unit
from calendars.feed import render_feed
from calendars.records import BookingRecord, BookingStatus, FeedSpec, zone

SUBJECTS = {
    kinds.APPROVAL_NEEDED: "Approval needed",
    kinds.APPROVED: "Loan approved",
    kinds.DECLINED: "Loan declined",
    kinds.CANCELLED: "Booking cancelled",
    kinds.DISPLACED: "Booking displaced",
    kinds.NO_SHOW_RELEASED: "Booking released (no-show)",
    kinds.WAITLIST_OFFER: "A slot is offered to your waiting request",
    kinds.RUN_DONE: "Allocation run finished",
    kinds.BUDGET_REFUSED: "Refused for lack of funds",
    kinds.UNAVAILABLE_OVER_BOOKING: "Leave or maintenance over a booking",
    kinds.AGREEMENT_ENDING: "Sharing agreement ending",
    kinds.PLEDGE_OVERDUE: "Pledge overdue",
}


@dataclass(frozen=True)
class _BookingView:
    booking: Booking
    resource: Resource


def booking_view(session: Session, event: NotificationEvent) -> _BookingView | None:
    if event.subject_type != "booking":
        return None
    booking = session.get(Booking, event.subject_id)
    if booking is None:
        return None
    resource = session.get(Resource, booking.resource_id)
    assert resource is not None
    return _BookingView(booking, resource)


def recipient_zone(session: Session, user: User, view: _BookingView | None) -> ZoneInfo:
    """The zone a recipient reads times in (see the module doc)."""
    unit = session.get(Unit, user.unit_id)
    name = getattr(unit, "time_zone", None) or (view.resource.time_zone if view else "UTC")
    try:
        return zone(name)
    except ValueError:
        return zone("UTC")


def _local(value: datetime, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%a %d %b %Y %H:%M %Z")


def body_lines(event: NotificationEvent, view: _BookingView | None, tz: ZoneInfo) -> list[str]:
    """What the e-mail says: the kind, the booking in local time, the event's details."""
    lines = [SUBJECTS.get(event.kind, event.kind) + "."]
    if view is not None:
        b = view.booking
        lines += [
            "",
            f"Booking: {b.title or view.resource.name}",
            f"Resource: {view.resource.name}",
            f"From: {_local(b.start, tz)}",
            f"To:   {_local(b.end, tz)}",
            f"Status: {b.status}",
        ]
    details = {k: v for k, v in event.payload.items() if isinstance(v, str | int | float)}
    if details:
        lines += ["", *(f"{k}: {v}" for k, v in sorted(details.items()))]
    lines += ["", f"Event id: {event.id} ({event.kind}, {_local(event.created_at, tz)})"]
    return lines


def booking_ics(view: _BookingView, *, cancel: bool, now: datetime) -> bytes:
    """The booking as a one-event calendar, rendered by the feeds' writer (same UID and
    SEQUENCE), with ``METHOD:REQUEST`` or ``METHOD:CANCEL`` in place of ``PUBLISH``."""
    b = view.booking
    record = BookingRecord(
        uid=f"booking-{b.id}@{UID_DOMAIN}",
        start=b.start,
        end=b.end,
        status=BookingStatus.CANCELLED if cancel else BookingStatus(b.status),
        sequence=b.sequence,
        last_modified=b.updated_at,
        cancelled_at=(b.cancelled_at or now) if cancel else None,
        summary=b.title or view.resource.name,
        resource=view.resource.name,
        location=view.resource.location or "",
    )
    spec = FeedSpec(name="copool", window_back=max(now - b.start, timedelta(0)) + timedelta(days=1))
    text = render_feed(spec, [record], now=now)
    method = b"METHOD:CANCEL" if cancel else b"METHOD:REQUEST"
    return text.replace(b"METHOD:PUBLISH", method, 1)


def compose(
    session: Session, event: NotificationEvent, user: User, settings: Settings, now: datetime
) -> EmailMessage:
    """The e-mail telling ``user`` about ``event`` (Message-ID derived from the event's id,
    ``X-Copool-Event-Id`` the id itself, so a duplicate is recognised)."""
    view = booking_view(session, event)
    tz = recipient_zone(session, user, view)
    msg = EmailMessage()
    msg["From"] = settings.smtp_from
    msg["To"] = f"{user.name} <{user.email}>"
    msg["Subject"] = f"[copool] {SUBJECTS.get(event.kind, event.kind)}"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<{event.id}.{user.id}@copool>"
    msg["X-Copool-Event-Id"] = str(event.id)
    msg["X-Copool-Event-Kind"] = event.kind
    msg.set_content("\n".join(body_lines(event, view, tz)) + "\n")
    if view is not None and view.booking.series_id is None:
        cancel = event.kind in kinds.CANCELLING_KINDS
        ics = booking_ics(view, cancel=cancel, now=now)
        msg.add_attachment(
            ics,
            maintype="text",
            subtype="calendar",
            filename="booking.ics",
            params={"method": "CANCEL" if cancel else "REQUEST"},
        )
    return msg


def send_all(
    settings: Settings, messages: list[tuple[uuid.UUID, EmailMessage]]
) -> dict[uuid.UUID, str]:
    """Send the messages over one SMTP connection; the error of each one not sent (every
    unsent one when the connection fails)."""
    errors: dict[uuid.UUID, str] = {}
    sent: set[uuid.UUID] = set()
    if not messages:
        return errors
    try:
        with smtplib.SMTP(
            settings.smtp_host, settings.smtp_port, timeout=settings.smtp_timeout_seconds
        ) as smtp:
            _start(smtp, settings)
            for key, msg in messages:
                try:
                    refused = smtp.send_message(msg)
                except smtplib.SMTPRecipientsRefused as exc:
                    errors[key] = f"recipient refused: {exc.recipients}"
                    continue
                if refused:
                    errors[key] = f"recipient refused: {refused}"
                else:
                    sent.add(key)
    except (OSError, smtplib.SMTPException) as exc:
        where = f"SMTP {settings.smtp_host}:{settings.smtp_port}"
        for key, _ in messages:
            if key not in sent and key not in errors:
                errors[key] = f"{where}: {type(exc).__name__}: {exc}"
    return errors


def _start(smtp: smtplib.SMTP, settings: Settings) -> None:
    if settings.smtp_starttls:
        smtp.starttls(context=ssl.create_default_context())
    if settings.smtp_username:
        smtp.login(settings.smtp_username, settings.smtp_password)
