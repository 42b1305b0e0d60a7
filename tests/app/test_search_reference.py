"""The slot search against a plain reference on random calendars (both databases).

The search reads in slabs, only for unresolved candidates, and finds the blocks that
straddle a slab's start by an index seek; the reference reads every booking and every
leave once and takes each candidate's first fit over the whole range. They must agree
slot for slot, with devices' buffers, cancelled bookings, leave and long bookings that
start before the range.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.auth.actor import SYSTEM
from app.bookings.availability import first_fit, subtract, working_intervals
from app.bookings.models import LIVE_STATUSES, Booking
from app.bookings.search import search_slots
from app.catalog.models import Resource, Unavailability
from tests.app import factories as f

START = datetime(2027, 3, 1, tzinfo=UTC)  # a Monday
END = START + timedelta(days=21)


def _world(s: Session, rng: random.Random) -> tuple[uuid.UUID, uuid.UUID]:
    """Experts of one skill and devices of one type (15/30 min buffers), randomly booked."""
    unit = f.unit(s)
    user = f.user(s, unit.id)
    project = f.project(s, unit.id, user.id, start_date=START.date(), end_date=END.date())
    skill = f.skill(s)
    dtype = f.device_type(s, setup_minutes=15, teardown_minutes=30)
    resources = [
        f.expert(
            s,
            unit.id,
            {skill.id: 3},
            time_zone=rng.choice(["Europe/Berlin", "America/New_York", "UTC"]),
        )
        for _ in range(rng.randint(3, 8))
    ]
    resources += [f.device(s, unit.id, dtype.id) for _ in range(rng.randint(1, 4))]
    rows: list[dict[str, Any]] = []
    for resource in resources:
        at = START - timedelta(days=rng.choice([0, 3, 20]))
        while at < END:
            at += timedelta(minutes=15 * rng.randint(0, 60))
            length = timedelta(minutes=15 * rng.choice([2, 4, 8, 40, 400, 1200]))
            buffers = (timedelta(minutes=15), timedelta(minutes=30))
            is_device = resource.kind == "device"
            block = (at - buffers[0], at + length + buffers[1]) if is_device else (at, at + length)
            status = rng.choice(["confirmed", "confirmed", "pending_approval", "cancelled"])
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "resource_id": resource.id,
                    "project_id": project.id,
                    "borrower_unit_id": unit.id,
                    "lender_unit_id": unit.id,
                    "created_by": user.id,
                    "title": "",
                    "start": at,
                    "end": at + length,
                    "block_start": block[0],
                    "block_end": block[1],
                    "status": status,
                    "sequence": 0,
                    "status_reason": "",
                }
            )
            if status != "cancelled":  # live blocks never overlap: the next starts after
                at = block[1] + (buffers[0] if is_device else timedelta(0))
        if rng.random() < 0.3:
            leave = START + timedelta(days=rng.randint(0, 15))
            s.add(
                Unavailability(
                    resource_id=resource.id,
                    kind="leave",
                    start=leave,
                    end=leave + timedelta(days=rng.randint(1, 3)),
                    note="",
                )
            )
    s.execute(insert(Booking), rows)
    s.flush()
    return skill.id, dtype.id


def _reference(
    s: Session,
    resources: list[Resource],
    minutes: int,
    limit: int,
    per_resource: int = 1,
    offset: int = 0,
) -> list[tuple[uuid.UUID, datetime]]:
    """Each resource's first fits over the whole range, from every row read at once."""
    found = []
    for resource in resources:
        before, after = (timedelta(0), timedelta(0))
        if resource.kind == "device":
            before, after = timedelta(minutes=15), timedelta(minutes=30)
        blocks = s.execute(
            select(Booking.block_start, Booking.block_end).where(
                Booking.resource_id == resource.id, Booking.status.in_(LIVE_STATUSES)
            )
        ).all()
        off = s.execute(
            select(Unavailability.start, Unavailability.end).where(
                Unavailability.resource_id == resource.id
            )
        ).all()
        busy = [(b0 - after, b1 + before) for b0, b1 in blocks] + [tuple(o) for o in off]
        free = subtract(
            working_intervals(resource.working_hours, resource.time_zone, START, END), busy
        )
        at = first_fit(free, minutes, step_minutes=15)
        for _ in range(per_resource):
            if at is None:
                break
            found.append((at, resource.name, resource.id))
            # the next fit is searched from this one's end over the free time cut there
            rest = subtract(free, [(START, at + timedelta(minutes=minutes))])
            at = first_fit(rest, minutes, step_minutes=15)
    return [(rid, at) for at, _, rid in sorted(found)[offset : offset + limit]]


@pytest.mark.parametrize("seed", range(12))
def test_search_agrees_with_the_reference(session: Session, seed: int) -> None:
    rng = random.Random(seed)
    skill, dtype = _world(session, rng)
    session.commit()
    for kind in ("skill", "device_type"):
        minutes, limit = rng.choice([30, 60, 120, 480]), rng.choice([1, 3, 20])
        per_resource, offset = rng.choice([1, 1, 2, 5]), rng.choice([0, 0, 2, 7])
        criteria: dict[str, Any] = (
            {"skill_id": skill} if kind == "skill" else {"device_type_id": dtype}
        )
        got = search_slots(
            session,
            SYSTEM,
            start=START,
            end=END,
            duration_minutes=minutes,
            limit=limit,
            per_resource=per_resource,
            offset=offset,
            **criteria,
        )
        column = Resource.kind == ("expert" if kind == "skill" else "device")
        resources = list(session.scalars(select(Resource).where(column)))
        expected = _reference(session, resources, minutes, limit, per_resource, offset)
        assert [(slot.resource_id, slot.start) for slot in got] == expected, (
            seed,
            kind,
            per_resource,
            offset,
        )
