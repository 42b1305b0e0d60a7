"""What project leads and units read: fund statements, the register (and CSV), unit statements.

Statements are computed from the cached balances (``Account.balance`` and the per-flow
``AccountFlow`` rows), never by summing postings, so they cost the same with a million
postings as with ten. Reversals net out because their postings carry the reversed flow.
Access control (who may see a project's ledger) is the caller's job: ``app/`` checks it.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, exists, false, func, select
from sqlalchemy.orm import Session, aliased

from ledger.books import get_ledger
from ledger.currency import format_minor
from ledger.errors import InvalidOperation, InvalidShares
from ledger.models import (
    Account,
    AccountFlow,
    AccountKind,
    Entry,
    EntryKind,
    Hold,
    Ledger,
    Pledge,
    Posting,
)
from ledger.shares import allocate

# ------------------------------------------------------------------- fund statement


@dataclass(frozen=True, slots=True)
class UnitFunds:
    """One contributing unit's line of a fund statement (minor units).

    ``pledged``…``contributed`` are the unit's own figures. ``held``, ``spent`` and
    ``available`` are the project's figures split by the unit's *agreed* share (exactly,
    so the lines sum to the totals); ``available`` = ``received − refunded − held − spent``,
    negative when the unit has paid in less than its share of what was used.
    ``actual_share_bp`` is the unit's share of everything contributed (cash and in kind),
    and ``versus_agreed`` = contributed − its agreed share of the total contributed.
    """

    unit_id: uuid.UUID
    agreed_share_bp: int
    actual_share_bp: int
    pledged: int
    pledged_conditional: int
    received: int
    in_kind: int
    refunded: int
    outstanding_pledges: int
    contributed: int
    versus_agreed: int
    held: int
    spent: int
    available: int


@dataclass(frozen=True, slots=True)
class FundStatement:
    """A project's funds (minor units of ``currency``), in total and per contributing unit.

    ``available`` (free cash) = received − refunded + transfers_in − transfers_out − held −
    spent. Conditional pledges not yet met are in ``pledged_conditional`` only.
    """

    project_id: uuid.UUID
    currency: str
    pledged: int
    pledged_conditional: int
    received: int
    in_kind: int
    refunded: int
    outstanding_pledges: int
    transfers_in: int
    transfers_out: int
    held: int
    spent: int
    available: int
    spent_by_category: dict[str, int]
    earned_by_unit: dict[uuid.UUID, int]
    units: list[UnitFunds] = field(default_factory=list)


def fund_statement(
    session: Session, project_id: uuid.UUID, agreed_shares_bp: Mapping[uuid.UUID, int]
) -> FundStatement:
    """The project's fund statement; ``agreed_shares_bp`` are the units' cost-share terms in
    basis points (each 0..10,000, summing to 10,000)."""
    if any(not 0 <= bp <= 10_000 for bp in agreed_shares_bp.values()) or (
        sum(agreed_shares_bp.values()) != 10_000
    ):
        raise InvalidShares("agreed shares must sum to 10,000 basis points", field="shares")
    ledger = get_ledger(session, project_id)
    rows = session.execute(
        select(
            Account.id, Account.kind, Account.unit_id, Account.category, Account.balance,
            AccountFlow.flow, AccountFlow.amount,
        )
        .outerjoin(AccountFlow, AccountFlow.account_id == Account.id)
        .where(Account.ledger_id == ledger.id)
    ).all()  # fmt: skip
    balance: dict[str, int] = defaultdict(int)
    flows: dict[tuple[str, uuid.UUID | None, str], int] = defaultdict(int)
    spent_by_category: dict[str, int] = defaultdict(int)
    earned: dict[uuid.UUID, int] = defaultdict(int)
    seen: set[int] = set()
    units: set[uuid.UUID] = set(agreed_shares_bp)
    for r in rows:
        if r.id not in seen:  # one balance per account, however many flows it has
            seen.add(r.id)
            balance[r.kind] += r.balance
            if r.kind == AccountKind.PLEDGES:
                flows[(AccountKind.PLEDGES, r.unit_id, "balance")] += r.balance
            if r.kind in (AccountKind.EXPENSE, AccountKind.USAGE):
                spent_by_category[r.category] += r.balance
            if r.kind == AccountKind.USAGE and r.unit_id is not None:
                earned[r.unit_id] += r.balance
        if r.flow is not None:
            flows[(r.kind, r.unit_id, r.flow)] += r.amount
        if r.unit_id is not None and r.kind in (
            AccountKind.PLEDGES, AccountKind.CONTRIBUTIONS, AccountKind.IN_KIND
        ):  # fmt: skip
            units.add(r.unit_id)
    conditional = _unmet_conditional(session, ledger)
    units.update(conditional)

    def unit_figures(u: uuid.UUID) -> dict[str, int]:
        c, p = AccountKind.CONTRIBUTIONS, AccountKind.PLEDGES
        received = -flows[(p, u, EntryKind.RECEIPT)] - flows[(c, u, EntryKind.CONTRIBUTION)]
        in_kind = -flows[(c, u, EntryKind.IN_KIND)]
        refunded = flows[(c, u, EntryKind.REFUND)]
        return {
            "pledged": -flows[(c, u, EntryKind.PLEDGE)],
            "pledged_conditional": conditional.get(u, 0),
            "received": received,
            "in_kind": in_kind,
            "refunded": refunded,
            "outstanding_pledges": flows[(p, u, "balance")],
            "contributed": received - refunded + in_kind,
        }

    order = sorted(units, key=str)
    figures = {u: unit_figures(u) for u in order}
    held = balance[AccountKind.HELD]
    spent = balance[AccountKind.EXPENSE] + balance[AccountKind.USAGE]
    agreed = [agreed_shares_bp.get(u, 0) for u in order]
    contributed = [max(figures[u]["contributed"], 0) for u in order]
    actual = allocate(10_000, contributed)
    held_split, spent_split = allocate(held, agreed), allocate(spent, agreed)
    due = allocate(sum(f["contributed"] for f in figures.values()), agreed)
    lines = [
        UnitFunds(
            unit_id=u,
            agreed_share_bp=agreed[i],
            actual_share_bp=actual[i],
            **figures[u],
            versus_agreed=figures[u]["contributed"] - due[i],
            held=held_split[i],
            spent=spent_split[i],
            available=figures[u]["received"]
            - figures[u]["refunded"]
            - held_split[i]
            - spent_split[i],
        )
        for i, u in enumerate(order)
    ]
    return FundStatement(
        project_id=project_id,
        currency=ledger.currency,
        pledged=sum(f["pledged"] for f in figures.values()),
        pledged_conditional=sum(conditional.values()),
        received=sum(f["received"] for f in figures.values()),
        in_kind=sum(f["in_kind"] for f in figures.values()),
        refunded=sum(f["refunded"] for f in figures.values()),
        outstanding_pledges=balance[AccountKind.PLEDGES],
        transfers_in=-flows[(AccountKind.TRANSFERS, None, EntryKind.TRANSFER_IN)],
        transfers_out=flows[(AccountKind.TRANSFERS, None, EntryKind.TRANSFER_OUT)],
        held=held,
        spent=spent,
        available=balance[AccountKind.CASH],
        spent_by_category={k: v for k, v in sorted(spent_by_category.items()) if v},
        earned_by_unit={u: v for u, v in sorted(earned.items(), key=lambda kv: str(kv[0])) if v},
        units=lines,
    )


def _unmet_conditional(session: Session, ledger: Ledger) -> dict[uuid.UUID, int]:
    met = exists().where(Entry.pledge_id == Pledge.id, Entry.kind == EntryKind.PLEDGE)
    rows = session.execute(
        select(Pledge.unit_id, func.sum(Pledge.amount))
        .where(Pledge.ledger_id == ledger.id, Pledge.conditional, ~met)
        .group_by(Pledge.unit_id)
    )
    return {unit: int(total) for unit, total in rows}


# ------------------------------------------------------------------------- register


@dataclass(frozen=True, slots=True)
class RegisterLine:
    """One posting of an entry in the register."""

    account: str
    amount: int
    """Minor units, debit positive."""


@dataclass(frozen=True, slots=True)
class RegisterEntry:
    """One entry of the register, with its postings."""

    id: int
    effective_at: datetime
    kind: str
    memo: str
    unit_id: uuid.UUID | None
    reference: str | None
    reverses_entry_id: int | None
    reversed_by_entry_id: int | None
    lines: list[RegisterLine]


@dataclass(frozen=True, slots=True)
class RegisterPage:
    """A page of the register; pass ``next_after`` as ``after`` for the next page."""

    currency: str
    entries: list[RegisterEntry]
    next_after: int | None


def register(
    session: Session,
    project_id: uuid.UUID,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    account: str | None = None,
    kinds: Iterable[str] | None = None,
    include_reversed: bool = True,
    after: int | None = None,
    limit: int = 50,
) -> RegisterPage:
    """The project's entries in order, filtered by time (``since`` ≤ t < ``until``), account
    key and kinds; ``include_reversed=False`` hides reversed entries and their reversals."""
    if not 1 <= limit <= 1000:
        raise InvalidOperation("limit must be 1 to 1000", field="limit")
    ledger = get_ledger(session, project_id)
    reversal = aliased(Entry)
    query = (
        select(Entry, Hold.reference, reversal.id)
        .outerjoin(Hold, Hold.id == Entry.hold_id)
        .outerjoin(reversal, reversal.reverses_entry_id == Entry.id)
        .where(Entry.ledger_id == ledger.id)
    )
    if since is not None:
        query = query.where(Entry.effective_at >= since)
    if until is not None:
        query = query.where(Entry.effective_at < until)
    if kinds is not None:
        wanted = list(kinds)
        unknown = set(wanted) - set(EntryKind.ALL)
        if unknown:
            raise InvalidOperation(f"unknown entry kinds {sorted(unknown)}", field="kinds")
        query = query.where(Entry.kind.in_(wanted) if wanted else false())
    if account is not None:
        on_account = (
            select(Posting.id)
            .join(Account, Account.id == Posting.account_id)
            .where(and_(Posting.entry_id == Entry.id, Account.key == account))
        )
        query = query.where(on_account.exists())
    if not include_reversed:
        query = query.where(reversal.id.is_(None), Entry.reverses_entry_id.is_(None))
    if after is not None:
        query = query.where(Entry.id > after)
    rows = session.execute(query.order_by(Entry.id).limit(limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    ids = [r[0].id for r in rows]
    lines: dict[int, list[RegisterLine]] = defaultdict(list)
    if ids:
        for entry_id, key, amount in session.execute(
            select(Posting.entry_id, Account.key, Posting.amount)
            .join(Account, Account.id == Posting.account_id)
            .where(Posting.entry_id.in_(ids))
            .order_by(Posting.entry_id, Posting.id)
        ):
            lines[entry_id].append(RegisterLine(key, amount))
    entries = [
        RegisterEntry(
            id=e.id,
            effective_at=e.effective_at,
            kind=e.kind,
            memo=e.memo,
            unit_id=e.unit_id,
            reference=reference,
            reverses_entry_id=e.reverses_entry_id,
            reversed_by_entry_id=reversed_by,
            lines=lines[e.id],
        )
        for e, reference, reversed_by in rows
    ]
    return RegisterPage(ledger.currency, entries, ids[-1] if more else None)


CSV_COLUMNS = (
    "entry_id", "effective_at", "kind", "account", "debit", "credit", "currency",
    "unit_id", "reference", "reverses_entry_id", "reversed_by_entry_id", "memo",
)  # fmt: skip


def register_csv(
    session: Session,
    project_id: uuid.UUID,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    account: str | None = None,
    kinds: Iterable[str] | None = None,
    include_reversed: bool = True,
) -> str:
    """The filtered register as CSV text: one row per posting, amounts in major units."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    after = None
    kind_list = None if kinds is None else list(kinds)
    while True:
        page = register(
            session, project_id, since=since, until=until, account=account, kinds=kind_list,
            include_reversed=include_reversed, after=after, limit=1000,
        )  # fmt: skip
        for e in page.entries:
            for line in e.lines:
                debit = format_minor(line.amount, page.currency) if line.amount > 0 else ""
                credit = format_minor(-line.amount, page.currency) if line.amount < 0 else ""
                writer.writerow(
                    (
                        e.id, e.effective_at.isoformat(), e.kind, line.account, debit, credit,
                        page.currency, e.unit_id or "", e.reference or "",
                        e.reverses_entry_id or "", e.reversed_by_entry_id or "", e.memo,
                    )
                )  # fmt: skip
        if page.next_after is None:
            return out.getvalue()
        after = page.next_after


# --------------------------------------------------------------------- unit statement


@dataclass(frozen=True, slots=True)
class UnitProjectLine:
    """A unit's figures in one project (minor units of ``currency``)."""

    project_id: uuid.UUID
    currency: str
    pledged: int = 0
    received: int = 0
    in_kind: int = 0
    refunded: int = 0
    outstanding_pledges: int = 0
    contributed: int = 0
    """received − refunded + in_kind."""
    consumed: int = 0
    """Charges for resources the unit borrowed, booked to this project."""
    earned: int = 0
    """Charges this project paid for resources the unit lent."""


@dataclass(frozen=True, slots=True)
class UnitTotals:
    """A unit's totals in one currency; ``reciprocity`` = earned − consumed."""

    currency: str
    contributed: int
    consumed: int
    earned: int
    reciprocity: int


@dataclass(frozen=True, slots=True)
class UnitStatement:
    """What a unit gave to and took from joint projects, per project and per currency."""

    unit_id: uuid.UUID
    projects: list[UnitProjectLine]
    totals: list[UnitTotals]


def unit_statement(session: Session, unit_id: uuid.UUID) -> UnitStatement:
    """The unit's contributions, consumption and lending earnings across all projects."""
    rows = session.execute(
        select(
            Ledger.project_id, Ledger.currency, Account.kind, Account.unit_id,
            Account.counterparty_unit_id, Account.balance, AccountFlow.flow, AccountFlow.amount,
        )
        .join(Ledger, Ledger.id == Account.ledger_id)
        .outerjoin(AccountFlow, AccountFlow.account_id == Account.id)
        .where((Account.unit_id == unit_id) | (Account.counterparty_unit_id == unit_id))
    ).all()  # fmt: skip
    per: dict[uuid.UUID, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    currency: dict[uuid.UUID, str] = {}
    for r in rows:
        currency[r.project_id] = r.currency
        p = per[r.project_id]
        if r.kind == AccountKind.USAGE:
            # The flows of an account sum to its balance.
            if r.unit_id == unit_id:
                p["earned"] += r.amount or 0
            if r.counterparty_unit_id == unit_id:
                p["consumed"] += r.amount or 0
            continue
        flow, amount = r.flow, r.amount or 0
        if r.kind == AccountKind.CONTRIBUTIONS:
            if flow == EntryKind.PLEDGE:
                p["pledged"] -= amount
            elif flow == EntryKind.CONTRIBUTION:
                p["received"] -= amount
            elif flow == EntryKind.IN_KIND:
                p["in_kind"] -= amount
            elif flow == EntryKind.REFUND:
                p["refunded"] += amount
        elif r.kind == AccountKind.PLEDGES:
            if flow == EntryKind.RECEIPT:
                p["received"] -= amount
            p["outstanding_pledges"] += amount
    lines = []
    totals: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for project_id in sorted(per, key=str):
        p = per[project_id]
        contributed = p["received"] - p["refunded"] + p["in_kind"]
        line = UnitProjectLine(
            project_id=project_id,
            currency=currency[project_id],
            pledged=p["pledged"],
            received=p["received"],
            in_kind=p["in_kind"],
            refunded=p["refunded"],
            outstanding_pledges=p["outstanding_pledges"],
            contributed=contributed,
            consumed=p["consumed"],
            earned=p["earned"],
        )
        lines.append(line)
        t = totals[line.currency]
        t["contributed"] += contributed
        t["consumed"] += line.consumed
        t["earned"] += line.earned
    return UnitStatement(
        unit_id=unit_id,
        projects=lines,
        totals=[
            UnitTotals(
                cur, t["contributed"], t["consumed"], t["earned"], t["earned"] - t["consumed"]
            )
            for cur, t in sorted(totals.items())
        ],
    )
