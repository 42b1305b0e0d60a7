"""``verify_ledger``: check every invariant of the books against the rows themselves.

The database enforces these rules as rows are written (migrations 0002 and 0007); this
check finds what got past them anyway: a trigger dropped on SQLite, an owner's raw SQL,
a restored backup. It reads only, and reports each bad row (table, id, what is wrong):

- every entry has at least two postings summing to zero (one currency per ledger, so per
  currency), and every posting belongs to an entry and to an account of the entry's ledger;
- the cached ``ledger_accounts.balance`` and ``ledger_account_flows.amount`` equal the sums
  of the postings; cash, held cash and pledge receivables are not below zero by the
  postings, and only those accounts are marked non-negative;
- every hold is placed by exactly one entry moving its amount into held cash, resolved at
  most once, by a charge, release or expiry taking exactly its amount out of held cash;
  a ledger's held cash equals the sum of its unresolved holds;
- a pledge is recognised at most once, for its amount; an entry is reversed at most once;
  every hold, pledge and entry an entry points at exists;
- the triggers that enforce all this exist and are enabled (a dropped or disabled trigger
  is reported even when no row was changed yet).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, literal, select
from sqlalchemy.orm import Session, aliased

from app.integrity import MAX_FINDINGS, Report, check_triggers
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

RESOLVING = (EntryKind.CHARGE, EntryKind.RELEASE, EntryKind.EXPIRY)
_BOOKS = ("ledger_ledgers", "ledger_pledges", "ledger_holds", "ledger_entries", "ledger_postings")
TRIGGERS = {
    "postgresql": (
        *(f"{t}_append_only" for t in _BOOKS),
        *(f"{t}_no_truncate" for t in (*_BOOKS, "ledger_accounts", "ledger_account_flows")),
        "ledger_postings_apply", "ledger_accounts_cache_guard", "ledger_account_flows_cache_guard",
        "ledger_postings_entry_open", "ledger_postings_balanced", "ledger_entries_balanced",
    ),
    "sqlite": (
        *(f"{t}_no_{verb}" for t in _BOOKS for verb in ("update", "delete")),
        "ledger_postings_apply", "ledger_postings_entry_open", "ledger_entries_balanced",
        "ledger_accounts_frozen", "ledger_accounts_no_delete", "ledger_account_flows_no_delete",
        "ledger_accounts_start_at_zero", "ledger_accounts_balance_guard",
        "ledger_account_flows_insert_guard", "ledger_account_flows_update_guard",
    ),
}  # fmt: skip
"""The triggers of migrations 0002 and 0007 that keep the books, by engine."""


def _rows(session: Session, query: Any) -> list[Any]:
    return list(session.execute(query.limit(MAX_FINDINGS)).all())


def _entries_balance(session: Session, report: Report) -> None:
    legs = func.count(Posting.id)
    total = func.coalesce(func.sum(Posting.amount), 0)
    query = (
        select(Entry.id, legs.label("legs"), total.label("total"))
        .outerjoin(Posting, Posting.entry_id == Entry.id)
        .group_by(Entry.id)
        .having((legs < 2) | (total != 0))
        .order_by(Entry.id)
    )
    for row in _rows(session, query):
        report.add(
            "ledger_entries", row.id,
            f"does not balance: {row.legs} postings summing to {row.total}",
        )  # fmt: skip


def _postings_belong(session: Session, report: Report) -> None:
    orphans = (
        select(Posting.id, Posting.entry_id)
        .outerjoin(Entry, Entry.id == Posting.entry_id)
        .where(Entry.id.is_(None))
        .order_by(Posting.id)
    )
    for row in _rows(session, orphans):
        report.add("ledger_postings", row.id, f"its entry {row.entry_id} does not exist")
    foreign = (
        select(Posting.id, Posting.account_id, Entry.id.label("entry_id"))
        .join(Entry, Entry.id == Posting.entry_id)
        .outerjoin(Account, Account.id == Posting.account_id)
        .where((Account.id.is_(None)) | (Account.ledger_id != Entry.ledger_id))
        .order_by(Posting.id)
    )
    for row in _rows(session, foreign):
        report.add(
            "ledger_postings", row.id,
            f"account {row.account_id} is not in the ledger of entry {row.entry_id}",
        )  # fmt: skip


def _account_sums() -> Any:
    return (
        select(Posting.account_id, func.sum(Posting.amount).label("total"))
        .group_by(Posting.account_id)
        .subquery()
    )


def _balances(session: Session, report: Report) -> None:
    sums = _account_sums()
    total = func.coalesce(sums.c.total, 0)
    cached = (
        select(Account.id, Account.balance, total.label("total"))
        .outerjoin(sums, sums.c.account_id == Account.id)
        .where(Account.balance != total)
        .order_by(Account.id)
    )
    for row in _rows(session, cached):
        report.add(
            "ledger_accounts", row.id,
            f"cached balance {row.balance} differs from its postings' sum {row.total}",
        )  # fmt: skip
    flagged = Account.non_negative != Account.kind.in_(sorted(AccountKind.NON_NEGATIVE))
    for row in _rows(session, select(Account.id, Account.kind).where(flagged).order_by(Account.id)):
        report.add(
            "ledger_accounts", row.id, f"non_negative flag is wrong for a {row.kind} account"
        )
    negative = (
        select(Account.id, Account.kind, sums.c.total)
        .join(sums, sums.c.account_id == Account.id)
        .where(Account.kind.in_(sorted(AccountKind.NON_NEGATIVE)), sums.c.total < 0)
        .order_by(Account.id)
    )
    for row in _rows(session, negative):
        report.add(
            "ledger_accounts", row.id, f"{row.kind} is below zero by its postings ({row.total})"
        )


def _flows(session: Session, report: Report) -> None:
    sums = (
        select(Posting.account_id, Posting.flow, func.sum(Posting.amount).label("total"))
        .group_by(Posting.account_id, Posting.flow)
        .subquery()
    )
    on = and_(sums.c.account_id == AccountFlow.account_id, sums.c.flow == AccountFlow.flow)
    cached = (
        select(AccountFlow.account_id, AccountFlow.flow, AccountFlow.amount, sums.c.total)
        .outerjoin(sums, on)
        .where(AccountFlow.amount != func.coalesce(sums.c.total, 0))
        .order_by(AccountFlow.account_id, AccountFlow.flow)
    )
    for row in _rows(session, cached):
        report.add(
            "ledger_account_flows", f"{row.account_id}/{row.flow}",
            f"cached amount {row.amount} differs from its postings' sum {row.total or 0}",
        )  # fmt: skip
    missing = (
        select(sums.c.account_id, sums.c.flow, sums.c.total)
        .outerjoin(AccountFlow, on)
        .where(AccountFlow.account_id.is_(None), sums.c.total != 0)
        .order_by(sums.c.account_id, sums.c.flow)
    )
    for row in _rows(session, missing):
        report.add(
            "ledger_account_flows", f"{row.account_id}/{row.flow}",
            f"missing: its postings sum to {row.total}",
        )  # fmt: skip


def _held_leg(entry: Any) -> Any:
    """The signed amount an entry moves in or out of its ledger's held cash."""
    held = aliased(Account)
    return (
        select(func.coalesce(func.sum(Posting.amount), 0))
        .join(held, held.id == Posting.account_id)
        .where(Posting.entry_id == entry.id, held.kind == AccountKind.HELD)
        .scalar_subquery()
    )


def _holds_placed(session: Session, report: Report) -> None:
    placing = aliased(Entry)
    count = func.count(placing.id)
    query = (
        select(Hold.id, count.label("n"))
        .outerjoin(placing, and_(placing.hold_id == Hold.id, placing.kind == EntryKind.HOLD))
        .group_by(Hold.id)
        .having(count != 1)
        .order_by(Hold.id)
    )
    for row in _rows(session, query):
        report.add("ledger_holds", row.id, f"placed by {row.n} hold entries, not one")
    moved = _held_leg(placing)
    wrong = (
        select(Hold.id, Hold.amount, moved.label("moved"))
        .join(placing, and_(placing.hold_id == Hold.id, placing.kind == EntryKind.HOLD))
        .where(moved != Hold.amount)
        .order_by(Hold.id)
    )
    for row in _rows(session, wrong):
        report.add(
            "ledger_holds", row.id,
            f"its amount {row.amount} differs from the {row.moved} its entry held",
        )  # fmt: skip


def _holds_resolved(session: Session, report: Report) -> None:
    count = func.count(Entry.id)
    twice = (
        select(Entry.resolves_hold_id, count.label("n"))
        .where(Entry.resolves_hold_id.is_not(None))
        .group_by(Entry.resolves_hold_id)
        .having(count > 1)
        .order_by(Entry.resolves_hold_id)
    )
    for row in _rows(session, twice):
        report.add("ledger_holds", row.resolves_hold_id, f"resolved {row.n} times")
    resolving = aliased(Entry)
    moved = _held_leg(resolving)
    wrong = (
        select(
            resolving.id,
            resolving.kind,
            Hold.id.label("hold_id"),
            Hold.amount,
            moved.label("moved"),
        )
        .join(Hold, Hold.id == resolving.resolves_hold_id)
        .where((moved != -Hold.amount) | resolving.kind.not_in(RESOLVING))
        .order_by(resolving.id)
    )
    for row in _rows(session, wrong):
        report.add(
            "ledger_entries", row.id,
            f"a {row.kind} resolving hold {row.hold_id} of {row.amount} released {-row.moved}",
        )  # fmt: skip


def _held_cash(session: Session, report: Report) -> None:
    sums = _account_sums()
    resolved = select(Entry.resolves_hold_id).where(Entry.resolves_hold_id.is_not(None))
    open_holds = (
        select(Hold.ledger_id, func.sum(Hold.amount).label("open"))
        .where(Hold.id.not_in(resolved))
        .group_by(Hold.ledger_id)
        .subquery()
    )
    held = func.coalesce(sums.c.total, 0)
    expected = func.coalesce(open_holds.c.open, 0)
    query = (
        select(
            Ledger.id, Account.id.label("account_id"), held.label("held"), expected.label("open")
        )
        .join(Account, and_(Account.ledger_id == Ledger.id, Account.kind == AccountKind.HELD))
        .outerjoin(sums, sums.c.account_id == Account.id)
        .outerjoin(open_holds, open_holds.c.ledger_id == Ledger.id)
        .where(held != expected)
        .order_by(Ledger.id)
    )
    for row in _rows(session, query):
        report.add(
            "ledger_accounts", row.account_id,
            f"held cash {row.held} of ledger {row.id} differs from its open holds ({row.open})",
        )  # fmt: skip


def _pledges_and_reversals(session: Session, report: Report) -> None:
    count = func.count(Entry.id)
    for column, table in (
        (Entry.pledge_id, "ledger_pledges"),
        (Entry.reverses_entry_id, "ledger_entries"),
    ):
        kind_ok = Entry.kind == EntryKind.PLEDGE if table == "ledger_pledges" else literal(True)
        twice = (
            select(column.label("ref"), count.label("n"))
            .where(column.is_not(None), kind_ok)
            .group_by(column)
            .having(count > 1)
            .order_by(column)
        )
        verb = "recognised" if table == "ledger_pledges" else "reversed"
        for row in _rows(session, twice):
            report.add(table, row.ref, f"{verb} {row.n} times")
    receivable = aliased(Account)
    debit = (
        select(func.coalesce(func.sum(Posting.amount), 0))
        .join(receivable, receivable.id == Posting.account_id)
        .where(Posting.entry_id == Entry.id, receivable.kind == AccountKind.PLEDGES)
        .scalar_subquery()
    )
    wrong = (
        select(Pledge.id, Pledge.amount, debit.label("debit"))
        .join(Entry, and_(Entry.pledge_id == Pledge.id, Entry.kind == EntryKind.PLEDGE))
        .where(debit != Pledge.amount)
        .order_by(Pledge.id)
    )
    for row in _rows(session, wrong):
        report.add(
            "ledger_pledges", row.id,
            f"its amount {row.amount} differs from the {row.debit} its entry recognised",
        )  # fmt: skip


def _references(session: Session, report: Report) -> None:
    target = aliased(Entry)
    for column, model, what in (
        (Entry.hold_id, Hold, "hold"),
        (Entry.resolves_hold_id, Hold, "resolved hold"),
        (Entry.pledge_id, Pledge, "pledge"),
        (Entry.reverses_entry_id, target, "reversed entry"),
    ):
        dangling = (
            select(Entry.id, column.label("ref"))
            .outerjoin(model, model.id == column)
            .where(column.is_not(None), model.id.is_(None))
            .order_by(Entry.id)
        )
        for row in _rows(session, dangling):
            report.add("ledger_entries", row.id, f"its {what} {row.ref} does not exist")


def _triggers(session: Session, report: Report) -> None:
    check_triggers(session, report, TRIGGERS)


CHECKS = (
    _entries_balance, _postings_belong, _references, _balances, _flows,
    _holds_placed, _holds_resolved, _held_cash, _pledges_and_reversals,
    _triggers,  # last: a bad row is the better first finding
)  # fmt: skip


def verify_ledger(session: Session) -> Report:
    """Check every ledger invariant against the rows; the report names each bad row."""
    report = Report("ledger")
    for table, name in (
        (Ledger, "ledgers"),
        (Entry, "entries"),
        (Posting, "postings"),
        (Hold, "holds"),
    ):
        report.counts[name] = session.scalar(select(func.count()).select_from(table)) or 0
    for check in CHECKS:
        check(session, report)
    return report
