"""How money comes into a project and leaves it other than by bookings.

- ``pledge``: a unit promises an amount. Unconditional: at once a receivable (Dr pledges:u,
  Cr contributions:u). Conditional: recorded off the books until ``mark_pledge_met``.
- ``receive_pledge``: cash arrives against a pledge and clears (part of) its receivable.
- ``contribute``: cash paid in without a pledge; ``contribute_in_kind``: value given in kind
  (tagged ``in_kind``; it never becomes spendable cash).
- ``refund``: cash paid back to a unit, at most what it paid in.
- ``transfer``: an administrator moves cash between two projects of the same currency;
  the actor and the reason are required and stored on both entries (the audit trail).
- ``record_expense``: direct spending, one leg per category; all legs or none.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger.books import (
    CASH,
    TRANSFERS,
    Clock,
    Leg,
    accounts,
    check_key,
    check_money,
    complete_accounts,
    contributions_account,
    expense_account,
    get_ledger,
    in_kind_account,
    lock_ledger,
    now_from,
    pledges_account,
    read_books,
    replay,
    replayed_entry,
    request_hash,
    require_cash,
    utcnow,
    write_entry,
)
from ledger.currency import Money
from ledger.errors import (
    CurrencyMismatch,
    ExceedsOutstanding,
    IdempotencyConflict,
    InvalidOperation,
    NotFound,
    PledgeState,
)
from ledger.models import (
    Account,
    AccountFlow,
    AccountKind,
    Entry,
    EntryKind,
    Ledger,
    Pledge,
    Posting,
)


def pledge(
    session: Session,
    project_id: uuid.UUID,
    unit_id: uuid.UUID,
    amount: Money,
    *,
    key: str,
    conditional: bool = False,
    condition: str = "",
    memo: str = "",
    actor_id: uuid.UUID | None = None,
    clock: Clock = utcnow,
) -> Pledge:
    """Record ``unit_id``'s pledge; unconditional ones become a receivable at once."""
    check_key(key)
    ledger = get_ledger(session, project_id)
    digest = request_hash(
        "pledge",
        {"unit": unit_id, "amount": amount, "conditional": conditional, "condition": condition},
    )
    with session.begin_nested():
        lock_ledger(session, ledger)
        first = session.scalars(
            select(Pledge).where(Pledge.ledger_id == ledger.id, Pledge.idempotency_key == key)
        ).first()
        if first is not None:
            if first.request_hash != digest:
                raise IdempotencyConflict(f"key {key!r} was used with another request", field="key")
            return first
        minor = check_money(ledger, amount)
        if conditional and not condition.strip():
            raise InvalidOperation(
                "a conditional pledge must state its condition", field="condition"
            )
        now = now_from(clock)
        row = Pledge(
            ledger_id=ledger.id,
            unit_id=unit_id,
            amount=minor,
            conditional=conditional,
            condition=condition,
            idempotency_key=key,
            request_hash=digest,
            created_at=now,
        )
        session.add(row)
        session.flush()
        if not conditional:
            _recognise(session, ledger, row, key, digest, memo, actor_id, now)
    return row


def mark_pledge_met(
    session: Session,
    pledge_id: int,
    *,
    key: str,
    memo: str = "",
    actor_id: uuid.UUID | None = None,
    clock: Clock = utcnow,
) -> Entry:
    """A conditional pledge's condition is met: it becomes a receivable."""
    check_key(key)
    row, ledger = _pledge(session, pledge_id)
    digest = request_hash("mark_pledge_met", {"pledge": pledge_id})
    with session.begin_nested():
        lock_ledger(session, ledger)
        first = replay(session, ledger, key, digest)
        if first is not None:
            return first
        if not row.conditional:
            raise PledgeState(f"pledge {pledge_id} is unconditional", field="pledge_id")
        if _recognised(session, pledge_id):
            raise PledgeState(f"pledge {pledge_id} was already met", field="pledge_id")
        return _recognise(session, ledger, row, key, digest, memo, actor_id, now_from(clock))


def receive_pledge(
    session: Session,
    pledge_id: int,
    amount: Money,
    *,
    key: str,
    memo: str = "",
    actor_id: uuid.UUID | None = None,
    clock: Clock = utcnow,
) -> Entry:
    """Cash received against a pledge (at most what the pledge still owes)."""
    check_key(key)
    row, ledger = _pledge(session, pledge_id)
    digest = request_hash("receive_pledge", {"pledge": pledge_id, "amount": amount})
    with session.begin_nested():
        lock_ledger(session, ledger)
        first = replay(session, ledger, key, digest)
        if first is not None:
            return first
        minor = check_money(ledger, amount)
        if not _recognised(session, pledge_id):
            raise PledgeState(f"pledge {pledge_id} is conditional and not met", field="pledge_id")
        owed = pledge_outstanding(session, pledge_id)
        if minor > owed:
            raise ExceedsOutstanding(
                f"pledge {pledge_id} has {owed} outstanding, not {minor}", field="amount"
            )
        receivable = pledges_account(row.unit_id)
        acc = accounts(session, ledger, [CASH, receivable])
        return write_entry(
            session,
            ledger,
            kind=EntryKind.RECEIPT,
            key=key,
            digest=digest,
            legs=[
                Leg(acc[CASH.key], minor, EntryKind.RECEIPT),
                Leg(acc[receivable.key], -minor, EntryKind.RECEIPT),
            ],
            effective_at=now_from(clock),
            memo=memo,
            actor_id=actor_id,
            unit_id=row.unit_id,
            pledge_id=pledge_id,
        )


def contribute(
    session: Session,
    project_id: uuid.UUID,
    unit_id: uuid.UUID,
    amount: Money,
    *,
    key: str,
    memo: str = "",
    actor_id: uuid.UUID | None = None,
    clock: Clock = utcnow,
) -> Entry:
    """Cash paid in by ``unit_id`` without a pledge."""
    return _contribution(
        session, project_id, unit_id, amount, key, memo, actor_id, clock, in_kind=False
    )


def contribute_in_kind(
    session: Session,
    project_id: uuid.UUID,
    unit_id: uuid.UUID,
    amount: Money,
    *,
    key: str,
    memo: str,
    actor_id: uuid.UUID | None = None,
    clock: Clock = utcnow,
) -> Entry:
    """Value given in kind by ``unit_id`` (goods, staff time), at ``amount``; ``memo`` says
    what. It counts as the unit's contribution but is not spendable cash."""
    if not memo.strip():
        raise InvalidOperation("say what was given in kind", field="memo")
    return _contribution(
        session, project_id, unit_id, amount, key, memo, actor_id, clock, in_kind=True
    )


def refund(
    session: Session,
    project_id: uuid.UUID,
    unit_id: uuid.UUID,
    amount: Money,
    *,
    key: str,
    memo: str = "",
    actor_id: uuid.UUID | None = None,
    clock: Clock = utcnow,
) -> Entry:
    """Pay cash back to ``unit_id``: at most what it paid in, and what the project has free."""
    check_key(key)
    ledger = get_ledger(session, project_id)
    digest = request_hash("refund", {"unit": unit_id, "amount": amount})
    with session.begin_nested():
        cash = lock_ledger(session, ledger)
        first = replay(session, ledger, key, digest)
        if first is not None:
            return first
        minor = check_money(ledger, amount)
        paid = paid_in(session, ledger, unit_id)
        if minor > paid:
            raise ExceedsOutstanding(
                f"unit {unit_id} paid in {paid}; cannot refund {minor}", field="amount"
            )
        require_cash(ledger, cash, minor)
        contributions = contributions_account(unit_id)
        acc = accounts(session, ledger, [CASH, contributions])
        return write_entry(
            session,
            ledger,
            kind=EntryKind.REFUND,
            key=key,
            digest=digest,
            legs=[
                Leg(acc[contributions.key], minor, EntryKind.REFUND),
                Leg(acc[CASH.key], -minor, EntryKind.REFUND),
            ],
            effective_at=now_from(clock),
            memo=memo,
            actor_id=actor_id,
            unit_id=unit_id,
        )


def transfer(
    session: Session,
    from_project_id: uuid.UUID,
    to_project_id: uuid.UUID,
    amount: Money,
    *,
    key: str,
    actor_id: uuid.UUID,
    reason: str,
    clock: Clock = utcnow,
) -> tuple[Entry, Entry]:
    """Move free cash from one project to another (an administrator's act, with a reason).

    Two entries, one per ledger, written together: ``transfer_out`` under ``key`` and
    ``transfer_in`` under ``key + ":in"``; each names the other project."""
    check_key(key)
    if from_project_id == to_project_id:
        raise InvalidOperation("a transfer needs two different projects", field="to_project_id")
    if actor_id is None or not reason.strip():
        raise InvalidOperation("a transfer needs the acting administrator and a reason")
    source = get_ledger(session, from_project_id)
    target = get_ledger(session, to_project_id)
    if source.currency != target.currency:
        raise CurrencyMismatch(
            f"cannot transfer {source.currency} into a {target.currency} ledger", field="amount"
        )
    digest = request_hash(
        "transfer", {"from": from_project_id, "to": to_project_id, "amount": amount}
    )
    with session.begin_nested():
        # Lock both ledgers in id order so two opposite transfers cannot deadlock.
        cash = {}
        for ledger in sorted((source, target), key=lambda led: led.id):
            cash[ledger.id] = lock_ledger(session, ledger)
        first = replay(session, source, key, digest)
        if first is not None:
            second = replay(session, target, f"{key}:in", digest)
            assert second is not None
            return first, second
        minor = check_money(source, amount)
        require_cash(source, cash[source.id], minor)
        now = now_from(clock)
        entries = []
        for ledger, kind, sign, other in (
            (source, EntryKind.TRANSFER_OUT, -1, to_project_id),
            (target, EntryKind.TRANSFER_IN, 1, from_project_id),
        ):
            acc = accounts(session, ledger, [CASH, TRANSFERS])
            entries.append(
                write_entry(
                    session,
                    ledger,
                    kind=kind,
                    key=key if sign < 0 else f"{key}:in",
                    digest=digest,
                    legs=[
                        Leg(acc[CASH.key], sign * minor, kind),
                        Leg(acc[TRANSFERS.key], -sign * minor, kind),
                    ],
                    effective_at=now,
                    memo=reason,
                    actor_id=actor_id,
                    counterparty_project_id=other,
                )
            )
    return entries[0], entries[1]


def record_expense(
    session: Session,
    project_id: uuid.UUID,
    lines: Sequence[tuple[str, Money]],
    *,
    key: str,
    memo: str = "",
    actor_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    clock: Clock = utcnow,
) -> Entry:
    """Spend free cash on one or more ``(category, amount)`` lines: one entry, every leg or
    none (a bad line refuses the whole entry)."""
    check_key(key)
    digest = request_hash("record_expense", {"lines": [[c, m] for c, m in lines]})
    specs = [expense_account(category) for category, _ in lines]
    books = read_books(session, project_id, specs, key=key)  # one read, under the lock
    first = replayed_entry(session, books, digest)
    if first is not None:
        return first
    if not lines:
        raise InvalidOperation("an expense needs at least one line", field="lines")
    ledger = books.ledger
    amounts = [check_money(ledger, m, f"lines[{i}].amount") for i, (_, m) in enumerate(lines)]
    total = sum(amounts)
    require_cash(ledger, books.accounts[CASH.key].balance, total)
    acc = complete_accounts(session, books, specs)
    legs = [Leg(acc[s.key], a, EntryKind.EXPENSE) for s, a in zip(specs, amounts, strict=True)]
    legs.append(Leg(acc[CASH.key], -total, EntryKind.EXPENSE))
    return write_entry(
        session,
        ledger,
        kind=EntryKind.EXPENSE,
        key=key,
        digest=digest,
        legs=legs,
        effective_at=now_from(clock),
        entry_id=books.entry_id,
        memo=memo,
        actor_id=actor_id,
        unit_id=unit_id,
    )


# ----------------------------------------------------------------------------- queries


def pledge_outstanding(session: Session, pledge_id: int) -> int:
    """Minor units the pledge still owes (0 while a conditional pledge is unmet)."""
    owed = session.execute(
        select(func.coalesce(func.sum(Posting.amount), 0))
        .join(Entry, Entry.id == Posting.entry_id)
        .join(Account, Account.id == Posting.account_id)
        .where(Entry.pledge_id == pledge_id, Account.kind == AccountKind.PLEDGES)
    ).scalar_one()
    return int(owed)


def paid_in(session: Session, ledger: Ledger, unit_id: uuid.UUID) -> int:
    """Cash ``unit_id`` paid into the project (receipts + direct contributions − refunds)."""
    p, c = pledges_account(unit_id).key, contributions_account(unit_id).key
    flows: dict[str, int] = {}
    for key, flow, amount in session.execute(
        select(Account.key, AccountFlow.flow, AccountFlow.amount)
        .join(AccountFlow, AccountFlow.account_id == Account.id)
        .where(Account.ledger_id == ledger.id, Account.key.in_([p, c]))
    ):
        flows[f"{key}:{flow}"] = amount
    return -(
        flows.get(f"{p}:{EntryKind.RECEIPT}", 0)
        + flows.get(f"{c}:{EntryKind.CONTRIBUTION}", 0)
        + flows.get(f"{c}:{EntryKind.REFUND}", 0)
    )


def _pledge(session: Session, pledge_id: int) -> tuple[Pledge, Ledger]:
    row = session.get(Pledge, pledge_id)
    if row is None:
        raise NotFound(f"no pledge {pledge_id}", field="pledge_id")
    return row, session.get_one(Ledger, row.ledger_id)


def _recognised(session: Session, pledge_id: int) -> bool:
    return (
        session.scalars(
            select(Entry.id).where(Entry.pledge_id == pledge_id, Entry.kind == EntryKind.PLEDGE)
        ).first()
        is not None
    )


def _recognise(
    session: Session,
    ledger: Ledger,
    row: Pledge,
    key: str,
    digest: str,
    memo: str,
    actor_id: uuid.UUID | None,
    now: object,
) -> Entry:
    receivable, contributions = pledges_account(row.unit_id), contributions_account(row.unit_id)
    acc = accounts(session, ledger, [receivable, contributions])
    return write_entry(
        session,
        ledger,
        kind=EntryKind.PLEDGE,
        key=key,
        digest=digest,
        legs=[
            Leg(acc[receivable.key], row.amount, EntryKind.PLEDGE),
            Leg(acc[contributions.key], -row.amount, EntryKind.PLEDGE),
        ],
        effective_at=now,  # type: ignore[arg-type]
        memo=memo or (f"pledge met: {row.condition}" if row.conditional else ""),
        actor_id=actor_id,
        unit_id=row.unit_id,
        pledge_id=row.id,
    )


def _contribution(
    session: Session,
    project_id: uuid.UUID,
    unit_id: uuid.UUID,
    amount: Money,
    key: str,
    memo: str,
    actor_id: uuid.UUID | None,
    clock: Clock,
    *,
    in_kind: bool,
) -> Entry:
    check_key(key)
    kind = EntryKind.IN_KIND if in_kind else EntryKind.CONTRIBUTION
    digest = request_hash(kind, {"unit": unit_id, "amount": amount, "memo": memo})
    debit = in_kind_account(unit_id) if in_kind else CASH
    contributions = contributions_account(unit_id)
    books = read_books(session, project_id, [debit, contributions], key=key)
    first = replayed_entry(session, books, digest)
    if first is not None:
        return first
    minor = check_money(books.ledger, amount)
    acc = complete_accounts(session, books, [debit, contributions])
    return write_entry(
        session,
        books.ledger,
        kind=kind,
        key=key,
        digest=digest,
        legs=[
            Leg(acc[debit.key], minor, kind),
            Leg(acc[contributions.key], -minor, kind),
        ],
        effective_at=now_from(clock),
        entry_id=books.entry_id,
        memo=memo,
        actor_id=actor_id,
        unit_id=unit_id,
    )
