"""At least once across a crash: ``kill -9`` of a real ``copool worker`` (PostgreSQL) while
it delivers loses no notification; its claimed deliveries come due again after the lease."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.auth.models import Role
from app.db import make_engine, make_session_factory
from app.notifications.models import NotificationDelivery
from tests.app import factories as f
from tests.app import test_jobs_worker as workers
from tests.app import test_notifications_delivery as delivery_tests
from tests.app.test_notifications_delivery import Receiver, endpoint

pytestmark = pytest.mark.slow
receiver = delivery_tests.receiver  # the fixtures: a signed-webhook receiver on loopback,
deployment = workers.deployment  # and copool processes killed after the test

EVENTS = 200


def _webhook_rows(db_url: str) -> dict[str, int]:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as s:
            rows = s.execute(
                select(NotificationDelivery.status, func.count())
                .where(NotificationDelivery.channel == "webhook")
                .group_by(NotificationDelivery.status)
            ).all()
            retried = s.scalar(
                select(func.count())
                .select_from(NotificationDelivery)
                .where(NotificationDelivery.attempts >= 2)
            )
        return {**{str(k): int(v) for k, v in rows}, "retried": int(retried or 0)}
    finally:
        engine.dispose()


def test_kill_9_of_the_worker_mid_delivery_loses_none(
    deployment: workers.Deployment, db_url: str, receiver: tuple[Receiver, str], tmp_path: Path
) -> None:
    if db_url.startswith("sqlite"):
        pytest.skip("copool worker runs on PostgreSQL (SQLite: copool serve delivers)")
    rec, url = receiver
    rec.hold = threading.Event()
    engine = make_engine(db_url)
    with make_session_factory(engine)() as s:
        unit = f.unit(s)
        f.user(s, unit.id, Role.RESOURCE_MANAGER)
        rec.secrets = [endpoint(s, unit.id, url).secret]
        ids = {str(i) for i in delivery_tests._emit_many(s, unit.id, EVENTS)}
    engine.dispose()
    deployment.env = {
        "COPOOL_WEBHOOK_ALLOW_PRIVATE": "true",
        "COPOOL_NOTIFY_LEASE_SECONDS": "3",
        "COPOOL_NOTIFY_BACKOFF_BASE_SECONDS": "0.01",
        "COPOOL_NOTIFY_BACKOFF_MAX_SECONDS": "0.05",
    }
    first = deployment.worker("first")
    assert rec.holding.wait(120), deployment.log("first")  # a delivery is in flight
    in_flight = _webhook_rows(db_url)
    assert in_flight.get("pending") == EVENTS  # claimed, none recorded yet
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    rec.hold.set()  # the receiver finishes what it got; nobody hears its answer
    deployment.worker("second")
    done = threading.Event()

    def all_delivered() -> bool:
        with rec.lock:
            got = set(rec.accepted) >= ids
        if got and _webhook_rows(db_url).get("delivered") == EVENTS:
            done.set()
        return done.is_set()

    workers.wait_for(all_delivered, "every event delivered after the restart", timeout=240)
    assert set(rec.accepted) == ids and rec.bad_signatures == 0
    rows = _webhook_rows(db_url)
    assert rows["delivered"] == EVENTS and rows["retried"] >= 1  # re-sent after the lease
