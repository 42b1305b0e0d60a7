"""Cap usage: minutes used against each agreement's monthly cap and each expert's lending
cap, per month, flagged at 80 % and more.

The months, the minutes allowed and the minutes used come from the booking engine's own
cap helpers (``app.bookings.rules.agreement_caps`` and ``lending_caps``), so the report
says what the next booking would be checked against. Only caps with a loan in the period
are listed. A unit that is not admin or auditor sees the agreements it lends or borrows
under and its own experts' lending caps.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app.agreements.models import SharingAgreement
from app.auth.actor import Actor
from app.bookings.models import LIVE_STATUSES, Booking
from app.bookings.rules import MonthlyCap, agreement_caps, lending_caps
from app.catalog.models import Resource, ResourceKind
from app.reports.schemas import Report
from app.reports.scope import ReportFilter, unit_names, unit_scope

COLUMNS = [
    "cap", "agreement_id", "lender", "borrower", "resource_id", "resource", "month",
    "allowed_minutes", "used_minutes", "share", "over_80",
]  # fmt: skip
FLAG = 0.8


def report(session: Session, actor: Actor, filters: ReportFilter) -> Report:
    """Every agreement cap and lending cap met by a loan in the period, month by month."""
    units = unit_names(session)
    rows: list[dict[str, Any]] = []
    loans = _in_period(filters)
    for agreement, resource in _agreement_pairs(session, actor, filters, loans):
        for cap in agreement_caps(session, resource, agreement, filters.start, filters.end):
            rows.append(_row(cap, agreement.id, units.get(agreement.lender_unit_id, ""),
                             units.get(agreement.borrower_unit_id, ""), resource))  # fmt: skip
    for resource in _lending_experts(session, actor, filters, loans):
        for cap in lending_caps(session, resource, filters.start, filters.end):
            rows.append(_row(cap, None, units.get(resource.unit_id, ""), "", resource))
    rows.sort(key=lambda r: (r["cap"], r["lender"], r["borrower"], r["resource"], r["month"]))
    return Report(name="caps", period_from=filters.period_from, period_to=filters.period_to,
                  columns=COLUMNS, rows=rows)  # fmt: skip


def _row(
    cap: MonthlyCap, agreement_id: uuid.UUID | None, lender: str, borrower: str, resource: Resource
) -> dict[str, Any]:
    share = cap.used / cap.allowed if cap.allowed else None
    return {
        "cap": cap.code, "agreement_id": str(agreement_id) if agreement_id else None,
        "lender": lender, "borrower": borrower, "resource_id": str(resource.id),
        "resource": resource.name, "month": cap.month[0].date().isoformat(),
        "allowed_minutes": cap.allowed, "used_minutes": cap.used,
        "share": round(share, 4) if share is not None else None,
        "over_80": cap.used >= FLAG * cap.allowed if cap.allowed else cap.used > 0,
    }  # fmt: skip


def _in_period(filters: ReportFilter) -> list[Any]:
    conditions = [
        Booking.status.in_(LIVE_STATUSES),
        Booking.start < filters.end,
        Booking.end > filters.start,
        Booking.lender_unit_id != Booking.borrower_unit_id,
    ]
    if filters.project_id is not None:
        conditions.append(Booking.project_id == filters.project_id)
    return conditions


def _agreement_pairs(
    session: Session, actor: Actor, filters: ReportFilter, loans: list[Any]
) -> list[tuple[SharingAgreement, Resource]]:
    pairs = (
        select(Booking.agreement_id, Booking.resource_id)
        .join(SharingAgreement, SharingAgreement.id == Booking.agreement_id)
        .where(*loans, SharingAgreement.hours_per_month_cap.is_not(None))
        .distinct()
        .subquery()
    )
    query = (
        select(SharingAgreement, Resource)
        .join(pairs, pairs.c.agreement_id == SharingAgreement.id)
        .join(Resource, Resource.id == pairs.c.resource_id)
    )
    unit = unit_scope(actor, filters)
    if unit is not None:
        query = query.where(
            or_(SharingAgreement.lender_unit_id == unit, SharingAgreement.borrower_unit_id == unit)
        )
    return [(a, r) for a, r in session.execute(query).all()]


def _lending_experts(
    session: Session, actor: Actor, filters: ReportFilter, loans: list[Any]
) -> list[Resource]:
    lent = select(Booking.resource_id).where(*loans).distinct().subquery()
    query = (
        select(Resource)
        .join(lent, lent.c.resource_id == Resource.id)
        .where(and_(Resource.kind == ResourceKind.EXPERT.value, Resource.lending_cap_bp < 10_000))
    )
    unit = unit_scope(actor, filters)
    if unit is not None:
        query = query.where(Resource.unit_id == unit)
    return list(session.scalars(query))
