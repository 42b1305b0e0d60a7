"""Two-phase holds: reserve cash for a booking, then post the actual charge, void or expire.

A hold moves cash from the project's free ``cash`` into ``held``; it resolves exactly once,
with one entry that points at it through the unique ``resolves_hold_id``:

- ``post_hold``: the charge (≤ the hold) goes to the lending unit's usage account, the rest
  back to free cash;
- ``void_hold``: everything back to free cash (booking cancelled);
- ``expire_hold`` / ``expire_due_holds``: the same, once the deadline has passed (the clock is
  injectable). After its deadline a hold can no longer be posted or voided.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select
from sqlalchemy.orm import Session, make_transient_to_detached

from ledger.books import (
    CASH,
    HELD,
    Clock,
    Leg,
    accounts,
    check_key,
    check_money,
    get_ledger,
    lock_ledger,
    now_from,
    read_books,
    replay,
    replayed_entry,
    request_hash,
    require_cash,
    usage_account,
    utcnow,
    write_entry,
)
from ledger.currency import Money
from ledger.errors import (
    ExceedsHold,
    HoldAlreadyResolved,
    HoldExpired,
    HoldNotExpired,
    InvalidOperation,
    NotFound,
)
from ledger.models import Entry, EntryKind, Hold, Ledger


def place_hold(
    session: Session,
    project_id: uuid.UUID,
    amount: Money,
    *,
    key: str,
    reference: str,
    deadline: datetime,
    lender_unit_id: uuid.UUID,
    borrower_unit_id: uuid.UUID | None = None,
    category: str = "usage",
    memo: str = "",
    actor_id: uuid.UUID | None = None,
    clock: Clock = utcnow,
) -> Hold:
    """Reserve ``amount`` of the project's cash for ``reference`` (e.g. a booking id) until
    ``deadline``. InsufficientFunds (with the shortfall) if the project cannot afford it."""
    check_key(key)
    digest = request_hash(
        "place_hold",
        {
            "amount": amount, "reference": reference, "deadline": deadline,
            "lender": lender_unit_id, "borrower": borrower_unit_id, "category": category,
        },
    )  # fmt: skip
    # One read under the lock, every check, then the inserts: a refusal raises before the
    # first write, so no savepoint is needed (a database error mid-way is the caller's to
    # roll back, as any database error is).
    books = read_books(session, project_id, [HELD], key=key)
    first = replayed_entry(session, books, digest)
    if first is not None:
        return session.get_one(Hold, first.hold_id)
    ledger = books.ledger
    minor = check_money(ledger, amount)
    now = now_from(clock)
    if deadline.tzinfo is None or deadline <= now:
        raise InvalidOperation("the deadline must be a future, aware datetime", field="deadline")
    if not reference or len(reference) > 200:
        raise InvalidOperation("reference must be 1 to 200 characters", field="reference")
    usage = usage_account(lender_unit_id, borrower_unit_id, category)  # validates category
    acc = books.accounts
    require_cash(ledger, acc[CASH.key].balance, minor)
    values = {
        "ledger_id": ledger.id, "reference": reference, "amount": minor, "deadline": deadline,
        "lender_unit_id": lender_unit_id, "borrower_unit_id": borrower_unit_id,
        "category": usage.category, "created_at": now,
    }  # fmt: skip
    # A Core insert and a persistent object, without the cost of a unit-of-work flush.
    hold = Hold(id=session.connection().execute(_INSERT_HOLD, values).scalar_one(), **values)
    make_transient_to_detached(hold)
    session.add(hold)
    write_entry(
        session,
        ledger,
        kind=EntryKind.HOLD,
        key=key,
        digest=digest,
        legs=[
            Leg(acc[HELD.key], minor, EntryKind.HOLD),
            Leg(acc[CASH.key], -minor, EntryKind.HOLD),
        ],
        effective_at=now,
        entry_id=books.entry_id,
        memo=memo,
        actor_id=actor_id,
        unit_id=lender_unit_id,
        hold_id=hold.id,
    )
    return hold


_INSERT_HOLD = insert(Hold.__table__).returning(Hold.__table__.c.id)  # type: ignore[arg-type]


def post_hold(
    session: Session,
    hold_id: int,
    amount: Money,
    *,
    key: str,
    memo: str = "",
    actor_id: uuid.UUID | None = None,
    clock: Clock = utcnow,
) -> Entry:
    """Charge ``amount`` (0 ≤ amount ≤ the hold) to the hold's lending unit; release the rest."""
    return _resolve(session, hold_id, EntryKind.CHARGE, amount, key, memo, actor_id, clock)


def void_hold(
    session: Session,
    hold_id: int,
    *,
    key: str,
    memo: str = "",
    actor_id: uuid.UUID | None = None,
    clock: Clock = utcnow,
) -> Entry:
    """Release the whole hold back to free cash (the booking was cancelled)."""
    return _resolve(session, hold_id, EntryKind.RELEASE, None, key, memo, actor_id, clock)


def expire_hold(
    session: Session, hold_id: int, *, clock: Clock = utcnow, key: str | None = None
) -> Entry:
    """Release a hold whose deadline has passed (HoldNotExpired before it)."""
    return _resolve(
        session, hold_id, EntryKind.EXPIRY, None, key or f"expire:{hold_id}", "expired", None, clock
    )


def expire_due_holds(
    session: Session,
    *,
    clock: Clock = utcnow,
    project_id: uuid.UUID | None = None,
    limit: int = 1000,
) -> list[Entry]:
    """Expire every pending hold past its deadline (of one project, or all); the entries."""
    now = now_from(clock)
    resolved = select(Entry.resolves_hold_id).where(Entry.resolves_hold_id.is_not(None))
    query = select(Hold.id).where(Hold.deadline <= now, Hold.id.not_in(resolved))
    if project_id is not None:
        query = query.where(Hold.ledger_id == get_ledger(session, project_id).id)
    ids = session.scalars(query.order_by(Hold.id).limit(limit)).all()
    return [expire_hold(session, hold_id, clock=lambda: now) for hold_id in ids]


@dataclass(frozen=True, slots=True)
class HoldState:
    """A hold and how it ended: ``pending``, ``posted``, ``voided`` or ``expired``."""

    hold: Hold
    state: str
    resolution: Entry | None
    charged: int
    """Minor units charged (0 unless posted)."""


_STATE = {EntryKind.CHARGE: "posted", EntryKind.RELEASE: "voided", EntryKind.EXPIRY: "expired"}


def hold_state(session: Session, hold_id: int) -> HoldState:
    """Where the hold stands."""
    hold = session.get(Hold, hold_id)
    if hold is None:
        raise NotFound(f"no hold {hold_id}", field="hold_id")
    entry = session.scalars(select(Entry).where(Entry.resolves_hold_id == hold_id)).first()
    if entry is None:
        return HoldState(hold, "pending", None, 0)
    charged = hold_charge(session, entry) if entry.kind == EntryKind.CHARGE else 0
    return HoldState(hold, _STATE[entry.kind], entry, charged)


def hold_charge(session: Session, entry: Entry) -> int:
    """Minor units a charge entry put on usage accounts."""
    from ledger.models import Account, AccountKind, Posting

    total = session.execute(
        select(Posting.amount)
        .join(Account, Account.id == Posting.account_id)
        .where(Posting.entry_id == entry.id, Account.kind == AccountKind.USAGE)
    ).scalars()
    return sum(total)


def open_hold(session: Session, reference: str) -> Hold | None:
    """The oldest hold for ``reference`` that no entry has resolved yet (None: none is
    open), in one statement however many holds the reference has had (a booking moved
    many times has one voided hold per earlier slot)."""
    resolved = select(Entry.id).where(Entry.resolves_hold_id == Hold.id).exists()
    return session.scalars(
        select(Hold).where(Hold.reference == reference, ~resolved).order_by(Hold.id).limit(1)
    ).first()


def holds_for_reference(session: Session, reference: str) -> list[Hold]:
    """Every hold placed for ``reference`` (e.g. a booking id), oldest first."""
    return list(session.scalars(select(Hold).where(Hold.reference == reference).order_by(Hold.id)))


def _resolve(
    session: Session,
    hold_id: int,
    kind: str,
    amount: Money | None,
    key: str,
    memo: str,
    actor_id: uuid.UUID | None,
    clock: Clock,
) -> Entry:
    check_key(key)
    hold = session.get(Hold, hold_id)
    if hold is None:
        raise NotFound(f"no hold {hold_id}", field="hold_id")
    ledger = session.get_one(Ledger, hold.ledger_id)
    digest = request_hash(kind, {"hold": hold_id, "amount": amount})
    with session.begin_nested():
        lock_ledger(session, ledger)
        first = replay(session, ledger, key, digest)
        if first is not None:
            return first
        charge = 0 if amount is None else check_money(ledger, amount, allow_zero=True)
        if session.scalars(select(Entry.id).where(Entry.resolves_hold_id == hold_id)).first():
            raise HoldAlreadyResolved(f"hold {hold_id} was already resolved", field="hold_id")
        now = now_from(clock)
        expired = now >= hold.deadline
        if kind == EntryKind.EXPIRY and not expired:
            raise HoldNotExpired(f"hold {hold_id} runs until {hold.deadline.isoformat()}")
        if kind != EntryKind.EXPIRY and expired:
            raise HoldExpired(f"hold {hold_id} expired at {hold.deadline.isoformat()}")
        if charge > hold.amount:
            raise ExceedsHold(
                f"the charge {charge} is above the hold of {hold.amount}", field="amount"
            )
        specs = [CASH, HELD]
        usage = None
        if charge:
            assert hold.lender_unit_id is not None
            usage = usage_account(hold.lender_unit_id, hold.borrower_unit_id, hold.category)
            specs.append(usage)
        acc = accounts(session, ledger, specs)
        legs = [
            Leg(acc[HELD.key], -hold.amount, kind),
            Leg(acc[CASH.key], hold.amount - charge, kind),
        ]
        if usage is not None:
            legs.append(Leg(acc[usage.key], charge, kind))
        return write_entry(
            session,
            ledger,
            kind=kind,
            key=key,
            digest=digest,
            legs=legs,
            effective_at=now,
            memo=memo,
            actor_id=actor_id,
            unit_id=hold.lender_unit_id,
            hold_id=hold_id,
            resolves_hold_id=hold_id,
        )
