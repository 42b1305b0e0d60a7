"""State changes racing each other through the real HTTP app (issue 12, finding 1).

Before every state change locked its row, PostgreSQL lost updates: an approval and a
cancel of one loan both answered 200 and the loan ended confirmed after the borrower was
told it was cancelled; ten cancels of one booking answered 200 up to ten times.

A uvicorn server runs the app on each engine's database (one server per engine for the
module). In every trial, threads — each with its own HTTP client, released together by a
``threading.Barrier`` — ask for conflicting changes of one booking, request, pledge,
project or agreement. Each trial must be consistent: exactly one change wins (2xx), every
other answer is a 409 naming why, the audit log holds exactly one event for the change,
and the ledger agrees with the outcome (a confirmed booking holds money once; a
cancelled, declined or released one holds none; a completed one was charged once). The
one legal double is an approval followed by a cancel: the borrower may cancel a loan once
it is confirmed. Without the row locks every booking and request race here fails on
PostgreSQL within its first trials; SQLite serialises whole write transactions.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from litestar import Litestar
from sqlalchemy import func, select

import ledger
from app.audit.models import AuditEvent
from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.bookings.models import Booking, Request
from app.catalog import services as catalog
from app.catalog.schemas import (
    DeviceCreate,
    DeviceTypeCreate,
    ExpertCreate,
    SkillCreate,
    SkillLevel,
)
from ledger.models import Entry
from tests.app import factories as f
from tests.app.booking_world import WEEKDAYS_9_TO_5, Lending, build
from tests.app.conftest import World
from tests.app.live_server import live_server, together
from tests.conftest import truncate_all

TRIALS = 20
THREADS = 10
BERLIN = ZoneInfo("Europe/Berlin")
FUTURE = date(2027, 2, 1)  # a Monday; the slots of the trials follow, weekdays only
PAST = date(2026, 6, 1)  # a Monday; bookings that have ended (to complete them)


@dataclass
class Race:
    """The lending world on one engine, and the live server that serves it."""

    world: World
    w: Lending
    base: str
    sonar: uuid.UUID  # a device that needs an operator
    operator: uuid.UUID  # the lender's expert who may operate it
    clients: list[httpx.Client]


def _hours(first_day: date) -> Iterator[tuple[datetime, datetime]]:
    """One-hour slots, 09:00–17:00 Berlin on weekdays, from ``first_day`` on."""
    for day in (first_day + timedelta(days=n) for n in itertools.count()):
        if day.weekday() < 5:
            for hour in range(9, 17):
                start = datetime.combine(day, time(hour), BERLIN).astimezone(UTC)
                yield start, start + timedelta(hours=1)


_future = _hours(FUTURE)
_past = _hours(PAST)


@pytest.fixture(scope="module", params=[1, 2], ids=["1worker", "2workers"])
def workers(request: pytest.FixtureRequest, module_db_url: str) -> int:
    """App worker processes of the server: one, and two on PostgreSQL (SQLite: one only)."""
    if request.param > 1 and not module_db_url.startswith("postgresql"):
        pytest.skip("several app workers need PostgreSQL")
    return int(request.param)


@pytest.fixture(scope="module")
def race(
    module_app: Litestar,
    module_db_url: str,
    workers: int,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Race]:
    """Lender L lends to borrower B under an agreement that needs approval; one server."""
    if module_db_url.startswith("postgresql"):
        truncate_all(module_db_url)  # the module's database served the other worker count
    world = World(app=module_app)
    w = build(world, requires_approval=True)
    world.user("root", "ADM", Role.ADMIN)  # books the past slots (backfill)
    with world.session() as s:
        skill = catalog.create_skill(s, SYSTEM, SkillCreate(name="Sonar operation")).id
        sonar_type = catalog.create_device_type(s, SYSTEM, DeviceTypeCreate(name="Sonar")).id
        sonar = catalog.create_device(
            s,
            SYSTEM,
            DeviceCreate(
                unit_id=w.lender,
                name="Sonar 1",
                device_type_id=sonar_type,
                time_zone="Europe/Berlin",
                working_hours=None,
                operator_skill_id=skill,
                hourly_rate=1000,
            ),
        ).id
        operator = catalog.create_expert(
            s,
            SYSTEM,
            ExpertCreate(
                unit_id=w.lender,
                name="Lena Operator",
                time_zone="Europe/Berlin",
                working_hours=WEEKDAYS_9_TO_5,
                skills=[SkillLevel(skill_id=skill, level=2)],
                hourly_rate=5000,
            ),
        ).id
    clients = [httpx.Client(timeout=60) for _ in range(THREADS)]
    log = tmp_path_factory.mktemp("uvicorn") / "uvicorn.log"
    try:
        with live_server(module_db_url, workers, log) as base:
            yield Race(world, w, base, sonar, operator, clients)
    finally:
        for client in clients:
            client.close()


# --- setting up a trial ------------------------------------------------------------------


def _post(r: Race, path: str, headers: dict[str, str], body: dict[str, Any] | None = None) -> Any:
    answer = r.clients[0].post(f"{r.base}{path}", json=body or {}, headers=headers)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def _book(
    r: Race, slot: tuple[datetime, datetime], resource: uuid.UUID | None = None, **extra: Any
) -> dict[str, Any]:
    """A loan of the lender's expert (or ``resource``), pending the lender's approval; one
    that has already ended is backfilled by an admin (the borrower may no longer book it)."""
    past = slot[1] <= datetime.now(UTC)
    booking = _post(
        r,
        "/bookings",
        r.world.headers("root") if past else r.w.requester,
        {
            "resource_id": str(resource or r.w.expert),
            "project_id": str(r.w.project),
            "start": slot[0].isoformat(),
            "end": slot[1].isoformat(),
            **({"backfill": True} if past else {}),
            **extra,
        },
    )
    assert booking["status"] == "pending_approval", booking
    return dict(booking)


def _confirmed(r: Race, slot: tuple[datetime, datetime], **extra: Any) -> dict[str, Any]:
    booking = _book(r, slot, **extra)
    return dict(_post(r, f"/bookings/{booking['id']}/approve", r.w.manager, {"reason": "ok"}))


# --- one trial ---------------------------------------------------------------------------

Step = tuple[str, dict[str, str]]
"""An action's path (after the base URL) and whose headers send it."""


def _run(r: Race, steps: list[Step], body: dict[str, Any] | None = None) -> list[httpx.Response]:
    """Send every step at once, each from its own thread and client."""

    def send(i: int, client: httpx.Client) -> httpx.Response:
        path, headers = steps[i]
        return client.post(
            f"{r.base}{path}", json={"reason": "race"} if body is None else body, headers=headers
        )

    answers = together(len(steps), send, r.clients[: len(steps)])
    errors = [a for a in answers if not isinstance(a, httpx.Response)]
    assert not errors, errors[:3]
    return answers


def _winners(answers: list[httpx.Response], losing_codes: set[str]) -> list[int]:
    """Indices of the 2xx answers; every other answer is a 409 with one of ``losing_codes``."""
    for answer in answers:
        assert answer.status_code in (200, 201, 409), (answer.status_code, answer.text[:300])
        if answer.status_code == 409:
            assert answer.json().get("code") in losing_codes, answer.text
    return [i for i, answer in enumerate(answers) if answer.status_code in (200, 201)]


def _one_winner(answers: list[httpx.Response], losing_codes: set[str]) -> int:
    """The index of the one 2xx answer; all others are 409 with one of ``losing_codes``."""
    won = _winners(answers, losing_codes)
    assert len(won) == 1, sorted(a.status_code for a in answers)
    return won[0]


def _audited(r: Race, object_id: str | None, *actions: str) -> dict[str, int]:
    """How many audit events of each of ``actions`` name ``object_id`` (None: any object)."""
    query = select(AuditEvent.action, func.count()).where(AuditEvent.action.in_(actions))
    if object_id is not None:
        query = query.where(AuditEvent.object_id == object_id)
    with r.world.session() as s:
        rows = s.execute(query.group_by(AuditEvent.action)).all()
    return {action: 0 for action in actions} | {a: int(n) for a, n in rows}


def _status(r: Race, booking_id: str) -> str:
    with r.world.session() as s:
        return str(s.get_one(Booking, uuid.UUID(booking_id)).status)


def _holds(r: Race, booking_id: str) -> list[str]:
    """The states of the booking's holds (``pending``, ``posted``, ``voided``, …)."""
    with r.world.session() as s:
        return [ledger.hold_state(s, h.id).state for h in ledger.holds_for_reference(s, booking_id)]


def _money_follows(r: Race, booking_id: str) -> None:
    """The ledger agrees with the booking's status."""
    status, holds = _status(r, booking_id), _holds(r, booking_id)
    if status == "confirmed":
        assert holds == ["pending"], (status, holds)
    elif status == "completed":
        assert holds == ["posted"], (status, holds)
    else:
        assert "pending" not in holds, (status, holds)


# --- the races ---------------------------------------------------------------------------


def test_approvals_race_cancels_of_one_pending_loan(race: Race) -> None:
    """One cancel always wins: before the approval (which then finds the loan cancelled),
    or after it (the borrower cancels the confirmed loan, which is allowed). Never two
    cancels, never two approvals, never an approval that outlives a cancel."""
    r = race
    for trial in range(TRIALS):
        booking = _book(r, next(_future))
        path = f"/bookings/{booking['id']}"
        steps = [(f"{path}/approve", r.w.manager)] * 5 + [(f"{path}/cancel", r.w.requester)] * 5
        answers = _run(r, steps)
        won = _winners(answers, {"wrong_status"})
        approved, cancelled = [i for i in won if i < 5], [i for i in won if i >= 5]
        assert len(cancelled) == 1 and len(approved) <= 1, (trial, won)
        assert _status(r, booking["id"]) == "cancelled", trial
        events = _audited(r, booking["id"], "booking.approve", "booking.cancel")
        assert events == {"booking.approve": len(approved), "booking.cancel": 1}, (trial, events)
        if approved:  # the approval came first, the cancel saw it
            approval, cancel = answers[approved[0]].json(), answers[cancelled[0]].json()
            assert approval["status"] == "confirmed" and cancel["status"] == "cancelled"
            assert approval["sequence"] < cancel["sequence"], (approval, cancel)
        assert _holds(r, booking["id"]) == (["voided"] if approved else []), trial


def test_approvals_race_declines(race: Race) -> None:
    r = race
    for trial in range(TRIALS):
        booking = _book(r, next(_future))
        path = f"/bookings/{booking['id']}"
        steps = [(f"{path}/approve", r.w.manager)] * 5 + [(f"{path}/decline", r.w.manager)] * 5
        winner = _one_winner(_run(r, steps), {"wrong_status"})
        won = "approve" if winner < 5 else "decline"
        assert _status(r, booking["id"]) == {"approve": "confirmed", "decline": "declined"}[won]
        events = _audited(r, booking["id"], "booking.approve", "booking.decline")
        assert sorted(events.values()) == [0, 1] and events[f"booking.{won}"] == 1, (trial, events)
        _money_follows(r, booking["id"])


def test_ten_cancels_of_one_confirmed_booking(race: Race) -> None:
    """Borrower and lender cancel at once: one cancel, one release of the hold."""
    r = race
    for trial in range(TRIALS):
        booking = _confirmed(r, next(_future))
        path = f"/bookings/{booking['id']}/cancel"
        steps = [(path, r.w.requester)] * 5 + [(path, r.w.manager)] * 5
        _one_winner(_run(r, steps), {"wrong_status"})
        assert _status(r, booking["id"]) == "cancelled"
        assert _audited(r, booking["id"], "booking.cancel") == {"booking.cancel": 1}, trial
        assert _holds(r, booking["id"]) == ["voided"]


def test_complete_races_cancel(race: Race) -> None:
    r = race
    for trial in range(TRIALS):
        booking = _confirmed(r, next(_past))
        path = f"/bookings/{booking['id']}"
        steps = [(f"{path}/complete", r.w.requester)] * 5 + [(f"{path}/cancel", r.w.requester)] * 5
        winner = _one_winner(_run(r, steps), {"wrong_status"})
        won = "complete" if winner < 5 else "cancel"
        assert _status(r, booking["id"]) == {"complete": "completed", "cancel": "cancelled"}[won]
        events = _audited(r, booking["id"], "booking.complete", "booking.cancel")
        assert sorted(events.values()) == [0, 1] and events[f"booking.{won}"] == 1, (trial, events)
        _money_follows(r, booking["id"])


def test_check_in_races_release_of_a_device(race: Race) -> None:
    """The borrower collects the drone while the lender releases it as a no-show."""
    r = race
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for trial in range(TRIALS):
        # Started 20 minutes ago (past the drone's 10 minutes' grace), ends in 40.
        slot = (now - timedelta(minutes=20), now + timedelta(minutes=40))
        booking = _confirmed(r, slot, resource=r.w.device)
        path = f"/bookings/{booking['id']}"
        steps = [(f"{path}/check-in", r.w.requester)] * 5 + [(f"{path}/release", r.w.manager)] * 5
        winner = _one_winner(_run(r, steps), {"wrong_status", "not_a_no_show"})
        won = "check_in" if winner < 5 else "release"
        events = _audited(r, booking["id"], "booking.check_in", "booking.release")
        assert sorted(events.values()) == [0, 1] and events[f"booking.{won}"] == 1, (trial, events)
        _money_follows(r, booking["id"])
        if won == "check_in":
            assert _status(r, booking["id"]) == "confirmed"
            # Free the drone for the next trial.
            _post(r, f"{path}/cancel", r.w.requester, {"reason": "next trial"})
        else:
            assert _status(r, booking["id"]) == "released"


def test_cancels_of_a_device_race_cancels_of_its_operator(race: Race) -> None:
    """Either half of a pair cancels both: one wins, and the locks never deadlock."""
    r = race
    for trial in range(TRIALS):
        device = _book(r, next(_future), resource=r.sonar, operator_id=str(r.operator))
        with r.world.session() as s:
            operator = str(
                s.scalar(select(Booking.id).where(Booking.operator_for_id == device["id"]))
            )
        steps = [(f"/bookings/{device['id']}/cancel", r.w.requester)] * 5 + [
            (f"/bookings/{operator}/cancel", r.w.requester)
        ] * 5
        _one_winner(_run(r, steps), {"wrong_status"})
        for booking_id in (device["id"], operator):
            assert _status(r, booking_id) == "cancelled"
            assert _audited(r, booking_id, "booking.cancel") == {"booking.cancel": 1}, trial
            _money_follows(r, booking_id)


def test_ten_cancels_of_one_served_request(race: Race) -> None:
    r = race
    for trial in range(TRIALS):
        start, end = next(_future)
        request = _post(
            r,
            "/requests",
            r.w.requester,
            {
                "project_id": str(r.w.project),
                "title": f"Survey {trial}",
                "requirements": [{"kind": "skill", "skill_id": str(r.w.skill)}],
                "duration_minutes": 60,
                "window_start": start.isoformat(),
                "window_end": end.isoformat(),
            },
        )
        (served,) = _post(r, f"/requests/{request['id']}/serve", r.w.requester)["bookings"]
        steps = [(f"/requests/{request['id']}/cancel", r.w.requester)] * THREADS
        _one_winner(_run(r, steps), {"wrong_status"})
        with r.world.session() as s:
            assert s.get_one(Request, uuid.UUID(request["id"])).status == "cancelled"
        assert _audited(r, request["id"], "request.cancel") == {"request.cancel": 1}, trial
        assert _status(r, served["id"]) == "cancelled"
        assert _audited(r, served["id"], "booking.cancel") == {"booking.cancel": 1}, trial
        _money_follows(r, served["id"])


def test_a_conditional_pledge_is_met_once_and_never_overpaid(race: Race) -> None:
    """The ledger locks the project's books and re-checks under the lock: ten "met" at once
    recognise the pledge once; ten receipts of 30 % each at once take at most all of it."""
    r = race
    manager = r.world.user("um", "B", Role.UNIT_MANAGER)
    lead = r.world.headers("lead")
    for trial in range(TRIALS):
        pledge = _post(
            r,
            f"/projects/{r.w.project}/funds/pledges",
            manager,
            {
                "unit_id": str(r.w.borrower),
                "amount": 10_000,
                "conditional": True,
                "condition": f"council vote {trial}",
            },
        )
        pledge_id = pledge["pledge_id"]
        audited = _audited(r, None, "funds.pledge_met", "funds.receipt")
        met = _run(r, [(f"/pledges/{pledge_id}/met", lead)] * THREADS, {})
        _one_winner(met, {"pledge_state"})
        receipts = _run(r, [(f"/pledges/{pledge_id}/receipts", lead)] * THREADS, {"amount": 3_000})
        assert len(_winners(receipts, {"exceeds_outstanding"})) == 3, trial
        with r.world.session() as s:
            assert ledger.pledge_outstanding(s, pledge_id) == 1_000, trial
            entries = s.execute(
                select(Entry.kind, func.count())
                .where(Entry.pledge_id == pledge_id)
                .group_by(Entry.kind)
            ).all()
        assert dict(entries) == {"pledge": 1, "receipt": 3}, (trial, entries)
        now = _audited(r, None, "funds.pledge_met", "funds.receipt")
        assert {a: now[a] - audited[a] for a in now} == {
            "funds.pledge_met": 1,
            "funds.receipt": 3,
        }, trial


def test_a_project_closes_once_and_an_agreement_ends_once(race: Race) -> None:
    r = race
    lead = r.world.headers("lead")
    lender_manager = r.world.user("lum", "L", Role.UNIT_MANAGER)
    for trial in range(TRIALS):
        with r.world.session() as s:
            project = str(f.project(s, r.w.borrower, r.world.users["lead"]).id)
            agreement = str(f.agreement(s, r.w.lender, r.w.borrower).id)
        closes = _run(r, [(f"/projects/{project}/close", lead)] * THREADS)
        _one_winner(closes, {"wrong_status"})
        assert _audited(r, project, "project.close") == {"project.close": 1}, trial
        ends = _run(r, [(f"/agreements/{agreement}/terminate", lender_manager)] * THREADS)
        _one_winner(ends, {"wrong_status"})
        assert _audited(r, agreement, "agreement.terminate") == {"agreement.terminate": 1}, trial
