"""Finding free time: free-slot search across resources, and one resource's free/busy view.

Candidates are the resources the caller's unit may borrow (its own, and those an active
agreement shows it), not retired. Free time = working hours − unavailability − live
bookings (a device's busy blocks are widened by its own set-up/tear-down buffers, so a
slot found here can be booked as found).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from app.agreements.services import visible_resources
from app.auth.actor import Actor
from app.bookings import rules
from app.bookings.availability import Interval, first_fit, merge, subtract, working_intervals
from app.bookings.models import LIVE_STATUSES, Booking
from app.catalog.models import DeviceType, ExpertSkill, Resource, Unavailability
from app.errors import InvalidInput, NotFound


@dataclass(frozen=True, slots=True)
class Slot:
    """The earliest free slot of one resource."""

    resource_id: uuid.UUID
    resource_name: str
    unit_id: uuid.UUID
    start: datetime
    end: datetime


def candidates(
    session: Session,
    actor: Actor,
    *,
    skill_id: uuid.UUID | None = None,
    min_level: int = 1,
    device_type_id: uuid.UUID | None = None,
    resource_id: uuid.UUID | None = None,
) -> list[Resource]:
    """Active resources the actor's unit may borrow that match the requirement."""
    query = _candidate_query(actor, skill_id=skill_id, min_level=min_level,
                             device_type_id=device_type_id, resource_id=resource_id)
    return list(session.scalars(query))


def _candidate_query(
    actor: Actor,
    *,
    skill_id: uuid.UUID | None = None,
    min_level: int = 1,
    device_type_id: uuid.UUID | None = None,
    resource_id: uuid.UUID | None = None,
) -> Select[Resource]:
    query = select(Resource).where(Resource.retired_at.is_(None), visible_resources(actor))
    if skill_id is not None:
        query = query.where(
            select(ExpertSkill.id)
            .where(
                ExpertSkill.resource_id == Resource.id,
                ExpertSkill.skill_id == skill_id,
                ExpertSkill.level >= min_level,
            )
            .exists()
        )
    if device_type_id is not None:
        query = query.where(Resource.device_type_id == device_type_id)
    if resource_id is not None:
        query = query.where(Resource.id == resource_id)
    return query.order_by(Resource.name, Resource.id)


def _buffers_by_type(
    session: Session, resources: list[Resource]
) -> dict[uuid.UUID, tuple[timedelta, timedelta]]:
    type_ids = {r.device_type_id for r in resources if r.device_type_id}
    if not type_ids:
        return {}
    rows = session.execute(
        select(DeviceType.id, DeviceType.setup_minutes, DeviceType.teardown_minutes).where(
            DeviceType.id.in_(type_ids)
        )
    )
    return {tid: (timedelta(minutes=s), timedelta(minutes=t)) for tid, s, t in rows}


ResourceScope = list[uuid.UUID] | Select[uuid.UUID]
"""Resource ids, or a query of them (binding a thousand ids costs more than the subquery)."""


def _unavailable(
    session: Session, scope: ResourceScope, start: datetime, end: datetime
) -> dict[uuid.UUID, list[Interval]]:
    rows = session.execute(
        select(Unavailability.resource_id, Unavailability.start, Unavailability.end).where(
            Unavailability.resource_id.in_(scope),
            Unavailability.start < end,
            Unavailability.end > start,
        )
    )
    out: dict[uuid.UUID, list[Interval]] = {}
    for rid, s, e in rows:
        out.setdefault(rid, []).append((s, e))
    return out


def _live_block_spans(
    session: Session, scope: ResourceScope, start: datetime, end: datetime
) -> dict[uuid.UUID, list[Interval]]:
    """Blocked spans of live bookings overlapping ``[start, end)``: columns, not ORM objects
    (a search over many resources reads thousands of them)."""
    rows = session.execute(
        select(Booking.resource_id, Booking.block_start, Booking.block_end).where(
            Booking.resource_id.in_(scope),
            Booking.status.in_(LIVE_STATUSES),
            Booking.block_start < end,
            Booking.block_end > start,
        )
    )
    out: dict[uuid.UUID, list[Interval]] = {}
    for rid, s, e in rows:
        out.setdefault(rid, []).append((s, e))
    return out


def free_intervals(
    session: Session,
    resources: list[Resource],
    start: datetime,
    end: datetime,
    among: Select[uuid.UUID] | None = None,
) -> dict[uuid.UUID, list[Interval]]:
    """Per resource, the instants in ``[start, end)`` a new booking could start and run in.

    ``among``, a query of resource ids that includes ``resources``, narrows the reads
    instead of the list of their ids.
    """
    scope: ResourceScope = among if among is not None else [r.id for r in resources]
    buffers = _buffers_by_type(session, resources)
    # a new booking's own set-up/tear-down must clear the neighbours' blocks too
    margin = max((max(b) for b in buffers.values()), default=timedelta(0))
    off = _unavailable(session, scope, start, end)
    booked = _live_block_spans(session, scope, start - margin, end + margin)
    out: dict[uuid.UUID, list[Interval]] = {}
    # most resources share a few standard weeks: compute each (hours, zone) pair once
    weeks: dict[tuple[str, str], list[Interval]] = {}
    for resource in resources:
        before, after = buffers.get(
            resource.device_type_id or uuid.UUID(int=0), (timedelta(0), timedelta(0))
        )
        busy = [(s - after, e + before) for s, e in booked.get(resource.id, [])]
        key = (repr(resource.working_hours), resource.time_zone)
        if key not in weeks:
            weeks[key] = working_intervals(resource.working_hours, resource.time_zone, start, end)
        work = weeks[key]
        out[resource.id] = subtract(work, [*off.get(resource.id, []), *busy])
    return out


def search_slots(
    session: Session,
    actor: Actor,
    *,
    start: datetime,
    end: datetime,
    duration_minutes: int,
    skill_id: uuid.UUID | None = None,
    min_level: int = 1,
    device_type_id: uuid.UUID | None = None,
    limit: int = 20,
    step_minutes: int = 15,
) -> list[Slot]:
    """Each matching resource's earliest free slot of ``duration_minutes``, earliest first."""
    if (skill_id is None) == (device_type_id is None):
        raise InvalidInput(
            "skill_id: give a skill_id or a device_type_id (one of them)", field="skill_id"
        )
    query = _candidate_query(
        actor, skill_id=skill_id, min_level=min_level, device_type_id=device_type_id
    )
    pending = list(session.scalars(query))
    among = query.with_only_columns(Resource.id).order_by(None)
    need = timedelta(minutes=duration_minutes)
    slots: list[Slot] = []
    # Look a day ahead first, then twice as far, and so on. A slot found within a horizon is
    # its resource's earliest in the whole range, and it starts before any slot not found
    # yet (that one would have to end past the horizon): once ``limit`` are found, stop.
    span = timedelta(days=1)
    horizon = start
    while pending and len(slots) < limit and horizon < end:
        horizon = min(end, start + span + need)
        span *= 2
        free = free_intervals(session, pending, start, horizon, among)
        left = []
        for resource in pending:
            at = first_fit(free[resource.id], duration_minutes, step_minutes=step_minutes)
            if at is None:
                left.append(resource)
            else:
                slots.append(Slot(resource.id, resource.name, resource.unit_id, at, at + need))
        pending = left
    slots.sort(key=lambda s: (s.start, s.resource_name, s.resource_id))
    return slots[:limit]


def free_busy(
    session: Session, actor: Actor, resource_id: uuid.UUID, start: datetime, end: datetime
) -> tuple[list[Interval], list[Interval], list[Interval]]:
    """One resource's free time, busy blocks (live bookings) and unavailability in a range."""
    found = candidates(session, actor, resource_id=resource_id)
    if not found:
        raise NotFound("no such resource")
    resource = found[0]
    off = merge(rules.unavailable_periods(session, [resource.id], start, end).get(resource.id, []))
    blocks = rules.live_blocks(session, [resource.id], start, end).get(resource.id, [])
    busy = merge((max(b.block_start, start), min(b.block_end, end)) for b in blocks)
    work = working_intervals(resource.working_hours, resource.time_zone, start, end)
    return subtract(work, [*off, *busy]), busy, off
