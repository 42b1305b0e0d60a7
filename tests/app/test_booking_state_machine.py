"""A Hypothesis state machine of book / cancel / approve / decline / recur (service layer).

Each example gets an expert (09:00–17:00 Europe/Berlin on weekdays, with an afternoon of
leave) and a drone (around the clock, 15 min set-up and tear-down, a maintenance
blackout), lent under an agreement that needs approval, over days on both sides of the
March 2027 daylight-saving change. After every step, checked against the database with
arithmetic of its own (not the app's availability module):

- no two live bookings of a resource overlap, buffers included;
- every live booking lies inside the resource's working hours and outside its
  unavailability.

Refusals are checked too: an ``overlap`` names a live booking that really clashes, an
``outside_working_hours`` is really outside, and a refused series writes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from itertools import pairwise
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.actor import SYSTEM, Actor
from app.auth.models import Role
from app.bookings import recurring, services
from app.bookings.models import LIVE_STATUSES, Booking, BookingSeries
from app.bookings.schemas import BookingCreate, SeriesCreate
from app.catalog import services as catalog
from app.catalog.models import Device, Expert
from app.catalog.schemas import DeviceCreate, ExpertCreate, UnavailabilityCreate
from app.db import make_session_factory
from app.errors import Conflict
from tests.app.booking_world import WEEKDAYS_9_TO_5, build

BERLIN = ZoneInfo("Europe/Berlin")
# Friday and Saturday before the change (28 March 2027), Monday and Tuesday after it.
DAYS = [date(2027, 3, 26), date(2027, 3, 27), date(2027, 3, 29), date(2027, 3, 30)]
BUFFER = timedelta(minutes=15)
T = TypeVar("T")


def _local(day: date, minutes: int) -> datetime:
    """``minutes`` after midnight of ``day``, Berlin wall-clock (below 24 h)."""
    return datetime.combine(day, time(minutes // 60, minutes % 60), BERLIN)


def _inside_hours(start: datetime, end: datetime) -> bool:
    """09:00–17:00 Berlin wall-clock, Monday to Friday, within one day."""
    s, e = start.astimezone(BERLIN), end.astimezone(BERLIN)
    return (s.date() == e.date() and s.weekday() < 5
            and time(9) <= s.time() and e.time() <= time(17) and e > s)


def _overlaps(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


class Bookings(RuleBasedStateMachine):
    """Bookings of one expert and one drone by the borrower, decided by the lender."""

    session_factory: Callable[[], Session]
    lending: Any
    requester: Actor
    manager: Actor

    made = Bundle("bookings")

    def __init__(self) -> None:
        super().__init__()
        with self._session() as s:
            expert = catalog.create_expert(s, SYSTEM, ExpertCreate(
                unit_id=self.lending.lender, name=f"Expert {uuid.uuid4().hex[:8]}",
                time_zone="Europe/Berlin", working_hours=WEEKDAYS_9_TO_5, skills=[],
                hourly_rate=9000))
            device = catalog.create_device(s, SYSTEM, DeviceCreate(
                unit_id=self.lending.lender, name=f"Drone {uuid.uuid4().hex[:8]}",
                device_type_id=self.lending.device_type, time_zone="Europe/Berlin",
                working_hours=None, hourly_rate=2000))
            leave = (_local(DAYS[3], 13 * 60), _local(DAYS[3], 17 * 60))
            blackout = (_local(DAYS[2], 0), _local(DAYS[2], 8 * 60))
            catalog.add_unavailability(s, SYSTEM, Expert, expert.id, UnavailabilityCreate(
                start=leave[0], end=leave[1], note="leave"))
            catalog.add_unavailability(s, SYSTEM, Device, device.id, UnavailabilityCreate(
                start=blackout[0], end=blackout[1], note="maintenance"))
            s.commit()
            self.expert, self.device = expert.id, device.id
        self.off = {self.expert: [leave], self.device: [blackout]}
        self.buffer = {self.expert: timedelta(0), self.device: BUFFER}

    def _session(self) -> Session:
        return self.session_factory()

    def _attempt(self, action: Callable[[Session], T]) -> T | Conflict:
        """Run one service call in its own transaction: committed, or rolled back on 409."""
        with self._session() as s:
            try:
                result = action(s)
            except Conflict as exc:
                s.rollback()
                return exc
            s.commit()
            return result

    def _live(self, s: Session) -> list[Booking]:
        return list(s.scalars(select(Booking).where(
            Booking.resource_id.in_([self.expert, self.device]),
            Booking.status.in_(LIVE_STATUSES))))

    def _check_refusal(self, exc: Conflict, resource: uuid.UUID, start: datetime,
                       end: datetime) -> None:
        code = exc.extra.get("code")
        block = (start - self.buffer[resource], end + self.buffer[resource])
        if code == "overlap":
            clash = uuid.UUID(exc.extra["conflicts"][0]["booking_id"])
            with self._session() as s:
                other = s.get(Booking, clash)
                assert other is not None and other.status in LIVE_STATUSES
                assert other.resource_id == resource
                assert _overlaps(block, (other.block_start, other.block_end))
        elif code == "outside_working_hours":
            assert resource == self.expert and not _inside_hours(start, end)
        elif code == "unavailable":
            assert any(_overlaps((start, end), p) for p in self.off[resource])
        else:
            raise AssertionError(f"unexpected refusal {code}: {exc.detail}")

    # --- rules ------------------------------------------------------------------------------

    @rule(target=made, which=st.sampled_from(["expert", "device"]), day=st.sampled_from(DAYS),
          start=st.integers(7 * 4, 18 * 4).map(lambda q: q * 15),
          minutes=st.sampled_from([30, 60, 90, 120, 240]))
    def book(self, which: str, day: date, start: int, minutes: int) -> Any:
        resource = self.expert if which == "expert" else self.device
        begin = _local(day, start)
        end = begin + timedelta(minutes=minutes)
        data = BookingCreate(resource_id=resource, project_id=self.lending.project,
                             start=begin, end=end)
        result = self._attempt(lambda s: services.book(s, self.requester, data))
        if isinstance(result, Conflict):
            self._check_refusal(result, resource, begin, end)
            return multiple()
        assert result.status == "pending_approval"  # the agreement needs approval
        return result.id

    @rule(target=made, which=st.sampled_from(["expert", "device"]),
          day=st.sampled_from(DAYS[:2]), hour=st.integers(8, 16),
          count=st.integers(1, 3), skip=st.booleans())
    def recur(self, which: str, day: date, hour: int, count: int, skip: bool) -> Any:
        resource = self.expert if which == "expert" else self.device
        data = SeriesCreate(resource_id=resource, project_id=self.lending.project,
                            time_zone="Europe/Berlin",
                            local_start=f"{day.isoformat()}T{hour:02d}:00:00",
                            duration_minutes=60, rrule=f"FREQ=DAILY;INTERVAL=3;COUNT={count}",
                            skip_conflicts=skip)
        before = self._counts()
        result = self._attempt(lambda s: recurring.create_series(s, self.requester, data))
        if isinstance(result, Conflict):
            assert self._counts() == before  # a refused series writes nothing
            return multiple()
        _, booked, skipped = result
        assert len(booked) + len(skipped) == count
        assert skip or not skipped
        for b in booked:
            assert b.start.astimezone(BERLIN).time() == time(hour)  # across the change too
        return multiple(*(b.id for b in booked))

    @rule(booking=made)
    def approve(self, booking: uuid.UUID) -> None:
        result = self._attempt(lambda s: services.approve(s, self.manager, booking, "ok"))
        if isinstance(result, Conflict):
            assert result.extra.get("code") == "wrong_status", result.detail
        else:
            assert result.status == "confirmed"

    @rule(booking=consumes(made))
    def decline(self, booking: uuid.UUID) -> None:
        result = self._attempt(lambda s: services.decline(s, self.manager, booking, "no"))
        if isinstance(result, Conflict):
            assert result.extra.get("code") == "wrong_status", result.detail
        else:
            assert result.status == "declined"

    @rule(booking=consumes(made), by_lender=st.booleans())
    def cancel(self, booking: uuid.UUID, by_lender: bool) -> None:
        actor = self.manager if by_lender else self.requester
        result = self._attempt(lambda s: services.cancel(s, actor, booking, "changed"))
        if isinstance(result, Conflict):
            assert result.extra.get("code") == "wrong_status", result.detail
        else:
            assert result.status == "cancelled"

    # --- invariants -------------------------------------------------------------------------

    def _counts(self) -> tuple[int, int]:
        with self._session() as s:
            return (s.scalar(select(func.count()).select_from(Booking)) or 0,
                    s.scalar(select(func.count()).select_from(BookingSeries)) or 0)

    @invariant()
    def live_bookings_never_overlap_and_lie_inside_availability(self) -> None:
        with self._session() as s:
            live = self._live(s)
        by_resource: dict[uuid.UUID, list[Booking]] = {}
        for b in live:
            by_resource.setdefault(b.resource_id, []).append(b)
            buffer = self.buffer[b.resource_id]
            assert (b.block_start, b.block_end) == (b.start - buffer, b.end + buffer)
            if b.resource_id == self.expert:
                assert _inside_hours(b.start, b.end), (b.start, b.end)
            for period in self.off[b.resource_id]:
                assert not _overlaps((b.start, b.end), period), (b.start, b.end, period)
        for bookings in by_resource.values():
            bookings.sort(key=lambda b: b.block_start)
            for first, second in pairwise(bookings):
                assert first.block_end <= second.block_start, (first.id, second.id)


def test_booking_state_machine(world: Any, app: Any) -> None:
    w = build(world, requires_approval=True)
    Bookings.session_factory = make_session_factory(app.state.engine)
    Bookings.lending = w
    Bookings.requester = Actor(user_id=world.users["req"], unit_id=w.borrower,
                               roles=frozenset({Role.REQUESTER}), name="req")
    Bookings.manager = Actor(user_id=world.users["rm"], unit_id=w.lender,
                             roles=frozenset({Role.RESOURCE_MANAGER}), name="rm")
    run_state_machine_as_test(Bookings, settings=settings(
        max_examples=25, stateful_step_count=15, deadline=None, derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]))


def test_invariant_helpers_see_a_violation() -> None:
    """The machine's own arithmetic would catch a booking outside hours or overlapping."""
    monday = DAYS[2]
    assert _inside_hours(_local(monday, 9 * 60), _local(monday, 17 * 60))
    assert not _inside_hours(_local(monday, 8 * 60 + 45), _local(monday, 10 * 60))
    assert not _inside_hours(_local(DAYS[1], 10 * 60), _local(DAYS[1], 11 * 60))  # Saturday
    # 09:00 local is 08:00 UTC before the change and 07:00 UTC after it
    assert _local(DAYS[0], 9 * 60).astimezone(UTC).hour == 8
    assert _local(monday, 9 * 60).astimezone(UTC).hour == 7
    a = (_local(monday, 600), _local(monday, 660))
    assert _overlaps(a, (_local(monday, 659), _local(monday, 700)))
    assert not _overlaps(a, (_local(monday, 660), _local(monday, 700)))
