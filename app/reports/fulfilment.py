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

from sqlalchemy import Select, and_, case, func, select
from sqlalchemy.orm import Session

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
    counts: dict[tuple[uuid.UUID, uuid.UUID], dict[str, int]] = defaultdict(
        lambda: dict.fromkeys(COLUMNS[4:11], 0)
    )
    for unit_id, project_id, status, full, n in session.execute(_counts(actor, filters)):
        row = counts[(unit_id, project_id)]
        row["made"] += n
        outcome = ("served" if full else "partly_served") if status in SERVING else _OUTCOME[status]
        row[outcome] += n
    waits: dict[tuple[uuid.UUID, uuid.UUID], list[float]] = defaultdict(list)
    for unit_id, project_id, asked, first in session.execute(_waits(actor, filters)):
        waits[(unit_id, project_id)].append(_minutes(asked, first))
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


def _counts(actor: Actor, filters: ReportFilter) -> Select[Any]:
    """Requests per unit, project, status and whether every unit asked for is booked."""
    need = (
        select(Requirement.request_id, func.sum(Requirement.quantity).label("n"))
        .group_by(Requirement.request_id)
        .subquery()
    )
    got = (
        select(Booking.request_id, func.count().label("n"))
        .where(Booking.status.in_(LIVE_STATUSES), Booking.operator_for_id.is_(None))
        .group_by(Booking.request_id)
        .subquery()
    )
    full = case((func.coalesce(got.c.n, 0) >= func.coalesce(need.c.n, 0), True), else_=False)
    return (
        select(Request.unit_id, Request.project_id, Request.status, full, func.count())
        .outerjoin(need, need.c.request_id == Request.id)
        .outerjoin(got, got.c.request_id == Request.id)
        .where(*_requests(actor, filters))
        .group_by(Request.unit_id, Request.project_id, Request.status, full)
    )


def _waits(actor: Actor, filters: ReportFilter) -> Any:
    """Each allocated request's time and its first booking's."""
    return (
        select(
            Request.unit_id, Request.project_id, Request.created_at, func.min(Booking.created_at)
        )
        .join(Booking, and_(Booking.request_id == Request.id, Booking.operator_for_id.is_(None)))
        .where(*_requests(actor, filters))
        .group_by(Request.id, Request.unit_id, Request.project_id, Request.created_at)
    )


def _minutes(asked: datetime, first: Any) -> float:
    if isinstance(first, str):  # SQLite returns min() of a datetime column as text
        first = datetime.fromisoformat(first).replace(tzinfo=asked.tzinfo)
    if first.tzinfo is None:
        first = first.replace(tzinfo=asked.tzinfo)
    return max(0.0, (first - asked).total_seconds() / 60)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 1) if values else None


def _p90(values: list[float]) -> float | None:
    """Nearest-rank 90th percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[math.ceil(0.9 * len(ordered)) - 1], 1)
