"""Finding free time: free-slot search across resources, and one resource's free/busy view.

Candidates are the resources the caller's unit may borrow (its own, and those an active
agreement shows it), not retired. Free time = working hours − unavailability − live
bookings (a device's busy blocks are widened by its own set-up/tear-down buffers, so a
slot found here can be booked as found).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Select, Text, and_, cast, func, literal_column, select, union_all
from sqlalchemy.orm import Session, aliased

from app.agreements.services import visible_resources
from app.auth.actor import Actor
from app.bookings import rules
from app.bookings.availability import Interval, fits, merge, subtract, working_intervals
from app.bookings.models import Booking
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
    query = _candidate_query(
        actor,
        skill_id=skill_id,
        min_level=min_level,
        device_type_id=device_type_id,
        resource_id=resource_id,
    )
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
    session: Session, resources: Sequence[Resource | _Candidate]
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
    (a search over many resources reads thousands of them).

    PostgreSQL asks the exclusion constraint's GiST index (``block &&``). SQLite makes two
    index seeks per resource instead of a scan of its whole future (or past): the bookings
    whose block starts inside the range, and the one live booking that may straddle
    ``start`` — live blocks of one resource never overlap (SQLite's serialised check), so
    only the latest to start before ``start`` can still run then
    (``ix_bookings_resource_block``).
    """
    live = rules.live()
    out: dict[uuid.UUID, list[Interval]] = {}
    if session.get_bind().dialect.name == "postgresql":
        # The exclusion constraint's GiST index on (resource_id, block) answers both at once.
        rows = session.execute(
            select(Booking.resource_id, Booking.block_start, Booking.block_end).where(
                Booking.resource_id.in_(scope),
                live,
                literal_column("bookings.block").op("&&")(func.tstzrange(start, end, "[)")),
            )
        )
        for rid, s, e in rows:
            out.setdefault(rid, []).append((s, e))
        return out
    inside = select(Booking.resource_id, Booking.block_start, Booking.block_end).where(
        Booking.resource_id.in_(scope),
        live,
        Booking.block_start >= start,
        Booking.block_start < end,
    )
    earlier = aliased(Booking)
    latest = (
        select(earlier.block_start)
        .where(
            earlier.resource_id == Resource.id,
            rules.live(earlier.status),
            earlier.block_start < start,
        )
        .order_by(earlier.block_start.desc())
        .limit(1)
        .scalar_subquery()
    )
    last = (
        select(Resource.id.label("rid"), latest.label("at"))
        .where(Resource.id.in_(scope))
        .subquery()
    )
    straddling = (
        select(Booking.resource_id, Booking.block_start, Booking.block_end)
        .join(last, and_(Booking.resource_id == last.c.rid, Booking.block_start == last.c.at))
        .where(live, Booking.block_end > start)
    )
    for rid, s, e in session.execute(union_all(inside, straddling)):
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
    known = _BusyTime(session, resources)
    known.read(among if among is not None else [r.id for r in resources], start, end)
    return {r.id: known.free(r, start, end) for r in resources}


@dataclass(frozen=True, slots=True)
class _Candidate:
    """The columns of a candidate that a search reads; its weekly hours stay JSON text
    until a pair of hours and zone is first met (most candidates share a few)."""

    id: uuid.UUID
    name: str
    unit_id: uuid.UUID
    time_zone: str
    device_type_id: uuid.UUID | None
    hours_text: str | None


Schedulable = Resource | _Candidate


def _candidates_light(session: Session, query: Select[Resource]) -> list[_Candidate]:
    rows = session.execute(
        query.with_only_columns(
            Resource.id,
            Resource.name,
            Resource.unit_id,
            Resource.time_zone,
            Resource.device_type_id,
            cast(Resource.working_hours, Text),
        )
    )
    return [_Candidate(*row) for row in rows]


class _BusyTime:
    """What keeps resources from working, read slab by slab as a search looks further."""

    def __init__(self, session: Session, resources: Sequence[Schedulable]) -> None:
        self.session = session
        self.buffers = _buffers_by_type(session, resources)
        # a new booking's own set-up/tear-down must clear the neighbours' blocks too
        self.margin = max((max(b) for b in self.buffers.values()), default=timedelta(0))
        self.off: dict[uuid.UUID, list[Interval]] = {}
        self.booked: dict[uuid.UUID, list[Interval]] = {}
        # most resources share a few standard weeks: compute each (hours, zone) pair once
        self.weeks: dict[tuple[str, str, datetime, datetime], list[Interval]] = {}
        self.hours: dict[str, dict[str, list[list[str]]] | None] = {}

    def read(self, scope: ResourceScope, start: datetime, end: datetime) -> None:
        """Add the unavailability and live blocks of ``scope`` that meet ``[start, end)``."""
        for store, found in (
            (self.off, _unavailable(self.session, scope, start, end)),
            (
                self.booked,
                _live_block_spans(self.session, scope, start - self.margin, end + self.margin),
            ),
        ):
            for rid, spans in found.items():
                store.setdefault(rid, []).extend(spans)

    def free(self, resource: Schedulable, start: datetime, end: datetime) -> list[Interval]:
        """The resource's free time in ``[start, end)`` from what was read (duplicates merge)."""
        before, after = self.buffers.get(
            resource.device_type_id or uuid.UUID(int=0), (timedelta(0), timedelta(0))
        )
        busy = [(s - after, e + before) for s, e in self.booked.get(resource.id, [])]
        if isinstance(resource, _Candidate):
            week, hours = resource.hours_text or "null", None
        else:
            week, hours = repr(resource.working_hours), resource.working_hours
        key = (week, resource.time_zone, start, end)
        if key not in self.weeks:
            if isinstance(resource, _Candidate):
                hours = self.hours.get(week)
                if hours is None:
                    hours = self.hours[week] = json.loads(week)
            self.weeks[key] = working_intervals(hours, resource.time_zone, start, end)
        return subtract(self.weeks[key], [*self.off.get(resource.id, []), *busy])


IDS_AT_MOST = 200
"""Bind the ids of up to this many unresolved candidates; more are read through the query."""


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
    per_resource: int = 1,
    offset: int = 0,
) -> list[Slot]:
    """Each matching resource's earliest ``per_resource`` free slots of ``duration_minutes``
    (one after the other), all earliest first; the page ``offset``, ``limit`` of them."""
    if (skill_id is None) == (device_type_id is None):
        raise InvalidInput(
            "skill_id: give a skill_id or a device_type_id (one of them)", field="skill_id"
        )
    query = _candidate_query(
        actor, skill_id=skill_id, min_level=min_level, device_type_id=device_type_id
    )
    pending = _candidates_light(session, query)
    among = query.with_only_columns(Resource.id).order_by(None)
    known = _BusyTime(session, pending)
    need = timedelta(minutes=duration_minutes)
    slots: list[Slot] = []
    found: dict[uuid.UUID, list[datetime]] = {}
    # Look a day ahead first, then four times as far, and so on (fewer, larger reads). A slot
    # found within a horizon is its resource's earliest in the whole range, and it starts
    # before any slot not found yet (that one would have to end past the horizon): once
    # ``offset + limit`` are found, stop. A resource stays a candidate until it has
    # ``per_resource`` slots; its next one is looked for from the end of its last. Each step reads only the new slab of time, and only for
    # the candidates still unresolved.
    span = timedelta(days=1)
    read_to = horizon = start
    while pending and len(slots) < offset + limit and horizon < end:
        horizon = min(end, start + span + need)
        span *= 4
        scope: ResourceScope = [r.id for r in pending] if len(pending) <= IDS_AT_MOST else among
        known.read(scope, read_to, horizon)
        # No fit ended by the last horizon, so a fit now ends past it and starts after
        # ``read_to - need``: only that stretch is worked out again (aligned starts are
        # multiples of the step since the epoch, so clipping the range moves none).
        since = max(start, read_to - need)
        read_to = horizon
        left = []
        for resource in pending:
            got = found.setdefault(resource.id, [])
            more = fits(
                known.free(resource, since, horizon),
                duration_minutes,
                per_resource - len(got),
                not_before=got[-1] + need if got else None,
                step_minutes=step_minutes,
            )
            got += more
            slots += [
                Slot(resource.id, resource.name, resource.unit_id, at, at + need) for at in more
            ]
            if len(got) < per_resource:
                left.append(resource)
        pending = left
    slots.sort(key=lambda s: (s.start, s.resource_name, s.resource_id))
    return slots[offset : offset + limit]


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
