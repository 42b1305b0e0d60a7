"""Fulfilment: what became of the requests each unit made for each project.

Requests count in the period they were made (``created_at``). *served*: allocated or
further (pending approval, confirmed, completed) with a live booking for every unit of
every requirement's quantity; *partly served*: in those states with fewer; *declined* (the
lender declined) and *expired* (the window passed without an allocation) are the
refusals, by reason; *withdrawn*: cancelled by the requester; *open*: still waiting.
Time to allocation runs from the request to its first booking (operators' bookings aside).
A unit that is not admin or auditor sees its own requests.
"""

from __future__ import annotations

import math
import statistics
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import Select, case, func, select, tuple_, type_coerce
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from app.auth.actor import Actor
from app.bookings.models import LIVE_STATUSES, Booking, Request, RequestStatus, Requirement
from app.projects.models import Project
from app.reports.schemas import Report
from app.reports.scope import ReportFilter, unit_names, unit_scope

COLUMNS = [
    "unit_id",
    "unit",
    "project_id",
    "project",
    "made",
    "served",
    "partly_served",
    "open",
    "declined",
    "expired",
    "withdrawn",
    "median_minutes_to_allocation",
    "p90_minutes_to_allocation",
]
SERVING = (
    RequestStatus.ALLOCATED.value,
    RequestStatus.PENDING_APPROVAL.value,
    RequestStatus.CONFIRMED.value,
    RequestStatus.COMPLETED.value,
)
_OUTCOME = {
    RequestStatus.OPEN.value: "open",
    RequestStatus.DECLINED.value: "declined",
    RequestStatus.EXPIRED.value: "expired",
    RequestStatus.CANCELLED.value: "withdrawn",
}


def report(session: Session, actor: Actor, filters: ReportFilter) -> Report:
    """Requests made, served, partly served, refused by reason, withdrawn, per unit and project."""
    if session.get_bind().dialect.name == "postgresql":
        counts, stats = _tallies_in_sql(session, actor, filters)
    else:
        counts, stats = _tallies(session, actor, filters)
    units = unit_names(session)
    projects = dict(session.execute(select(Project.id, Project.code)).all())
    rows = [
        {
            "unit_id": str(u),
            "unit": units.get(u, ""),
            "project_id": str(p),
            "project": projects.get(p, ""),
            **counts[(u, p)],
            "median_minutes_to_allocation": stats.get((u, p), (None, None))[0],
            "p90_minutes_to_allocation": stats.get((u, p), (None, None))[1],
        }
        for u, p in sorted(counts, key=lambda k: (units.get(k[0], ""), projects.get(k[1], "")))
    ]
    return Report(
        name="fulfilment",
        period_from=filters.period_from,
        period_to=filters.period_to,
        columns=COLUMNS,
        rows=rows,
    )


Key = tuple[uuid.UUID, uuid.UUID]
Tallies = tuple[dict[Key, dict[str, int]], dict[Key, tuple[float | None, float | None]]]
"""Outcome counts, and the median and p90 minutes to allocation, per unit and project."""


def _outcome(status: str, full: bool) -> str:
    return ("served" if full else "partly_served") if status in SERVING else _OUTCOME[status]


def _tallies(session: Session, actor: Actor, filters: ReportFilter) -> Tallies:
    """SQLite, which has no percentiles: one row per request, counted here."""
    counts: dict[tuple[Any, Any], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(COLUMNS[4:11], 0)
    )
    waits: dict[tuple[Any, Any], list[float]] = defaultdict(list)
    for unit, project, status, asked, _, first, full in session.connection().execute(
        _per_request(actor, filters)
    ):
        row = counts[(unit, project)]
        row["made"] += 1
        row[_outcome(status, full)] += 1
        if first is not None:
            waits[(unit, project)].append(_minutes(asked, first))
    keys = {k: (_uuid(k[0]), _uuid(k[1])) for k in counts}
    stats = {keys[k]: (_median(w), _p90(w)) for k, w in waits.items()}
    return {keys[k]: v for k, v in counts.items()}, stats


def _tallies_in_sql(session: Session, actor: Actor, filters: ReportFilter) -> Tallies:
    """PostgreSQL: counts per outcome and the waits' median (percentile_cont) and p90
    (percentile_disc: nearest rank) in one grouped statement (GROUPING SETS)."""
    r = _per_request(actor, filters).subquery()
    minutes = func.date_part("epoch", r.c.first - r.c.asked) / 60.0
    wait = case((r.c.first.is_(None), None), else_=func.greatest(minutes, 0.0))
    query = select(
        r.c.unit, r.c.project, r.c.status, r.c.full, func.count(), func.grouping(r.c.status),
        func.percentile_cont(0.5).within_group(wait), func.percentile_disc(0.9).within_group(wait),
    ).group_by(func.grouping_sets(tuple_(r.c.unit, r.c.project, r.c.status, r.c.full),
                                  tuple_(r.c.unit, r.c.project)))  # fmt: skip
    counts: dict[Key, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COLUMNS[4:11], 0))
    stats: dict[Key, tuple[float | None, float | None]] = {}
    for unit, project, status, full, n, overall, median, p90 in session.execute(query):
        if overall:
            if median is not None:
                stats[(unit, project)] = (round(median, 1), round(p90, 1))
            continue
        counts[(unit, project)]["made"] += n
        counts[(unit, project)][_outcome(status, full)] += n
    return counts, stats


def _requests(actor: Actor, filters: ReportFilter) -> list[Any]:
    conditions: list[Any] = [Request.created_at >= filters.start, Request.created_at < filters.end]
    unit = unit_scope(actor, filters)
    if unit is not None:
        conditions.append(Request.unit_id == unit)
    if filters.project_id is not None:
        conditions.append(Request.project_id == filters.project_id)
    return conditions


def _per_request(actor: Actor, filters: ReportFilter) -> Select[Any]:
    """Each request made in the period: its unit, project, status and time, the units its
    requirements ask for, its live bookings (operators' aside) and its first booking's
    time. The bookings serving requests are grouped from ``ix_bookings_request_served``
    alone, never from the whole table. Ids and times come raw (no per-row conversion:
    a year holds a hundred thousand requests)."""
    need = (
        select(Requirement.request_id, func.sum(Requirement.quantity).label("n"))
        .group_by(Requirement.request_id)
        .subquery()
    )
    served = (
        select(Booking.request_id,
               func.sum(case((Booking.status.in_(LIVE_STATUSES), 1), else_=0)).label("n"),
               func.min(Booking.created_at).label("first"))
        .where(Booking.request_id.is_not(None), Booking.operator_for_id.is_(None))
        .group_by(Booking.request_id)
        .subquery()
    )  # fmt: skip
    raw = NullType()
    return (
        select(type_coerce(Request.unit_id, raw).label("unit"),
               type_coerce(Request.project_id, raw).label("project"),
               Request.status.label("status"), type_coerce(Request.created_at, raw).label("asked"),
               need.c.n.label("need"), type_coerce(served.c.first, raw).label("first"),
               (func.coalesce(served.c.n, 0) >= func.coalesce(need.c.n, 0)).label("full"))
        .outerjoin(need, need.c.request_id == Request.id)
        .outerjoin(served, served.c.request_id == Request.id)
        .where(*_requests(actor, filters))
    )  # fmt: skip


def _uuid(value: Any) -> uuid.UUID:
    """An id as the driver returned it (SQLite: 16 bytes) as a UUID."""
    return value if isinstance(value, uuid.UUID) else uuid.UUID(bytes=bytes(value))


def _minutes(asked: Any, first: Any) -> float:
    """Minutes from the request to its first booking; SQLite's times are text in UTC."""
    if isinstance(first, str):
        first, asked = datetime.fromisoformat(first), datetime.fromisoformat(asked)
    return max(0.0, (first - asked).total_seconds() / 60)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _p90(values: list[float]) -> float | None:
    """Nearest-rank 90th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[math.ceil(0.9 * len(ordered)) - 1], 1)
