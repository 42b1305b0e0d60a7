"""Bookings in the past are refused unless an admin backfills them (issue 12, input
hygiene): a direct booking or a series whose slot ends before now answers 400 naming the
field; ``"backfill": true`` is for admins only and is audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.audit.models import AuditEvent
from app.auth.models import Role
from tests.app.booking_world import Lending, build
from tests.app.conftest import World

PAST = {"start": "2025-03-03T10:00:00+01:00", "end": "2025-03-03T11:00:00+01:00"}
FUTURE = {"start": "2027-03-01T10:00:00+01:00", "end": "2027-03-01T11:00:00+01:00"}


@pytest.fixture
def w(world: World) -> Lending:
    world.user("root", "ADM", Role.ADMIN)
    return build(world)


def _book(client: Any, w: Lending, span: dict[str, str], headers: dict[str, str], **kw: Any) -> Any:
    body = {"resource_id": str(w.expert), "project_id": str(w.project), **span, **kw}
    return client.post("/bookings", json=body, headers=headers)


def _backfills(world: World) -> list[AuditEvent]:
    with world.session() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == "booking.backfill")))


def test_a_past_booking_is_refused_naming_end(client: Any, world: World, w: Lending) -> None:
    for headers in (w.requester, world.headers("root")):
        r = _book(client, w, PAST, headers)
        assert r.status_code == 400, r.text
        assert r.json()["field"] == "end"
    # one that ends a minute from now is not past (it started an hour ago)
    now = datetime.now(UTC).replace(microsecond=0)
    running = {
        "start": (now - timedelta(minutes=59)).isoformat(),
        "end": (now + timedelta(minutes=1)).isoformat(),
    }
    r = _book(client, w, running, w.requester)
    assert r.status_code != 400, r.text  # (working hours may still refuse it: 409)


def test_only_an_admin_may_backfill(client: Any, world: World, w: Lending) -> None:
    for span in (PAST, FUTURE):
        r = _book(client, w, span, w.requester, backfill=True)
        assert r.status_code == 403, r.text
    assert _backfills(world) == []
    r = _book(client, w, PAST, world.headers("root"), backfill=True)
    assert r.status_code == 201, r.text
    (event,) = _backfills(world)
    assert event.actor_user_id == world.users["root"]
    assert event.after["resource_id"] == str(w.expert)


def test_future_bookings_need_no_flag(client: Any, w: Lending) -> None:
    assert _book(client, w, FUTURE, w.requester).status_code == 201


def _series(client: Any, w: Lending, local_start: str, headers: dict[str, str], **kw: Any) -> Any:
    body = {
        "resource_id": str(w.expert),
        "project_id": str(w.project),
        "time_zone": "Europe/Berlin",
        "local_start": local_start,
        "duration_minutes": 60,
        "rrule": "FREQ=WEEKLY;COUNT=3",
        **kw,
    }
    return client.post("/booking-series", json=body, headers=headers)


def test_a_series_with_past_occurrences_is_refused(client: Any, world: World, w: Lending) -> None:
    r = _series(client, w, "2025-03-03T10:00:00", w.requester)
    assert r.status_code == 400 and r.json()["field"] == "local_start", r.text
    assert _series(client, w, "2025-03-03T10:00:00", w.requester, backfill=True).status_code == 403
    r = _series(client, w, "2025-03-03T10:00:00", world.headers("root"), backfill=True)
    assert r.status_code == 201, r.text
    assert len(_backfills(world)) == 1
    assert _series(client, w, "2027-03-01T10:00:00", w.requester).status_code == 201
