"""Reciprocity: who lends to whom, in hours and in money, and each unit's net balance.

Hours are live loans (lender ≠ borrower) clipped to the period, summed in SQL. Money is
what the ledger charged: the postings of the usage accounts (``usage:lender:borrower``,
debited by each completed loan's charge and cancellation fee, credited by reversals) with
entries effective in the period, per currency. A unit that is not admin or auditor sees
the pairs it lends or borrows in.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.bookings.models import LIVE_STATUSES, Booking
from app.reports.schemas import Report
from app.reports.scope import (
    ReportFilter,
    clip,
    project_currencies,
    seconds_sum,
    unit_names,
    unit_scope,
)
from ledger.models import Account, AccountKind, Entry, Ledger, Posting

PAIR_COLUMNS = [
    "lender_unit_id", "lender", "borrower_unit_id", "borrower", "currency", "minutes", "amount",
]  # fmt: skip
BALANCE_COLUMNS = [
    "unit_id", "unit", "currency", "lent_minutes", "borrowed_minutes", "net_minutes",
    "lent_amount", "borrowed_amount", "net_amount",
]  # fmt: skip
Pair = tuple[uuid.UUID, uuid.UUID, str]


def pairs(session: Session, actor: Actor, filters: ReportFilter) -> Report:
    """The unit × unit matrix as rows: minutes and money each lender lent each borrower,
    per currency (a loan's minutes count in its project's currency)."""
    data = _matrix(session, actor, filters)
    units = unit_names(session)
    rows = [
        {"lender_unit_id": str(lender), "lender": units.get(lender, ""),
         "borrower_unit_id": str(borrower), "borrower": units.get(borrower, ""),
         "currency": currency, "minutes": v[0], "amount": v[1]}
        for (lender, borrower, currency), v in sorted(
            data.items(), key=lambda kv: (units.get(kv[0][0], ""), units.get(kv[0][1], ""), kv[0][2])
        )
    ]  # fmt: skip
    return Report(name="reciprocity", period_from=filters.period_from,
                  period_to=filters.period_to, columns=PAIR_COLUMNS, rows=rows)  # fmt: skip


def balances(session: Session, actor: Actor, filters: ReportFilter) -> Report:
    """Each unit's lent, borrowed and net (lent − borrowed) minutes and money."""
    totals: dict[tuple[uuid.UUID, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for (lender, borrower, currency), (minutes, amount) in _matrix(session, actor, filters).items():
        totals[(lender, currency)][0] += minutes
        totals[(lender, currency)][2] += amount
        totals[(borrower, currency)][1] += minutes
        totals[(borrower, currency)][3] += amount
    scope = unit_scope(actor, filters)
    units = unit_names(session)
    rows = [
        {"unit_id": str(u), "unit": units.get(u, ""), "currency": c,
         "lent_minutes": t[0], "borrowed_minutes": t[1], "net_minutes": t[0] - t[1],
         "lent_amount": t[2], "borrowed_amount": t[3], "net_amount": t[2] - t[3]}
        for (u, c), t in sorted(totals.items(), key=lambda kv: (units.get(kv[0][0], ""), kv[0][1]))
        if scope is None or u == scope
    ]  # fmt: skip
    return Report(name="reciprocity_balances", period_from=filters.period_from,
                  period_to=filters.period_to, columns=BALANCE_COLUMNS, rows=rows)  # fmt: skip


def _matrix(session: Session, actor: Actor, filters: ReportFilter) -> dict[Pair, list[int]]:
    out: dict[Pair, list[int]] = defaultdict(lambda: [0, 0])
    currencies = project_currencies(session)
    seconds: dict[Pair, float] = defaultdict(float)
    for lender, borrower, project, total in session.execute(_hours(session, actor, filters)):
        seconds[(lender, borrower, currencies[project])] += float(total)
    for pair, total in seconds.items():
        out[pair][0] += round(total / 60)
    for lender, borrower, currency, amount in session.execute(_money(actor, filters)):
        if lender is not None and borrower is not None and amount:
            out[(lender, borrower, currency)][1] += int(amount)
    return out


def _hours(session: Session, actor: Actor, filters: ReportFilter) -> Any:
    """Seconds of live loans in the period per lender, borrower and project."""
    start = clip(session, Booking.start, filters.start, upper=False)
    end = clip(session, Booking.end, filters.end, upper=True)
    query = (
        select(Booking.lender_unit_id, Booking.borrower_unit_id, Booking.project_id,
               seconds_sum(session, start, end))
        .where(
            Booking.status.in_(LIVE_STATUSES),
            Booking.lender_unit_id != Booking.borrower_unit_id,
            Booking.start < filters.end,
            Booking.end > filters.start,
        )
        .group_by(Booking.lender_unit_id, Booking.borrower_unit_id, Booking.project_id)
    )  # fmt: skip
    unit = unit_scope(actor, filters)
    if unit is not None:
        query = query.where(or_(Booking.lender_unit_id == unit, Booking.borrower_unit_id == unit))
    if filters.project_id is not None:
        query = query.where(Booking.project_id == filters.project_id)
    return query


def _money(actor: Actor, filters: ReportFilter) -> Any:
    query = (
        select(Account.unit_id, Account.counterparty_unit_id, Ledger.currency,
               func.sum(Posting.amount))
        .join(Posting, Posting.account_id == Account.id)
        .join(Entry, Entry.id == Posting.entry_id)
        .join(Ledger, Ledger.id == Account.ledger_id)
        .where(
            Account.kind == AccountKind.USAGE,
            Entry.effective_at >= filters.start,
            Entry.effective_at < filters.end,
        )
        .group_by(Account.unit_id, Account.counterparty_unit_id, Ledger.currency)
    )  # fmt: skip
    unit = unit_scope(actor, filters)
    if unit is not None:
        query = query.where(or_(Account.unit_id == unit, Account.counterparty_unit_id == unit))
    if filters.project_id is not None:
        query = query.where(Ledger.project_id == filters.project_id)
    return query
