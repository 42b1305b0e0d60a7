"""Delivery: signed webhooks to a real HTTP receiver, e-mails to a real SMTP server,
retries with backoff, and the goal — 1,000 events delivered exactly once by id while the
receiver fails each event's first three attempts and the SMTP server restarts."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import standardwebhooks
from aiosmtpd.controller import Controller
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.auth.models import Role
from app.db import make_session_factory
from app.notifications import kinds
from app.notifications.addresses import pinned
from app.notifications.delivery import backoff, deliver_due
from app.notifications.models import DeliveryStatus, NotificationDelivery, WebhookEndpoint
from app.notifications.outbox import emit
from app.notifications.signing import new_secret
from app.settings import Settings
from tests.app import factories as f


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1: verifies every signature, answers 500 to each
    event's first ``fail_first`` attempts, and keeps the ids it accepted."""

    secrets: list[str]
    fail_first: int = 0
    status: int = 204
    location: str = ""
    accepted: Counter[str] = field(default_factory=Counter)
    seen: Counter[str] = field(default_factory=Counter)
    bad_signatures: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    hold: threading.Event | None = None
    """When given, requests wait for it (``holding`` is set meanwhile): a delivery in flight."""
    holding: threading.Event = field(default_factory=threading.Event)

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, str]:
        """What the receiver answers to one request."""
        if self.hold is not None and not self.hold.is_set():
            self.holding.set()
            self.hold.wait(120)
        verified = [self._verify(s, headers, body) for s in self.secrets]
        msg_id = headers.get("webhook-id", "")
        with self.lock:
            self.headers.append(headers)
            if not all(v is not None for v in verified):
                self.bad_signatures += 1
                return 400, ""
            self.seen[msg_id] += 1
            if self.seen[msg_id] <= self.fail_first:
                return 500, ""
            if self.status < 300:
                self.accepted[msg_id] += 1
                self.bodies.append(verified[0] or {})
            return self.status, self.location

    @staticmethod
    def _verify(secret: str, headers: dict[str, str], body: bytes) -> dict[str, Any] | None:
        try:
            parsed: dict[str, Any] = standardwebhooks.Webhook(secret).verify(body, headers)
        except standardwebhooks.WebhookVerificationError:
            return None
        return parsed


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    """A running receiver and its URL (the secrets are set by the test)."""
    rec = Receiver(secrets=[])

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status, location = rec.handle({k.lower(): v for k, v in self.headers.items()}, body)
            self.send_response(status)
            if location:
                self.send_header("location", location)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield rec, f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()
    server.server_close()


class Mailbox:
    """An aiosmtpd handler keeping every message; ``reached`` is set at the n-th one."""

    def __init__(self, stop_at: int = 0) -> None:
        self.messages: list[EmailMessage] = []
        self.stop_at = stop_at
        self.reached = threading.Event()
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        with self.lock:
            self.messages.append(msg)
            if self.stop_at and len(self.messages) >= self.stop_at:
                self.reached.set()
        return "250 OK"

    def event_ids(self) -> Counter[str]:
        """How often each event id arrived."""
        with self.lock:
            return Counter(str(m["X-Copool-Event-Id"]) for m in self.messages)


class SmtpServer:
    """A local SMTP server (aiosmtpd) on a fixed port that can be stopped and started again
    (a Controller cannot restart, so each start makes a new one)."""

    def __init__(self, box: Mailbox) -> None:
        self.box = box
        self.port = free_port()
        self.controller: Controller | None = None

    def start(self) -> None:
        """Listen (again)."""
        self.controller = Controller(self.box, hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def stop(self) -> None:
        """Stop listening: connections are refused until the next start."""
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    """A running local SMTP server; its mailbox is ``.box``."""
    server = SmtpServer(Mailbox())
    server.start()
    yield server
    server.stop()


def fast_settings(db_url: str, smtp_port: int = 0, **kw: Any) -> Settings:
    """Settings that retry within milliseconds and allow the loopback receiver."""
    return Settings(
        database_url=db_url,
        webhook_allow_private=True,
        webhook_allow_http_loopback=True,
        notify_backoff_base_seconds=0.001,
        notify_backoff_max_seconds=0.005,
        smtp_host="127.0.0.1" if smtp_port else "",
        smtp_port=smtp_port or 25,
        smtp_starttls=False,
        smtp_timeout_seconds=5,
        **kw,
    )


def endpoint(s: Session, unit_id: uuid.UUID, url: str, **kw: Any) -> WebhookEndpoint:
    """A unit's webhook endpoint made directly (the API is tested elsewhere)."""
    creator = f.user(s, unit_id, Role.REQUESTER) if "created_by" not in kw else None
    row = WebhookEndpoint(
        unit_id=unit_id,
        created_by=kw.pop("created_by", creator.id if creator else None),
        url=url,
        secret=kw.pop("secret", new_secret()),
        events=kw.pop("events", []),
        **kw,
    )
    s.add(row)
    s.flush()
    return row


def pending(factory: sessionmaker[Session]) -> int:
    """Deliveries still waiting for an attempt."""
    with factory() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(NotificationDelivery)
                .where(NotificationDelivery.status == DeliveryStatus.PENDING.value)
            )
            or 0
        )


def drain(factory: sessionmaker[Session], settings: Settings, rounds: int = 5000) -> None:
    """Run the deliverer until nothing is pending (bounded, so a bug cannot hang the test)."""
    for _ in range(rounds):
        deliver_due(factory, settings)
        if pending(factory) == 0:
            return
    raise AssertionError(f"{pending(factory)} deliveries still pending")


def _emit_many(s: Session, unit_id: uuid.UUID, n: int) -> list[uuid.UUID]:
    ids = [
        emit(
            s,
            kinds.APPROVAL_NEEDED,
            subject_type="request",
            subject_id=uuid.uuid4(),
            unit_ids=[unit_id],
            data={"n": i},
        )
        for i in range(n)
    ]
    s.commit()
    return ids


def test_backoff_doubles_with_jitter_and_stops_at_the_maximum() -> None:
    s = Settings(notify_backoff_base_seconds=30, notify_backoff_max_seconds=3600)
    assert backoff(1, s, rng=lambda: 0.0) == timedelta(seconds=15)
    assert backoff(1, s, rng=lambda: 1.0) == timedelta(seconds=30)
    assert backoff(3, s, rng=lambda: 1.0) == timedelta(seconds=120)
    assert backoff(30, s, rng=lambda: 1.0) == timedelta(seconds=3600)
    for n in range(1, 20):
        full = min(30 * 2 ** (n - 1), 3600)
        assert full / 2 <= backoff(n, s).total_seconds() <= full  # the jitter's range


def test_signed_webhook_verified_by_the_standardwebhooks_library(
    db_url: str, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    settings = fast_settings(db_url)
    factory = make_session_factory(engine := _engine(db_url))
    with factory() as s:
        unit = f.unit(s)
        f.user(s, unit.id, Role.RESOURCE_MANAGER)
        hook = endpoint(s, unit.id, url)
        rec.secrets = [hook.secret]
        (event_id,) = _emit_many(s, unit.id, 1)
    drain(factory, settings)
    assert rec.accepted == Counter({str(event_id): 1}) and rec.bad_signatures == 0
    assert rec.bodies[0]["type"] == "approval_needed" and rec.bodies[0]["data"]["n"] == 0
    assert rec.headers[0]["webhook-id"] == str(event_id)
    engine.dispose()


def _engine(db_url: str) -> Any:
    from app.db import make_engine

    return make_engine(db_url)


@pytest.mark.parametrize("status", [301, 302, 307])
def test_a_redirect_is_not_followed_and_counts_as_a_failure(
    db_url: str, receiver: tuple[Receiver, str], status: int
) -> None:
    rec, url = receiver
    rec.status, rec.location = status, url + "/elsewhere"
    settings = fast_settings(db_url, notify_retry_hours=1e-9)
    factory = make_session_factory(engine := _engine(db_url))
    with factory() as s:
        unit = f.unit(s)
        f.user(s, unit.id, Role.RESOURCE_MANAGER)
        rec.secrets = [endpoint(s, unit.id, url).secret]
        _emit_many(s, unit.id, 1)
    drain(factory, settings)
    with factory() as s:
        row = s.scalars(
            select(NotificationDelivery).where(NotificationDelivery.channel == "webhook")
        ).one()
    assert (row.status, row.attempts) == ("failed", 1)
    assert f"answered {status} (redirects are not followed)" in row.last_error
    assert len(rec.headers) == 1  # the receiver saw one request, not the redirect's target
    engine.dispose()


def test_a_private_address_is_refused_at_delivery_time(
    db_url: str, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    settings = fast_settings(db_url, notify_retry_hours=1e-9).model_copy(
        update={"webhook_allow_private": False}
    )
    factory = make_session_factory(engine := _engine(db_url))
    with factory() as s:
        unit = f.unit(s)
        f.user(s, unit.id, Role.RESOURCE_MANAGER)
        rec.secrets = [endpoint(s, unit.id, url.replace("127.0.0.1", "localhost")).secret]
        _emit_many(s, unit.id, 1)
    drain(factory, settings)
    with factory() as s:
        row = s.scalars(
            select(NotificationDelivery).where(NotificationDelivery.channel == "webhook")
        ).one()
    assert row.status == "failed" and "not a public address" in row.last_error
    assert rec.headers == []  # nothing was sent
    engine.dispose()


def test_goal_1000_events_flaky_receiver_and_smtp_restart_delivered_once_each(
    db_url: str,
    receiver: tuple[Receiver, str],
    smtp: SmtpServer,
) -> None:
    rec, url = receiver
    rec.fail_first = 3
    box = smtp.box
    box.stop_at = 300
    settings = fast_settings(db_url, smtp_port=smtp.port)
    factory = make_session_factory(engine := _engine(db_url))
    with factory() as s:
        unit = f.unit(s)
        f.user(s, unit.id, Role.RESOURCE_MANAGER)
        rec.secrets = [endpoint(s, unit.id, url).secret]
        ids = {str(i) for i in _emit_many(s, unit.id, 1000)}
    restarted = threading.Event()

    def restart_smtp() -> None:
        # stop the SMTP server at the 300th message, start it again once an e-mail failed
        try:
            box.reached.wait(120)
            smtp.stop()
            for _ in range(2400):
                if _email_failures(factory):
                    break
                restarted.wait(0.05)
        finally:
            smtp.start()
            restarted.set()

    chaos = threading.Thread(target=restart_smtp)
    chaos.start()
    drain(factory, settings)
    chaos.join()
    assert restarted.is_set()
    assert set(rec.accepted) == ids and max(rec.accepted.values()) == 1
    assert rec.bad_signatures == 0 and min(rec.seen.values()) == 4
    assert set(box.event_ids()) == ids
    with factory() as s:
        by_status = dict(
            s.execute(
                select(NotificationDelivery.channel, func.count())
                .where(NotificationDelivery.status == "delivered")
                .group_by(NotificationDelivery.channel)
            ).all()
        )
    assert by_status == {"inbox": 1000, "email": 1000, "webhook": 1000}
    engine.dispose()


def _email_failures(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(NotificationDelivery)
                .where(
                    NotificationDelivery.channel == "email",
                    NotificationDelivery.last_error.like("SMTP%"),
                )
            )
            or 0
        )


def test_the_checked_address_is_the_one_connected_to_with_the_original_host(
    db_url: str, receiver: tuple[Receiver, str]
) -> None:
    rec, url = receiver
    named = url.replace("127.0.0.1", "localhost")
    settings = fast_settings(db_url)
    factory = make_session_factory(engine := _engine(db_url))
    with factory() as s:
        unit = f.unit(s)
        f.user(s, unit.id, Role.RESOURCE_MANAGER)
        rec.secrets = [endpoint(s, unit.id, named).secret]
        _emit_many(s, unit.id, 1)
    drain(factory, settings)
    assert len(rec.accepted) == 1
    assert rec.headers[-1]["host"] == named.split("/")[2]  # localhost:port, not the address
    engine.dispose()


def test_pinned_urls_keep_the_host_for_the_header_and_the_tls_name() -> None:
    assert pinned("https://hooks.example.org/x?a=1", "2001:db8::1") == (
        "https://[2001:db8::1]/x?a=1",
        "hooks.example.org",
        "hooks.example.org",
    )
    assert pinned("https://hooks.example.org:8443/x", "192.0.2.7") == (
        "https://192.0.2.7:8443/x",
        "hooks.example.org:8443",
        "hooks.example.org",
    )
