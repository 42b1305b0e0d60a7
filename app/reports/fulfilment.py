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

from sqlalchemy import Select, case, func, select, type_coerce
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
    counts: dict[tuple[Any, Any], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(COLUMNS[4:11], 0)
    )
    waits: dict[tuple[Any, Any], list[float]] = defaultdict(list)
    for unit, project, status, asked, need, got, first in session.connection().execute(
        _per_request(actor, filters)
    ):
        row = counts[(unit, project)]
        row["made"] += 1
        full = (got or 0) >= (need or 0)
        outcome = ("served" if full else "partly_served") if status in SERVING else _OUTCOME[status]
        row[outcome] += 1
        if first is not None:
            waits[(unit, project)].append(_minutes(asked, first))
    keys = {k: (_uuid(k[0]), _uuid(k[1])) for k in counts}
    counts = {keys[k]: v for k, v in counts.items()}
    waits = defaultdict(list, {keys[k]: v for k, v in waits.items()})
    units = unit_names(session)
    projects = dict(session.execute(select(Project.id, Project.code)).all())
    rows = [
        {
            "unit_id": str(u),
            "unit": units.get(u, ""),
            "project_id": str(p),
            "project": projects.get(p, ""),
            **counts[(u, p)],
            "median_minutes_to_allocation": _median(waits[(u, p)]),
            "p90_minutes_to_allocation": _p90(waits[(u, p)]),
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
        select(type_coerce(Request.unit_id, raw), type_coerce(Request.project_id, raw),
               Request.status, type_coerce(Request.created_at, raw), need.c.n, served.c.n,
               type_coerce(served.c.first, raw))
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
