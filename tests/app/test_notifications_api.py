"""The notification routes: webhooks (create, secret once, rotate, patch, delete, the
delivery log, disabling), the inbox and preferences."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from typing import Any

import pytest
from litestar import Litestar
from sqlalchemy import select

from app.auth.models import Role
from app.db import make_session_factory
from app.notifications import kinds
from app.notifications.delivery import deliver_due
from app.notifications.models import NotificationDelivery, WebhookEndpoint
from app.notifications.outbox import emit
from app.settings import Settings
from tests.app import test_notifications_delivery as delivery_tests
from tests.app.conftest import World
from tests.app.test_notifications_delivery import Receiver, fast_settings

receiver = delivery_tests.receiver  # the fixture: a signed-webhook receiver on loopback


@pytest.fixture
def settings(db_url: str, tmp_path: Any) -> Settings:
    """The app's settings with loopback receivers allowed (as a developer would set them)."""
    return fast_settings(db_url).model_copy(
        update={"demo_key_path": tmp_path / "demo.key", "api_key_touch_seconds": 0}
    )


def _emit(app: Litestar, kind: str, unit: uuid.UUID | None = None, **kw: Any) -> uuid.UUID:
    with make_session_factory(app.state.engine)() as s:
        event_id = emit(
            s,
            kind,
            subject_type="request",
            subject_id=uuid.uuid4(),
            unit_ids=[unit] if unit else [],
            data={"title": "x"},
            **kw,
        )
        s.commit()
    return event_id


def _deliver(app: Litestar, settings: Settings) -> None:
    deliver_due(make_session_factory(app.state.engine), settings)


def test_create_shows_the_secret_once_and_refuses_bad_urls_and_kinds(
    client: Any, world: World
) -> None:
    boss = world.user("boss", "A", Role.UNIT_MANAGER)
    made = client.post(
        "/webhooks",
        json={"url": "https://hooks.example.org/x", "events": ["approved"]},
        headers=boss,
    )
    assert made.status_code == 201, made.text
    assert made.json()["secret"].startswith("whsec_")
    read = client.get(f"/webhooks/{made.json()['id']}", headers=boss).json()
    assert "secret" not in read and read["events"] == ["approved"]
    listed = client.get("/webhooks", headers=boss).json()
    assert listed["total"] == 1 and "secret" not in listed["items"][0]
    for body, field in [
        ({"url": "http://hooks.example.org/x"}, "url"),
        ({"url": "ftp://hooks.example.org/x"}, "url"),
        ({"url": "https://hooks.example.org", "events": ["nonsense"]}, "events"),
    ]:
        bad = client.post("/webhooks", json=body, headers=boss)
        assert bad.status_code == 400, bad.text
        assert field in bad.text


def test_another_units_endpoint_is_invisible(client: Any, world: World) -> None:
    boss = world.user("boss", "A", Role.UNIT_MANAGER)
    other = world.user("other", "B", Role.UNIT_MANAGER)
    made = client.post(
        "/webhooks",
        json={"url": "https://hooks.example.org/x", "unit_id": str(world.unit("A"))},
        headers=boss,
    ).json()
    assert client.get(f"/webhooks/{made['id']}", headers=other).status_code == 404
    assert client.delete(f"/webhooks/{made['id']}", headers=other).status_code == 404
    refused = client.post(
        "/webhooks",
        json={"url": "https://hooks.example.org/x", "unit_id": str(world.unit("A"))},
        headers=other,
    )
    assert refused.status_code == 404


def test_rotation_signs_with_both_secrets_and_the_log_shows_the_delivery(
    client: Any,
    app: Litestar,
    world: World,
    settings: Settings,
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    boss = world.user("boss", "A", Role.UNIT_MANAGER)
    unit = world.unit("A")
    made = client.post("/webhooks", json={"url": url, "unit_id": str(unit)}, headers=boss).json()
    rotated = client.post(f"/webhooks/{made['id']}/rotate-secret", headers=boss)
    assert rotated.status_code == 200 and rotated.json()["secret"] != made["secret"]
    rec.secrets = [made["secret"], rotated.json()["secret"]]  # each must verify alone
    event_id = _emit(app, kinds.AGREEMENT_ENDING, unit)
    _deliver(app, settings)
    assert rec.accepted == Counter({str(event_id): 1}) and rec.bad_signatures == 0
    assert len(rec.headers[0]["webhook-signature"].split(" ")) == 2
    log = client.get(f"/webhooks/{made['id']}/deliveries", headers=boss).json()
    assert log["total"] == 1
    entry = log["items"][0]
    assert (entry["event_id"], entry["status"], entry["attempts"]) == (
        str(event_id),
        "delivered",
        1,
    )


def test_an_endpoint_is_disabled_after_repeated_failure_and_patch_reenables_it(
    client: Any,
    app: Litestar,
    world: World,
    settings: Settings,
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    rec.status = 500
    boss = world.user("boss", "A", Role.UNIT_MANAGER)
    unit = world.unit("A")
    made = client.post("/webhooks", json={"url": url, "unit_id": str(unit)}, headers=boss).json()
    rec.secrets = [made["secret"]]
    # retries due at once (1 ms backoff), so each pass below makes exactly one attempt
    strict = settings.model_copy(
        update={
            "webhook_disable_after": 3,
            "webhook_disable_after_hours": 0,
            "notify_backoff_base_seconds": 0.001,
            "notify_backoff_max_seconds": 0.001,
        }
    )
    _emit(app, kinds.AGREEMENT_ENDING, unit)
    for _ in range(4):  # three failures disable the endpoint; the fourth pass skips the row
        time.sleep(0.01)  # past the 1 ms backoff
        _deliver(app, strict)
    read = client.get(f"/webhooks/{made['id']}", headers=boss).json()
    assert read["active"] is False and read["disabled_at"] is not None
    with make_session_factory(app.state.engine)() as s:
        row = s.scalars(
            select(NotificationDelivery).where(NotificationDelivery.channel == "webhook")
        ).one()
        assert row.status == "skipped"  # not sent to a disabled endpoint
    patched = client.patch(f"/webhooks/{made['id']}", json={"active": True}, headers=boss)
    assert patched.json()["active"] is True and patched.json()["consecutive_failures"] == 0
    assert client.delete(f"/webhooks/{made['id']}", headers=boss).status_code == 204
    assert client.get(f"/webhooks/{made['id']}", headers=boss).status_code == 404


def test_inbox_unread_read_and_read_all(client: Any, app: Litestar, world: World) -> None:
    lead = world.user("lead", "A", Role.PROJECT_LEAD)
    unit = world.unit("A")
    first = _emit(app, kinds.RUN_DONE, unit)
    _emit(app, kinds.BUDGET_REFUSED, unit)
    _emit(app, kinds.PLEDGE_OVERDUE, unit)
    answer = client.get("/me/notifications?unread=true&limit=2", headers=lead)
    assert answer.headers["x-total-count"] == "3" and 'rel="next"' in answer.headers["link"]
    unread = client.get("/me/notifications?unread=true", headers=lead).json()
    assert unread["total"] == 3
    assert [n["kind"] for n in unread["items"]] == ["pledge_overdue", "budget_refused", "run_done"]
    one = next(n for n in unread["items"] if n["event_id"] == str(first))
    marked = client.post(f"/me/notifications/{one['id']}/read", headers=lead)
    assert marked.status_code == 200 and marked.json()["read_at"] is not None
    assert client.get("/me/notifications?unread=true", headers=lead).json()["total"] == 2
    assert client.get("/me/notifications?unread=false", headers=lead).json()["total"] == 1
    assert client.post("/me/notifications/read-all", headers=lead).json() == {"marked": 2}
    assert client.get("/me/notifications?unread=true", headers=lead).json()["total"] == 0
    stranger = world.user("x", "B", Role.PROJECT_LEAD)
    assert client.get("/me/notifications", headers=stranger).json()["total"] == 0
    assert client.post(f"/me/notifications/{one['id']}/read", headers=stranger).status_code == 404


def test_preferences_choose_channels_per_kind_and_refuse_unknown_ones(
    client: Any, app: Litestar, world: World
) -> None:
    lead = world.user("lead", "A", Role.PROJECT_LEAD)
    unit = world.unit("A")
    assert client.get("/me/notification-preferences", headers=lead).json() == {
        "channels": {},
        "email_digest": False,
    }
    put = client.put(
        "/me/notification-preferences",
        json={"channels": {"run_done": ["inbox"], "budget_refused": []}, "email_digest": True},
        headers=lead,
    )
    assert put.status_code == 200, put.text
    run_done = _emit(app, kinds.RUN_DONE, unit)
    refused = _emit(app, kinds.BUDGET_REFUSED, unit)
    overdue = _emit(app, kinds.PLEDGE_OVERDUE, unit)
    with make_session_factory(app.state.engine)() as s:
        rows = s.scalars(select(NotificationDelivery)).all()
        got = {(r.event_id, r.channel, r.status) for r in rows}
    assert got == {
        (run_done, "inbox", "delivered"),
        (overdue, "inbox", "delivered"),
        (overdue, "email", "digest"),  # held for the daily digest
    }
    assert refused not in {e for e, _, _ in got}
    bad = client.put(
        "/me/notification-preferences", json={"channels": {"nonsense": ["inbox"]}}, headers=lead
    )
    assert bad.status_code == 400 and "channels" in bad.text
    bad = client.put(
        "/me/notification-preferences", json={"channels": {"run_done": ["pigeon"]}}, headers=lead
    )
    assert bad.status_code == 400


def test_webhook_endpoint_row_keeps_the_secret_for_signing(
    app: Litestar, client: Any, world: World
) -> None:
    boss = world.user("boss", "A", Role.UNIT_MANAGER)
    made = client.post(
        "/webhooks", json={"url": "https://hooks.example.org/x"}, headers=boss
    ).json()
    with make_session_factory(app.state.engine)() as s:
        row = s.get(WebhookEndpoint, uuid.UUID(made["id"]))
        assert (
            row is not None and row.secret == made["secret"] and row.user_id == world.users["boss"]
        )
