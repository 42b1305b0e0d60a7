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

import functools
import json
import uuid
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, case, or_, select
from sqlalchemy.orm import Session

from app.agreements.models import SharingAgreement
from app.auth.actor import Actor
from app.bookings.availability import Interval
from app.bookings.models import LIVE_STATUSES, Booking
from app.bookings.rules import MonthlyCap, _agreement_caps, _lending_caps, _months
from app.catalog.models import Resource, ResourceKind
from app.reports.minutes import seconds_per_bucket
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
        "cap": cap.code, "agreement_id": _text(agreement_id) if agreement_id else None,
        "lender": lender, "borrower": borrower, "resource_id": _text(resource.id),
        "resource": resource.name, "month": cap.month[0].date().isoformat(),
        "allowed_minutes": cap.allowed, "used_minutes": cap.used,
        "share": round(share, 4) if share is not None else None,
        "over_80": cap.used >= FLAG * cap.allowed if cap.allowed else cap.used > 0,
    }  # fmt: skip


@functools.lru_cache(maxsize=4096)
def _text(value: uuid.UUID) -> str:
    """An id as text, once per id (a resource has a row per month)."""
    return str(value)


def _met(filters: ReportFilter) -> Any:
    """SQL: 1 for a loan in the period (and project), the bookings that list a cap."""
    conditions = [
        Booking.start < filters.end,
        Booking.end > filters.start,
        Booking.lender_unit_id != Booking.borrower_unit_id,
    ]
    if filters.project_id is not None:
        conditions.append(Booking.project_id == filters.project_id)
    return case((and_(*conditions), 1), else_=0)


def _used(
    session: Session, months: list[Interval], conditions: list[Any], *keys: Any
) -> dict[tuple[Any, ...], list[float]]:
    """Seconds of live bookings per ``keys``, whether each is a loan in the period
    (the last key) and month: one pass in SQL that both finds the caps to list and sums
    what each cap counts."""
    return seconds_per_bucket(
        session, months, [Booking.status.in_(LIVE_STATUSES), *conditions], *keys
    )


def _minutes(parts: list[list[float]], months: int) -> list[int]:
    return [round(sum(p[i] for p in parts) / 60) for i in range(months)]


def _agreement_rows(
    session: Session, actor: Actor, filters: ReportFilter, units: dict[uuid.UUID, str]
) -> list[dict[str, Any]]:
    months = _months(filters.start, filters.end, ZoneInfo("UTC"))
    seconds = _used(session, months, [Booking.agreement_id.is_not(None)],
                    Booking.agreement_id, Booking.resource_id, _met(filters))  # fmt: skip
    parts: dict[tuple[uuid.UUID, uuid.UUID], list[list[float]]] = defaultdict(list)
    for (agreement_id, resource_id, _), values in seconds.items():
        parts[(agreement_id, resource_id)].append(values)
    met = {(a, r) for a, r, loan in seconds if loan}
    query = select(SharingAgreement).where(
        SharingAgreement.id.in_({a for a, _ in met}),
        SharingAgreement.hours_per_month_cap.is_not(None),
    )
    unit = unit_scope(actor, filters)
    if unit is not None:
        query = query.where(
            or_(SharingAgreement.lender_unit_id == unit, SharingAgreement.borrower_unit_id == unit)
        )
    agreements = {a.id: a for a in session.scalars(query)}
    met = {(a, r) for a, r in met if a in agreements}
    names = dict(session.execute(select(Resource.id, Resource.name).where(
        Resource.id.in_({r for _, r in met}))).all())  # fmt: skip
    rows = []
    for agreement_id, resource_id in met:
        agreement = agreements[agreement_id]
        resource = _Named(resource_id, names.get(resource_id, ""))
        used = _minutes(parts[(agreement_id, resource_id)], len(months))
        for cap, minutes in zip(_agreement_caps(agreement, months, []), used, strict=True):
            rows.append(_row(_with_used(cap, minutes), agreement.id,
                             units.get(agreement.lender_unit_id, ""),
                             units.get(agreement.borrower_unit_id, ""), resource))  # fmt: skip
    return rows


def _lending_rows(
    session: Session, actor: Actor, filters: ReportFilter, units: dict[uuid.UUID, str]
) -> list[dict[str, Any]]:
    query = select(Resource).where(
        Resource.kind == ResourceKind.EXPERT.value, Resource.lending_cap_bp < 10_000
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
        home = {e.id: e.unit_id for e in experts}
        some = [Booking.resource_id.in_(list(home))] if len(home) < 2000 else []
        seconds = _used(session, months, some,
                        Booking.resource_id, Booking.borrower_unit_id, _met(filters))  # fmt: skip
        parts: dict[uuid.UUID, list[list[float]]] = defaultdict(list)
        for (resource_id, borrower, _), values in seconds.items():
            if resource_id in home and borrower != home[resource_id]:
                parts[resource_id].append(values)
        lent = {r for r, _, loan in seconds if loan}
        allowed: dict[tuple[str, int], list[MonthlyCap]] = {}
        for expert in (e for e in experts if e.id in lent):
            key = (json.dumps(expert.working_hours, sort_keys=True), expert.lending_cap_bp)
            if key not in allowed:  # the rule's allowance, once per calendar and cap
                allowed[key] = _lending_caps(expert, months, [])
            used = _minutes(parts[expert.id], len(months))
            for cap, minutes in zip(allowed[key], used, strict=True):
                rows.append(_row(_with_used(cap, minutes), None,
                                 units.get(expert.unit_id, ""), "", expert))  # fmt: skip
    return rows


class _Named:
    """A resource's id and name (all a row needs)."""

    def __init__(self, rid: uuid.UUID, name: str) -> None:
        self.id, self.name = rid, name


def _with_used(cap: MonthlyCap, minutes: int) -> MonthlyCap:
    return MonthlyCap(cap.code, cap.month, cap.allowed, minutes, cap.borrower)
