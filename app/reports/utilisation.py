"""Utilisation: booked hours over available working hours, per resource, type or unit.

Available time is the resource's working hours (``app.bookings.availability``, the
calendar code the booking engine uses) minus its leave, maintenance and imported busy
time (``app.bookings.rules.unavailable_periods``). Booked time is the live bookings'
``[start, end)`` clipped to each week or month, summed in SQL. Non-admins see their own
unit's resources (every booking on them, loans out included).
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.bookings.availability import (
    Interval,
    subtract,
    total_minutes,
    working_intervals,
)
from app.bookings.models import LIVE_STATUSES, Booking
from app.bookings.rules import unavailable_periods
from app.catalog.models import DeviceType, Resource
from app.reports.minutes import per_bucket
from app.reports.schemas import Report
from app.reports.scope import (
    ReportFilter,
    buckets,
    unit_names,
    unit_scope,
)

COLUMNS = [
    "bucket_start",
    "group",
    "group_id",
    "resources",
    "booked_minutes",
    "available_minutes",
    "utilisation",
]


@dataclass(slots=True)
class _Resource:
    id: uuid.UUID
    name: str
    unit_id: uuid.UUID
    type_name: str
    hours: dict[str, list[list[str]]] | None
    zone: str


def report(session: Session, actor: Actor, filters: ReportFilter, by: str = "resource") -> Report:
    """Booked / available minutes per ``by`` (resource, type or unit) and week or month."""
    resources = _resources(session, actor, filters)
    spans = buckets(filters)
    booked = _booked(session, filters, spans, [r.id for r in resources]) if resources else {}
    available = _available(session, filters, spans, resources)
    units = unit_names(session)
    totals: dict[tuple[int, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for r in resources:
        key = {
            "resource": (str(r.id), r.name),
            "type": (r.type_name, r.type_name),
            "unit": (str(r.unit_id), units.get(r.unit_id, "")),
        }[by]
        for i in range(len(spans)):
            t = totals[(i, key[1], key[0])]
            t[0] += 1
            t[1] += booked.get((r.id, i), 0)
            t[2] += available[(r.id, i)]
    rows = [
        {
            "bucket_start": spans[i][0].date().isoformat(),
            "group": name,
            "group_id": gid,
            "resources": n,
            "booked_minutes": b,
            "available_minutes": a,
            "utilisation": round(b / a, 4) if a else None,
        }
        for (i, name, gid), (n, b, a) in sorted(totals.items())
    ]
    return Report(
        name=f"utilisation_by_{by}",
        period_from=filters.period_from,
        period_to=filters.period_to,
        columns=COLUMNS,
        rows=rows,
    )


def _resources(session: Session, actor: Actor, filters: ReportFilter) -> list[_Resource]:
    query = (
        select(
            Resource.id,
            Resource.name,
            Resource.unit_id,
            Resource.kind,
            DeviceType.name,
            Resource.working_hours,
            Resource.time_zone,
        )
        .outerjoin(DeviceType, DeviceType.id == Resource.device_type_id)
        .where(or_(Resource.retired_at.is_(None), Resource.retired_at > filters.start))
    )
    unit = unit_scope(actor, filters)
    if unit is not None:
        query = query.where(Resource.unit_id == unit)
    if filters.kind is not None:
        query = query.where(Resource.kind == filters.kind)
    if filters.device_type_id is not None:
        query = query.where(Resource.device_type_id == filters.device_type_id)
    return [
        _Resource(rid, name, uid, type_name or kind, hours, zone)
        for rid, name, uid, kind, type_name, hours, zone in session.execute(query)
    ]


def _booked(
    session: Session, filters: ReportFilter, spans: list[Interval], ids: list[uuid.UUID]
) -> dict[tuple[uuid.UUID, int], int]:
    """Minutes of live bookings per (resource, bucket), clipped to the bucket, in SQL."""
    conditions: list[Any] = [Booking.status.in_(LIVE_STATUSES)]
    if len(ids) < 2000:
        conditions.append(Booking.resource_id.in_(ids))
    if filters.project_id is not None:
        conditions.append(Booking.project_id == filters.project_id)
    wanted = set(ids)
    return {
        (rid, i): minutes
        for (rid,), values in per_bucket(session, spans, conditions, Booking.resource_id).items()
        if rid in wanted
        for i, minutes in enumerate(values)
    }


def _available(
    session: Session, filters: ReportFilter, spans: list[Interval], resources: list[_Resource]
) -> dict[tuple[uuid.UUID, int], int]:
    """Working minutes less leave and blackouts per (resource, bucket).

    Working time is computed once per distinct calendar (hours and zone), which many
    resources share; interval arithmetic runs only where a resource is away in a bucket.
    """
    away = unavailable_periods(session, [r.id for r in resources], filters.start, filters.end)
    calendars: dict[tuple[str, str], list[tuple[list[Interval], int]]] = {}
    out: dict[tuple[uuid.UUID, int], int] = {}
    for r in resources:
        key = (json.dumps(r.hours, sort_keys=True), r.zone)
        if key not in calendars:
            calendars[key] = [
                (w, total_minutes(w))
                for w in (working_intervals(r.hours, r.zone, s, e) for s, e in spans)
            ]
        gone = away.get(r.id, [])
        for i, (working, minutes) in enumerate(calendars[key]):
            clipped = _clipped(gone, spans[i]) if gone else None
            if clipped:
                minutes = total_minutes(subtract(working, clipped))
            out[(r.id, i)] = minutes
    return out


def _clipped(periods: list[Interval], span: tuple[datetime, datetime]) -> list[Interval]:
    return [(max(s, span[0]), min(e, span[1])) for s, e in periods if s < span[1] and e > span[0]]


__all__ = ["COLUMNS", "report"]
