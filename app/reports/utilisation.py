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
from bisect import bisect_left, bisect_right
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Text, or_, select
from sqlalchemy import cast as sql_cast
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
from app.reports.minutes import seconds_per_bucket
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
    kind: str
    device_type_id: uuid.UUID | None

    def key(self, by: str) -> tuple[Any, ...]:
        """The values SQL groups this resource's bookings by, for rows ``by`` this level."""
        if by == "unit":
            return (self.unit_id,)
        if by == "type":
            return (self.kind, self.device_type_id)
        return (self.id,)


def report(session: Session, actor: Actor, filters: ReportFilter, by: str = "resource") -> Report:
    """Booked / available minutes per ``by`` (resource, type or unit) and week or month."""
    resources = _resources(session, actor, filters)
    spans = buckets(filters)
    units = unit_names(session)
    names = {
        "resource": lambda r: (str(r.id), r.name),
        "type": lambda r: (r.type_name, r.type_name),
        "unit": lambda r: (str(r.unit_id), units.get(r.unit_id, "")),
    }[by]
    group = {r.id: names(r) for r in resources}
    totals: dict[tuple[int, str, str], list[int]] = {}
    for r, free in zip(resources, _available(session, filters, spans, resources), strict=True):
        gid, name = group[r.id]
        for i, available in enumerate(free):
            t = totals.setdefault((i, name, gid), [0, 0, 0])
            t[0] += 1
            t[2] += available
    if resources:
        groups = {r.key(by): group[r.id] for r in resources}
        for (gid, name), booked in _booked(session, actor, filters, spans, by, groups).items():
            for i, used in enumerate(booked):
                totals[(i, name, gid)][1] += used
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


def _visible(actor: Actor, filters: ReportFilter) -> list[Any]:
    """SQL: the resources the report covers (not retired before the period, in scope)."""
    conditions: list[Any] = [
        or_(Resource.retired_at.is_(None), Resource.retired_at > filters.start)
    ]
    unit = unit_scope(actor, filters)
    if unit is not None:
        conditions.append(Resource.unit_id == unit)
    if filters.kind is not None:
        conditions.append(Resource.kind == filters.kind)
    if filters.device_type_id is not None:
        conditions.append(Resource.device_type_id == filters.device_type_id)
    return conditions


def _resources(session: Session, actor: Actor, filters: ReportFilter) -> list[_Resource]:
    query = (
        select(
            Resource.id,
            Resource.name,
            Resource.unit_id,
            Resource.kind,
            DeviceType.name,
            sql_cast(Resource.working_hours, Text),  # parsed once per distinct calendar
            Resource.time_zone,
            Resource.device_type_id,
        )
        .outerjoin(DeviceType, DeviceType.id == Resource.device_type_id)
        .where(*_visible(actor, filters))
    )
    calendars: dict[str | None, Any] = {None: None}
    out = []
    for rid, name, uid, kind, type_name, hours, zone, device_type_id in session.execute(query):
        if hours not in calendars:
            calendars[hours] = json.loads(hours)
        out.append(_Resource(rid, name, uid, type_name or kind, calendars[hours], zone, kind,
                             device_type_id))  # fmt: skip
    return out


def _booked(
    session: Session,
    actor: Actor,
    filters: ReportFilter,
    spans: list[Interval],
    by: str,
    groups: dict[tuple[Any, ...], tuple[str, str]],
) -> dict[tuple[str, str], list[int]]:
    """Minutes of live bookings per row group and bucket, clipped to the bucket, in SQL.

    Per resource the bookings are summed by ``resource_id`` alone; per unit or type, by the
    resource's unit or kind and device type (a join), so that SQL returns one row per
    group and bucket instead of one per resource and bucket."""
    conditions: list[Any] = [Booking.status.in_(LIVE_STATUSES)]
    if filters.project_id is not None:
        conditions.append(Booking.project_id == filters.project_id)
    keys: list[Any] = [Booking.resource_id]
    if by == "resource":  # no join: the resources' ids, or every booking and a filter here
        ids = [key[0] for key in groups]
        conditions += [Booking.resource_id.in_(ids)] if len(ids) < 2000 else []
    else:
        conditions += [Resource.id == Booking.resource_id, *_visible(actor, filters)]
        keys = [Resource.unit_id] if by == "unit" else [Resource.kind, Resource.device_type_id]
    seconds = seconds_per_bucket(session, spans, conditions, *keys)
    out: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0] * len(spans))
    for key, values in seconds.items():
        if key in groups:
            row = out[groups[key]]
            for i, v in enumerate(values):
                row[i] += v
    return {k: [round(v / 60) for v in values] for k, values in out.items()}


def _available(
    session: Session, filters: ReportFilter, spans: list[Interval], resources: list[_Resource]
) -> list[list[int]]:
    """Working minutes less leave and blackouts per resource (in order) and bucket.

    Working time is computed once per distinct calendar (hours and zone), which many
    resources share; interval arithmetic runs only in the buckets a resource is away in
    (found by bisection over the buckets' starts).
    """
    away = unavailable_periods(session, [r.id for r in resources], filters.start, filters.end)
    starts = [s for s, _ in spans]
    calendars: dict[tuple[str, str], list[tuple[list[Interval], int]]] = {}
    out: list[list[int]] = []
    for r in resources:
        key = (json.dumps(r.hours, sort_keys=True), r.zone)
        if key not in calendars:
            calendars[key] = [
                (w, total_minutes(w))
                for w in (working_intervals(r.hours, r.zone, s, e) for s, e in spans)
            ]
        calendar = calendars[key]
        minutes = [m for _, m in calendar]
        gone = away.get(r.id, [])
        touched = {i for s, e in gone
                   for i in range(max(bisect_right(starts, s) - 1, 0), bisect_left(starts, e))}  # fmt: skip
        for i in touched:
            minutes[i] = total_minutes(subtract(calendar[i][0], _clipped(gone, spans[i])))
        out.append(minutes)
    return out


def _clipped(periods: list[Interval], span: tuple[datetime, datetime]) -> list[Interval]:
    return [(max(s, span[0]), min(e, span[1])) for s, e in periods if s < span[1] and e > span[0]]


__all__ = ["COLUMNS", "report"]
