"""Reversals: the only way to correct an entry (entries are append-only).

A reversal negates every posting of the entry it points at, in the same flows, so reports
that sum by flow net the pair out. One exception: a reversed charge does not put money back
into ``held`` (its hold is resolved for good); that leg goes to free cash instead, so a
reversed charge gives the charged amount back to the project.

Holds, releases, expiries, transfers and reversals themselves cannot be reversed (void or
transfer back instead), nor can a charge of zero; an entry is reversed at most once (a
unique column).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.books import (
    CASH,
    AccountRef,
    Clock,
    Leg,
    accounts,
    check_key,
    lock_ledger,
    now_from,
    replay,
    request_hash,
    utcnow,
    write_entry,
)
from ledger.errors import ExceedsOutstanding, InvalidOperation, NotFound, NotReversible
from ledger.funding import paid_in, pledge_outstanding
from ledger.models import Account, AccountKind, Entry, EntryKind, Ledger, Pledge, Posting


def reverse(
    session: Session,
    entry_id: int,
    *,
    key: str,
    reason: str,
    actor_id: uuid.UUID | None = None,
    clock: Clock = utcnow,
) -> Entry:
    """Write the entry that undoes ``entry_id``; ``reason`` is required (it is the memo)."""
    check_key(key)
    if not reason.strip():
        raise InvalidOperation("a reversal needs a reason", field="reason")
    original = session.get(Entry, entry_id)
    if original is None:
        raise NotFound(f"no entry {entry_id}", field="entry_id")
    ledger = session.get_one(Ledger, original.ledger_id)
    digest = request_hash("reverse", {"entry": entry_id})
    with session.begin_nested():
        lock_ledger(session, ledger)
        first = replay(session, ledger, key, digest)
        if first is not None:
            return first
        if original.kind in EntryKind.NOT_REVERSIBLE:
            raise NotReversible(f"a {original.kind} entry cannot be reversed", field="entry_id")
        if session.scalars(select(Entry.id).where(Entry.reverses_entry_id == entry_id)).first():
            raise NotReversible(f"entry {entry_id} was already reversed", field="entry_id")
        rows = session.execute(
            select(Posting.amount, Posting.flow, Account.key, Account.kind)
            .join(Account, Account.id == Posting.account_id)
            .where(Posting.entry_id == entry_id)
        ).all()
        keys = {CASH.key} | {r.key for r in rows}
        refs = _refs(session, ledger, keys)
        legs = [
            Leg(refs[CASH.key if r.kind == AccountKind.HELD else r.key], -r.amount, r.flow)
            for r in rows
        ]
        net: dict[int, int] = {}
        for leg in legs:
            net[leg.account.id] = net.get(leg.account.id, 0) + leg.amount
        if not any(net.values()):  # e.g. a charge of zero: the hold was simply released
            raise NotReversible(f"entry {entry_id} moved no money to reverse", field="entry_id")
        _check_dependents(session, ledger, original, rows)
        return write_entry(
            session,
            ledger,
            kind=EntryKind.REVERSAL,
            key=key,
            digest=digest,
            legs=legs,
            effective_at=now_from(clock),
            memo=reason,
            actor_id=actor_id,
            unit_id=original.unit_id,
            pledge_id=original.pledge_id,
            hold_id=original.hold_id,
            reverses_entry_id=entry_id,
        )


def _refs(session: Session, ledger: Ledger, keys: set[str]) -> dict[str, AccountRef]:
    rows = session.execute(
        select(Account.key, Account.id, Account.kind, Account.balance).where(
            Account.ledger_id == ledger.id, Account.key.in_(list(keys))
        )
    ).all()
    found = {r.key: AccountRef(r.id, r.key, r.kind, r.balance) for r in rows}
    if CASH.key not in found:  # pragma: no cover - every ledger opens with cash
        found.update(accounts(session, ledger, [CASH]))
    return found


def _check_dependents(
    session: Session, ledger: Ledger, original: Entry, rows: Sequence[Any]
) -> None:
    """Refuse a reversal that later entries depend on (money already received or refunded)."""
    if original.kind == EntryKind.PLEDGE and original.pledge_id is not None:
        pledged = session.get_one(Pledge, original.pledge_id).amount
        if pledge_outstanding(session, original.pledge_id) < pledged:
            raise ExceedsOutstanding(
                "part of this pledge was received; reverse the receipts first", field="entry_id"
            )
    if original.kind in (EntryKind.RECEIPT, EntryKind.CONTRIBUTION) and original.unit_id:
        amount = sum(r.amount for r in rows if r.kind == AccountKind.CASH)
        if paid_in(session, ledger, original.unit_id) < amount:
            raise ExceedsOutstanding(
                "the unit was refunded this money already; reverse the refund first",
                field="entry_id",
            )
