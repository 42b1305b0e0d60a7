"""The core of the ledger: open a project's books, lock them, and write balanced entries.

Every function that writes only ``flush()``es: the caller commits (or rolls back) the
transaction. Refused requests raise one of ``ledger.errors`` and leave nothing behind. The
frequent writes (holds, contributions, expenses) read what they need in one statement under
the lock (``read_books``), check everything, then insert: a refusal raises before the first
write, so they need no SAVEPOINT; the others still write inside one.

Concurrency. A write first locks the project's cash account row and holds the lock to the
end of the transaction, so writes to one project are serialised and "is there enough cash"
is decided on the current balance. PostgreSQL: ``SELECT … FOR UPDATE``. SQLite has no row
locks, so the ledger needs a SQLite engine whose transactions are serialised from the first
statement, as ``app.db.make_engine`` does (an in-process lock and ``BEGIN IMMEDIATE``);
with a default pysqlite engine two writers could both read the balance before either writes
(the database's CHECK on the balance would still refuse the overdraft, as an IntegrityError).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Select, bindparam, func, insert, null, select
from sqlalchemy.orm import Session, make_transient_to_detached

from ledger.currency import Money, check_minor, currency_scale, format_minor
from ledger.errors import (
    CurrencyMismatch,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    InvalidOperation,
    NotFound,
)
from ledger.models import Account, AccountKind, Entry, Ledger, Posting, entry_ids

Clock = Callable[[], datetime]
"""Returns the current instant, timezone-aware (tests inject a fake one)."""


def utcnow() -> datetime:
    """The current instant in UTC."""
    return datetime.now(UTC)


def now_from(clock: Clock) -> datetime:
    """``clock()``, refusing naive datetimes (the ledger stores UTC only)."""
    now = clock()
    if now.tzinfo is None:
        raise InvalidOperation("the clock must return timezone-aware datetimes", field="clock")
    return now


# ----------------------------------------------------------------------------- accounts


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """What identifies an account in a ledger (created on first use)."""

    key: str
    kind: str
    unit_id: uuid.UUID | None = None
    counterparty_unit_id: uuid.UUID | None = None
    category: str = ""


CASH = AccountSpec("cash", AccountKind.CASH)
HELD = AccountSpec("held", AccountKind.HELD)
TRANSFERS = AccountSpec("transfers", AccountKind.TRANSFERS)


def pledges_account(unit_id: uuid.UUID) -> AccountSpec:
    """The receivable of what ``unit_id`` pledged and has not paid yet."""
    return AccountSpec(f"pledges:{unit_id}", AccountKind.PLEDGES, unit_id)


def contributions_account(unit_id: uuid.UUID) -> AccountSpec:
    """What ``unit_id`` put into the project (pledged, paid directly, in kind; less refunds)."""
    return AccountSpec(f"contributions:{unit_id}", AccountKind.CONTRIBUTIONS, unit_id)


def in_kind_account(unit_id: uuid.UUID) -> AccountSpec:
    """The value ``unit_id`` gave in kind."""
    return AccountSpec(f"in_kind:{unit_id}", AccountKind.IN_KIND, unit_id)


def expense_account(category: str) -> AccountSpec:
    """Direct spending of one category."""
    category = _check_category(category)
    return AccountSpec(f"expense:{category}", AccountKind.EXPENSE, category=category)


def usage_account(
    lender_unit_id: uuid.UUID, borrower_unit_id: uuid.UUID | None, category: str
) -> AccountSpec:
    """Booking charges earned by ``lender_unit_id`` for resources ``borrower_unit_id`` used."""
    category = _check_category(category)
    borrower = str(borrower_unit_id) if borrower_unit_id else "-"
    return AccountSpec(
        f"usage:{lender_unit_id}:{borrower}:{category}",
        AccountKind.USAGE,
        lender_unit_id,
        borrower_unit_id,
        category,
    )


def _check_category(category: str) -> str:
    if not isinstance(category, str) or not category.strip() or len(category) > 64:
        raise InvalidOperation("category must be 1 to 64 characters", field="category")
    return category.strip()


@dataclass(frozen=True, slots=True)
class AccountRef:
    """An account's id and its balance as read under the ledger's lock."""

    id: int
    key: str
    kind: str
    balance: int


def accounts(
    session: Session, ledger: Ledger, specs: Iterable[AccountSpec]
) -> dict[str, AccountRef]:
    """The accounts of ``specs`` by key, created (at zero) if they do not exist yet."""
    wanted = {s.key: s for s in specs}
    rows = session.execute(
        select(Account.key, Account.id, Account.kind, Account.balance).where(
            Account.ledger_id == ledger.id, Account.key.in_(list(wanted))
        )
    ).all()
    found = {r.key: AccountRef(r.id, r.key, r.kind, r.balance) for r in rows}
    for key, spec in wanted.items():
        if key in found:
            continue
        new_id = session.execute(
            insert(Account)
            .values(
                ledger_id=ledger.id,
                key=spec.key,
                kind=spec.kind,
                unit_id=spec.unit_id,
                counterparty_unit_id=spec.counterparty_unit_id,
                category=spec.category,
                non_negative=spec.kind in AccountKind.NON_NEGATIVE,
                balance=0,
            )
            .returning(Account.id)
        ).scalar_one()
        found[key] = AccountRef(new_id, spec.key, spec.kind, 0)
    return found


# ------------------------------------------------------------------------------ ledgers


def open_ledger(
    session: Session, project_id: uuid.UUID, currency: str, *, clock: Clock = utcnow
) -> Ledger:
    """The project's ledger in ``currency``, created on first call (CurrencyMismatch if the
    project already keeps its books in another currency)."""
    scale = currency_scale(currency)
    existing = session.scalars(select(Ledger).where(Ledger.project_id == project_id)).first()
    if existing is not None:
        if existing.currency != currency:
            raise CurrencyMismatch(
                f"the project's ledger is in {existing.currency}, not {currency}",
                field="currency",
            )
        return existing
    with session.begin_nested():
        ledger = Ledger(
            project_id=project_id, currency=currency, scale=scale, created_at=now_from(clock)
        )
        session.add(ledger)
        session.flush()
        accounts(session, ledger, [CASH, HELD, TRANSFERS])
    return ledger


def get_ledger(session: Session, project_id: uuid.UUID) -> Ledger:
    """The project's ledger (NotFound if it has none)."""
    ledger = session.scalars(select(Ledger).where(Ledger.project_id == project_id)).first()
    if ledger is None:
        raise NotFound(f"project {project_id} has no ledger", field="project_id")
    return ledger


def lock_ledger(session: Session, ledger: Ledger) -> int:
    """Lock the ledger's cash row to the end of the transaction; returns the free cash."""
    return session.execute(
        select(Account.balance)
        .where(Account.ledger_id == ledger.id, Account.key == CASH.key)
        .with_for_update()
    ).scalar_one()


def check_money(
    ledger: Ledger, money: Money, field: str = "amount", *, allow_zero: bool = False
) -> int:
    """The minor units of ``money`` if it is in the ledger's currency and positive."""
    if not isinstance(money, Money):
        raise InvalidAmount(f"{field} must be Money (minor units and currency)", field=field)
    if money.currency != ledger.currency:
        raise CurrencyMismatch(
            f"{field} is in {money.currency}; the ledger is in {ledger.currency}", field=field
        )
    return check_minor(money.amount, field, allow_zero=allow_zero)


def require_cash(ledger: Ledger, available: int, amount: int) -> None:
    """Raise InsufficientFunds, with the shortfall, unless ``available`` covers ``amount``."""
    if amount > available:
        shortfall = amount - available
        raise InsufficientFunds(
            f"the project has {format_minor(available, ledger.currency)} {ledger.currency} "
            f"available; {format_minor(shortfall, ledger.currency)} short",
            shortfall=shortfall,
            available=available,
            currency=ledger.currency,
        )


def available_funds(session: Session, project_id: uuid.UUID) -> Money:
    """The project's free cash: received and not spent, held or refunded."""
    ledger = get_ledger(session, project_id)
    balance = session.execute(
        select(Account.balance).where(Account.ledger_id == ledger.id, Account.key == CASH.key)
    ).scalar_one()
    return Money(balance, ledger.currency)


def available_funds_many(
    session: Session, project_ids: Iterable[uuid.UUID]
) -> dict[uuid.UUID, Money]:
    """Free cash of several projects at once (for an allocation run); projects without a
    ledger are left out."""
    rows = session.execute(
        select(Ledger.project_id, Ledger.currency, Account.balance)
        .join(Account, Account.ledger_id == Ledger.id)
        .where(Ledger.project_id.in_(list(project_ids)), Account.key == CASH.key)
    ).all()
    return {r.project_id: Money(r.balance, r.currency) for r in rows}


@dataclass(frozen=True, slots=True)
class Books:
    """A project's ledger as one write needs it, read in one statement under the lock:
    the accounts asked for that exist (cash always), the entry written earlier under the
    write's key (None if none) and the id the new entry will take."""

    ledger: Ledger
    accounts: dict[str, AccountRef]
    replayed: int | None
    entry_id: int


def read_books(
    session: Session, project_id: uuid.UUID, specs: Iterable[AccountSpec], *, key: str
) -> Books:
    """Lock the project's books and read what one write needs, in one statement (two on
    PostgreSQL: the replay check and the entry id come after the lock).

    The accounts' rows are locked in id order, cash (the ledger's first account) first, as
    ``lock_ledger`` does, so writers of one project queue on the cash row and read balances
    current under the lock. NotFound if the project has no ledger.
    """
    keys = list(dict.fromkeys([CASH.key, *(s.key for s in specs)]))
    # session.connection(): a column read needs none of the ORM's per-statement work
    session.flush()
    rows = (
        session.connection()
        .execute(_books_query(session), {"project_id": project_id, "keys": keys, "key": key})
        .all()
    )
    if not rows:
        raise NotFound(f"project {project_id} has no ledger", field="project_id")
    first = rows[0]
    # A detached stand-in: the write needs the ledger's id and currency, not a second read.
    ledger = Ledger(
        id=first.id, project_id=project_id, currency=first.currency, scale=first.scale,
        created_at=first.created_at,
    )  # fmt: skip
    found = {r.key: AccountRef(r.account_id, r.key, r.kind, r.balance) for r in rows}
    replayed, entry_id = first.replayed, first.entry_id
    if entry_id is None:
        # PostgreSQL: a statement reads the snapshot it started with, which a wait for the
        # lock leaves behind; an entry committed under the same key meanwhile is seen only
        # by a statement run after the lock (READ COMMITTED).
        replayed, entry_id = (
            session.connection().execute(_AFTER_LOCK, {"ledger_id": first.id, "key": key}).one()
        )
    return Books(ledger, found, replayed, int(entry_id))


_BOOKS_QUERIES: dict[str, Select[Any]] = {}
_AFTER_LOCK = select(
    select(Entry.id)
    .where(Entry.ledger_id == bindparam("ledger_id"), Entry.idempotency_key == bindparam("key"))
    .scalar_subquery(),
    entry_ids.next_value(),
)


def _books_query(session: Session) -> Select[Any]:
    """``read_books``' statement, built once per dialect with bound parameters (composing
    it anew cost more CPU than running it)."""
    dialect = session.get_bind().dialect.name
    query = _BOOKS_QUERIES.get(dialect)
    if query is None:
        replayed: Any = (
            select(Entry.id)
            .where(Entry.ledger_id == Ledger.id, Entry.idempotency_key == bindparam("key"))
            .correlate(Ledger)
            .scalar_subquery()
        )
        next_id: Any = select(func.coalesce(func.max(Entry.id), 0) + 1).scalar_subquery()
        if dialect == "postgresql":  # both after the lock, see read_books
            replayed, next_id = null(), null()
        # SQLite: writers are serialised from BEGIN IMMEDIATE on, so the snapshot is
        # current and max + 1 is free.
        columns = (
            Ledger.id, Ledger.currency, Ledger.scale, Ledger.created_at, Account.key,
            Account.id.label("account_id"), Account.kind, Account.balance,
            replayed.label("replayed"), next_id.label("entry_id"),
        )  # fmt: skip
        query = (
            select(*columns)
            .join(Account, Account.ledger_id == Ledger.id)
            .where(
                Ledger.project_id == bindparam("project_id"),
                Account.key.in_(bindparam("keys", expanding=True)),
            )
            .order_by(Account.id)
            .with_for_update(of=Account)
        )
        _BOOKS_QUERIES[dialect] = query
    return query


def complete_accounts(
    session: Session, books: Books, specs: Iterable[AccountSpec]
) -> dict[str, AccountRef]:
    """``books``' accounts plus those of ``specs`` not made yet (created at zero)."""
    missing = [s for s in specs if s.key not in books.accounts]
    if not missing:
        return books.accounts
    return {**books.accounts, **accounts(session, books.ledger, missing)}


def replayed_entry(session: Session, books: Books, digest: str) -> Entry | None:
    """The entry written earlier under the write's key (None if none); IdempotencyConflict
    if that request had another body."""
    if books.replayed is None:
        return None
    entry = session.get_one(Entry, books.replayed)
    if entry.request_hash != digest:
        raise IdempotencyConflict(
            f"idempotency key {entry.idempotency_key!r} was used with another request",
            field="key",
        )
    return entry


# ------------------------------------------------------------------------ idempotency


def request_hash(operation: str, body: Mapping[str, Any]) -> str:
    """SHA-256 of the operation and its arguments, canonically encoded."""
    payload = json.dumps({"op": operation, **body}, sort_keys=True, default=_encode)
    return hashlib.sha256(payload.encode()).hexdigest()


def _encode(value: object) -> object:
    if isinstance(value, Money):
        return [value.amount, value.currency]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, (list, tuple)):
        return list(value)
    return str(value)


def check_key(key: str) -> str:
    """An idempotency key: 1 to 200 characters."""
    if not isinstance(key, str) or not 0 < len(key) <= 200:
        raise InvalidOperation("the idempotency key must be 1 to 200 characters", field="key")
    return key


def replay(session: Session, ledger: Ledger, key: str, digest: str) -> Entry | None:
    """The entry written earlier under ``key`` (None if none); IdempotencyConflict if that
    request had another body."""
    entry = session.scalars(
        select(Entry).where(Entry.ledger_id == ledger.id, Entry.idempotency_key == key)
    ).first()
    if entry is not None and entry.request_hash != digest:
        raise IdempotencyConflict(
            f"idempotency key {key!r} was used with another request", field="key"
        )
    return entry


# --------------------------------------------------------------------------- entries


@dataclass(frozen=True, slots=True)
class Leg:
    """One posting to write: a signed amount (debit > 0) on an account, in a flow."""

    account: AccountRef
    amount: int
    flow: str


def next_entry_id(session: Session) -> int:
    """A fresh entry id (allocated before the postings are written, see migration 0002)."""
    if session.get_bind().dialect.name == "postgresql":
        return int(session.execute(select(entry_ids.next_value())).scalar_one())
    # SQLite: writers are serialised (BEGIN IMMEDIATE), so max + 1 is free.
    return int(session.execute(select(func.coalesce(func.max(Entry.id), 0) + 1)).scalar_one())


def write_entry(
    session: Session,
    ledger: Ledger,
    *,
    kind: str,
    key: str,
    digest: str,
    legs: Sequence[Leg],
    effective_at: datetime,
    entry_id: int | None = None,
    **columns: Any,
) -> Entry:
    """Write one balanced entry: its postings first, then the entry row (which closes it).

    Legs on the same account and flow are merged and zero legs dropped. Accounts that must
    not go below zero (cash, held, pledge receivables) are checked here against the balances
    read under the lock; the database checks them again.
    """
    merged: dict[tuple[int, str], int] = {}
    refs: dict[int, AccountRef] = {}
    for leg in legs:
        refs[leg.account.id] = leg.account
        merged[(leg.account.id, leg.flow)] = merged.get((leg.account.id, leg.flow), 0) + leg.amount
    rows = [(acc, amount, flow) for (acc, flow), amount in merged.items() if amount != 0]
    if sum(amount for _, amount, _ in rows) != 0 or len(rows) < 2:
        raise InvalidOperation("an entry needs at least two legs that sum to zero")
    delta: dict[int, int] = {}
    for acc, amount, _ in rows:
        delta[acc] = delta.get(acc, 0) + amount
    for acc, change in delta.items():
        ref = refs[acc]
        if ref.kind in AccountKind.NON_NEGATIVE and ref.balance + change < 0:
            if ref.kind == AccountKind.CASH:
                require_cash(ledger, ref.balance, -change)
            raise InvalidOperation(f"account {ref.key} would go below zero", field="amount")
    if entry_id is None:
        entry_id = next_entry_id(session)
    values = {
        **_ENTRY_DEFAULTS, "id": entry_id, "ledger_id": ledger.id, "kind": kind,
        "idempotency_key": key, "request_hash": digest, "effective_at": effective_at, **columns,
    }  # fmt: skip
    entry = Entry(**values)
    # Attached before anything is written (a failure here leaves nothing behind), as a
    # persistent object: the rows go in as two Core inserts, postings first (the entry row
    # closes the entry), without the cost of a unit-of-work flush.
    make_transient_to_detached(entry)
    session.add(entry)
    connection = session.connection()
    try:
        connection.execute(
            _INSERT_POSTINGS,
            [
                {"entry_id": entry_id, "account_id": acc, "amount": amount, "flow": flow}
                for acc, amount, flow in rows
            ],
        )
        connection.execute(_INSERT_ENTRY, values)
    except BaseException:
        session.expunge(entry)
        raise
    return entry


_ENTRY_DEFAULTS: dict[str, Any] = {
    **{name: None for name in Entry.__table__.columns.keys()},  # noqa: SIM118
    "memo": "",
}
_INSERT_POSTINGS = insert(Posting.__table__)  # type: ignore[arg-type]
_INSERT_ENTRY = insert(Entry.__table__)  # type: ignore[arg-type]
