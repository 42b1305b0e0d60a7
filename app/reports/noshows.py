"""No-shows and late cancellations per borrowing unit, with the cancellation fees charged.

Counted over bookings starting in the period: *no-shows* are device bookings released
because nobody checked in (``released``); *late cancellations* are bookings the borrower
cancelled less than ``late_hours`` before their start (or after it). Fees are the ledger's
cancellation-fee charges (entries keyed ``booking:<id>:fee`` by ``app.funds.hooks``)
effective in the period. Rows are per borrowing unit and currency (a booking counts in its
project's currency). A unit that is not admin or auditor sees the bookings it lends or
borrows, as ``GET /bookings`` does.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.bookings.models import Booking, BookingStatus
from app.reports.schemas import Report
from app.reports.scope import (
    ReportFilter,
    project_currencies,
    seconds_between,
    unit_names,
    unit_scope,
    visible_bookings,
)
from ledger.models import Account, AccountKind, Entry, Hold, Ledger, Posting

COLUMNS = [
    "unit_id", "unit", "currency", "bookings", "no_shows", "late_cancellations", "fees_charged",
]  # fmt: skip


def report(session: Session, actor: Actor, filters: ReportFilter, late_hours: int = 24) -> Report:
    """Bookings, no-shows, late cancellations and fees charged, per borrowing unit."""
    totals: dict[tuple[uuid.UUID, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    currencies = project_currencies(session)
    for unit, project, n, shows, late in session.execute(
        _counts(session, actor, filters, late_hours)
    ):
        t = totals[(unit, currencies[project])]
        t[0] += int(n)
        t[1] += int(shows or 0)
        t[2] += int(late or 0)
    for unit, currency, amount in session.execute(_fees(actor, filters)):
        if unit is not None:
            totals[(unit, currency)][3] += int(amount or 0)
    units = unit_names(session)
    rows = [
        {"unit_id": str(u), "unit": units.get(u, ""), "currency": c, "bookings": t[0],
         "no_shows": t[1], "late_cancellations": t[2], "fees_charged": t[3]}
        for (u, c), t in sorted(totals.items(), key=lambda kv: (units.get(kv[0][0], ""), kv[0][1]))
    ]  # fmt: skip
    return Report(name="no_shows", period_from=filters.period_from,
                  period_to=filters.period_to, columns=COLUMNS, rows=rows)  # fmt: skip


def _counts(session: Session, actor: Actor, filters: ReportFilter, late_hours: int) -> Any:
    late = and_(
        Booking.status == BookingStatus.CANCELLED.value,
        Booking.status_reason.like("borrower:%"),
        Booking.cancelled_at.is_not(None),
        seconds_between(session, Booking.cancelled_at, Booking.start) < late_hours * 3600,
    )
    query = (
        select(
            Booking.borrower_unit_id, Booking.project_id, func.count(),
            func.sum(case((Booking.status == BookingStatus.RELEASED.value, 1), else_=0)),
            func.sum(case((late, 1), else_=0)),
        )
        .where(visible_bookings(actor, filters), Booking.start >= filters.start,
               Booking.start < filters.end)
        .group_by(Booking.borrower_unit_id, Booking.project_id)
    )  # fmt: skip
    if filters.project_id is not None:
        query = query.where(Booking.project_id == filters.project_id)
    return query


def _fees(actor: Actor, filters: ReportFilter) -> Any:
    query = (
        select(Hold.borrower_unit_id, Ledger.currency, func.sum(Posting.amount))
        .join(Entry, Entry.resolves_hold_id == Hold.id)
        .join(Posting, Posting.entry_id == Entry.id)
        .join(Account, Account.id == Posting.account_id)
        .join(Ledger, Ledger.id == Hold.ledger_id)
        .where(
            Account.kind == AccountKind.USAGE,
            Entry.idempotency_key.like("booking:%:fee"),
            Entry.effective_at >= filters.start,
            Entry.effective_at < filters.end,
        )
        .group_by(Hold.borrower_unit_id, Ledger.currency)
    )
    unit = unit_scope(actor, filters)
    if unit is not None:
        query = query.where(or_(Hold.borrower_unit_id == unit, Hold.lender_unit_id == unit))
    if filters.project_id is not None:
        query = query.where(Ledger.project_id == filters.project_id)
    return query
