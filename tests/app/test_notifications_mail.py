"""E-mail: a local SMTP server receives the message, with the local time in the
recipient's zone and the booking's .ics (same UID and SEQUENCE as the feeds); the digest."""

from __future__ import annotations

import uuid
from typing import Any
from urllib.parse import urlsplit

import icalendar
from litestar import Litestar

from app.db import make_session_factory
from app.jobs.tasks import Runtime
from app.notifications import jobs as notification_jobs
from app.notifications.delivery import deliver_due
from app.settings import Settings
from app.units.models import Unit
from tests.app import test_notifications_delivery as delivery_tests
from tests.app.booking_world import build
from tests.app.conftest import World
from tests.app.test_notifications_delivery import SmtpServer, fast_settings

smtp = delivery_tests.smtp  # the fixture: a local aiosmtpd server


def _zone(world: World, unit: str, name: str) -> None:
    with world.session() as s:
        row = s.get(Unit, world.units[unit])
        assert row is not None
        row.time_zone = name


def _ics(msg: Any) -> icalendar.Calendar:
    (part,) = [p for p in msg.iter_attachments() if p.get_content_type() == "text/calendar"]
    return icalendar.Calendar.from_ical(part.get_content())


def test_approval_mail_has_local_time_and_the_feeds_uid_and_sequence(
    client: Any, app: Litestar, world: World, db_url: str, smtp: SmtpServer
) -> None:
    w = build(world, requires_approval=True)  # the expert works in Europe/Berlin
    _zone(world, "L", "America/New_York")  # the lender's manager reads New York time
    r = client.post(
        "/bookings",
        json={
            "resource_id": str(w.expert),
            "project_id": str(w.project),
            "start": "2027-03-01T09:00:00+01:00",
            "end": "2027-03-01T10:00:00+01:00",
            "title": "Survey",
        },
        headers=w.requester,
    )
    assert r.status_code == 201, r.text
    settings = fast_settings(db_url, smtp_port=smtp.port)
    deliver_due(make_session_factory(app.state.engine), settings)
    (msg,) = smtp.box.messages
    assert msg["To"].addresses[0].username == "rm"
    body = msg.get_body(preferencelist=("plain",)).get_content()
    assert "Mon 01 Mar 2027 03:00 EST" in body and "Survey" in body
    cal = _ics(msg)
    assert str(cal["METHOD"]) == "REQUEST"
    (event,) = cal.walk("VEVENT")
    assert str(event["UID"]) == f"booking-{r.json()['id']}@copool"
    assert int(event["SEQUENCE"]) == r.json()["sequence"]
    feed = client.post("/feed-subscriptions", json={"kind": "mine"}, headers=w.requester).json()
    fed = icalendar.Calendar.from_ical(client.get(urlsplit(feed["url"]).path).content)
    (in_feed,) = fed.walk("VEVENT")
    assert (str(in_feed["UID"]), int(in_feed["SEQUENCE"])) == (
        str(event["UID"]),
        int(event["SEQUENCE"]),
    )


def test_a_cancel_mail_carries_method_cancel(
    client: Any, app: Litestar, world: World, db_url: str, smtp: SmtpServer
) -> None:
    w = build(world)
    b = client.post(
        "/bookings",
        json={
            "resource_id": str(w.expert),
            "project_id": str(w.project),
            "start": "2027-03-01T09:00:00+01:00",
            "end": "2027-03-01T10:00:00+01:00",
        },
        headers=w.requester,
    ).json()
    client.post(f"/bookings/{b['id']}/cancel", json={"reason": "ill"}, headers=w.manager)
    deliver_due(make_session_factory(app.state.engine), fast_settings(db_url, smtp_port=smtp.port))
    assert {m["To"].addresses[0].username for m in smtp.box.messages} == {"req", "lead"}
    cal = _ics(smtp.box.messages[0])
    assert str(cal["METHOD"]) == "CANCEL"
    assert str(cal.walk("VEVENT")[0]["STATUS"]) == "CANCELLED"


def test_the_digest_sends_one_message_per_user(
    client: Any, app: Litestar, world: World, db_url: str, smtp: SmtpServer
) -> None:
    w = build(world, requires_approval=True)
    put = client.put("/me/notification-preferences", json={"email_digest": True}, headers=w.manager)
    assert put.status_code == 200
    for hour in (9, 11, 13):
        r = client.post(
            "/bookings",
            json={
                "resource_id": str(w.expert),
                "project_id": str(w.project),
                "start": f"2027-03-01T{hour:02d}:00:00+01:00",
                "end": f"2027-03-01T{hour + 1:02d}:00:00+01:00",
            },
            headers=w.requester,
        )
        assert r.status_code == 201
    settings: Settings = fast_settings(db_url, smtp_port=smtp.port)
    deliver_due(make_session_factory(app.state.engine), settings)
    assert smtp.box.messages == []  # held for the digest
    rt = Runtime(settings)
    try:
        assert notification_jobs.digest(rt)["items"] == 3
        assert notification_jobs.digest(rt)["items"] == 0  # sent once
    finally:
        rt.close()
    (msg,) = smtp.box.messages
    assert len(str(msg["X-Copool-Event-Ids"]).split()) == 3
    assert uuid.UUID(str(msg["X-Copool-Event-Ids"]).split()[0])
