"""Cap usage: minutes used against each agreement's monthly cap and each expert's lending
cap, per month, flagged at 80 % and more.

The months and the minutes a cap allows come from the booking engine's own cap helpers in
``app.bookings.rules`` (``_months``, ``_agreement_caps``, ``_lending_caps``), so the report
says what the next booking is checked against. The minutes used are what those helpers
count — live bookings under the agreement (agreement caps, UTC months), live bookings by
any other unit (lending caps, months of the expert's zone) — summed in SQL per resource
and month instead of one query per resource, so the report stays fast with many experts.
Only caps met by a loan in the period are listed. A unit that is not admin or auditor
sees the agreements it lends or borrows under and its own experts' lending caps.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from app.agreements.models import SharingAgreement
from app.auth.actor import Actor
from app.bookings.availability import Interval
from app.bookings.models import LIVE_STATUSES, Booking
from app.bookings.rules import MonthlyCap, _agreement_caps, _lending_caps, _months
from app.catalog.models import Resource, ResourceKind
from app.reports.minutes import per_bucket
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
    rows = [*_agreement_rows(session, actor, filters, units),
            *_lending_rows(session, actor, filters, units)]  # fmt: skip
    rows.sort(key=lambda r: (r["cap"], r["lender"], r["borrower"], r["resource"], r["month"]))
    return Report(name="caps", period_from=filters.period_from, period_to=filters.period_to,
                  columns=COLUMNS, rows=rows)  # fmt: skip


def _row(
    cap: MonthlyCap, agreement_id: uuid.UUID | None, lender: str, borrower: str, resource: Any
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


def _loans(filters: ReportFilter) -> list[Any]:
    conditions = [
        Booking.status.in_(LIVE_STATUSES),
        Booking.start < filters.end,
        Booking.end > filters.start,
        Booking.lender_unit_id != Booking.borrower_unit_id,
    ]
    if filters.project_id is not None:
        conditions.append(Booking.project_id == filters.project_id)
    return conditions


def _used(
    session: Session, months: list[Interval], condition: Any, *keys: Any
) -> dict[tuple[Any, ...], list[int]]:
    """Minutes of live bookings meeting ``condition`` per ``keys`` and month, in SQL."""
    used = per_bucket(session, months, [Booking.status.in_(LIVE_STATUSES), condition], *keys)
    return defaultdict(lambda: [0] * len(months), used)


def _agreement_rows(
    session: Session, actor: Actor, filters: ReportFilter, units: dict[uuid.UUID, str]
) -> list[dict[str, Any]]:
    met = (
        select(Booking.agreement_id, Booking.resource_id)
        .join(SharingAgreement, SharingAgreement.id == Booking.agreement_id)
        .where(*_loans(filters), SharingAgreement.hours_per_month_cap.is_not(None))
        .distinct()
        .subquery()
    )
    query = select(SharingAgreement).where(SharingAgreement.id.in_(select(met.c.agreement_id)))
    unit = unit_scope(actor, filters)
    if unit is not None:
        query = query.where(
            or_(SharingAgreement.lender_unit_id == unit, SharingAgreement.borrower_unit_id == unit)
        )
    agreements = {a.id: a for a in session.scalars(query)}
    if not agreements:
        return []
    pairs = session.execute(select(met.c.agreement_id, met.c.resource_id)).all()
    names = dict(session.execute(select(Resource.id, Resource.name).where(
        Resource.id.in_(select(met.c.resource_id)))).all())  # fmt: skip
    months = _months(filters.start, filters.end, ZoneInfo("UTC"))
    used = _used(session, months, Booking.agreement_id.in_(list(agreements)),
                 Booking.agreement_id, Booking.resource_id)  # fmt: skip
    rows = []
    for agreement_id, resource_id in pairs:
        agreement = agreements.get(agreement_id)
        if agreement is None:
            continue
        resource = _Named(resource_id, names.get(resource_id, ""))
        for cap, minutes in zip(_agreement_caps(agreement, months, []),
                                used[(agreement_id, resource_id)], strict=True):  # fmt: skip
            rows.append(_row(_with_used(cap, minutes), agreement.id,
                             units.get(agreement.lender_unit_id, ""),
                             units.get(agreement.borrower_unit_id, ""), resource))  # fmt: skip
    return rows


def _lending_rows(
    session: Session, actor: Actor, filters: ReportFilter, units: dict[uuid.UUID, str]
) -> list[dict[str, Any]]:
    lent = select(Booking.resource_id).where(*_loans(filters)).distinct()
    query = select(Resource).where(
        Resource.id.in_(lent),
        Resource.kind == ResourceKind.EXPERT.value,
        Resource.lending_cap_bp < 10_000,
    )
    unit = unit_scope(actor, filters)
    if unit is not None:
        query = query.where(Resource.unit_id == unit)
    by_zone: dict[str, list[Resource]] = defaultdict(list)
    for resource in session.scalars(query):
        by_zone[resource.time_zone].append(resource)
    rows = []
    for zone, experts in by_zone.items():
        months = _months(filters.start, filters.end, ZoneInfo(zone))
        used = _used(
            session, months,
            and_(Booking.resource_id.in_([e.id for e in experts]),
                 Booking.borrower_unit_id != Resource.unit_id, Resource.id == Booking.resource_id),
            Booking.resource_id,
        )  # fmt: skip
        allowed: dict[tuple[str, int], list[MonthlyCap]] = {}
        for expert in experts:
            key = (json.dumps(expert.working_hours, sort_keys=True), expert.lending_cap_bp)
            if key not in allowed:  # the rule's allowance, once per calendar and cap
                allowed[key] = _lending_caps(expert, months, [])
            for cap, minutes in zip(allowed[key], used[(expert.id,)], strict=True):
                rows.append(_row(_with_used(cap, minutes), None,
                                 units.get(expert.unit_id, ""), "", expert))  # fmt: skip
    return rows


class _Named:
    """A resource's id and name (all a row needs)."""

    def __init__(self, rid: uuid.UUID, name: str) -> None:
        self.id, self.name = rid, name


def _with_used(cap: MonthlyCap, minutes: int) -> MonthlyCap:
    return MonthlyCap(cap.code, cap.month, cap.allowed, minutes, cap.borrower)
