"""Tables of the ledger: one ``Ledger`` per project, its accounts, entries and postings.

Amounts are ``BigInteger`` minor units of the ledger's currency, never floats. A posting's
``amount`` is signed: positive debits its account, negative credits it; an entry balances
when its postings sum to zero. ``Account.balance`` (debits minus credits) and
``AccountFlow.amount`` (the same, split by the kind of entry that caused it) are caches
kept by database triggers on every posting insert, so they cannot drift from the postings.

Projects and units live in ``app/``; the ledger refers to them by plain UUID columns, without
foreign keys, so it can be used alone. The invariants the database enforces are created by
migration ``0002_ledger`` (see its docstring).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from advanced_alchemy.base import orm_registry
from advanced_alchemy.types import GUID, DateTimeUTC
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Sequence,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

BigId = BigInteger().with_variant(Integer(), "sqlite")
"""A 64-bit id; on SQLite an ``INTEGER PRIMARY KEY`` (the rowid), which is 64-bit too."""


class LedgerBase(DeclarativeBase):
    """Ledger tables share the app's metadata, so there is one Alembic history."""

    registry = orm_registry
    metadata = orm_registry.metadata


entry_ids = Sequence("ledger_entry_ids", metadata=LedgerBase.metadata)
"""Entry ids on PostgreSQL (allocated before the postings; SQLite takes max + 1 under its lock)."""


class AccountKind:
    """The kinds of account in a project ledger (``Account.kind``)."""

    CASH = "cash"  # the project's free cash (asset; never below zero)
    HELD = "held"  # cash reserved by pending holds (asset; never below zero)
    PLEDGES = "pledges"  # per contributing unit: pledged, not yet received (receivable)
    CONTRIBUTIONS = "contributions"  # per contributing unit: what it put in (credit-normal)
    IN_KIND = "in_kind"  # per contributing unit: value given in kind (goods, staff time)
    EXPENSE = "expense"  # per category: direct spending
    USAGE = "usage"  # per lending unit (and borrowing unit): booking charges it earned
    TRANSFERS = "transfers"  # admin transfers to and from other projects

    NON_NEGATIVE = frozenset({CASH, HELD, PLEDGES})


class EntryKind:
    """The kinds of entry (``Entry.kind``; also the ``flow`` of their postings)."""

    PLEDGE = "pledge"
    RECEIPT = "receipt"
    CONTRIBUTION = "contribution"
    IN_KIND = "in_kind"
    REFUND = "refund"
    TRANSFER_OUT = "transfer_out"
    TRANSFER_IN = "transfer_in"
    HOLD = "hold"
    CHARGE = "charge"  # a hold posted: the actual charge, the rest released
    RELEASE = "release"  # a hold voided
    EXPIRY = "expiry"  # a hold expired at its deadline
    EXPENSE = "expense"
    REVERSAL = "reversal"

    ALL = (
        PLEDGE, RECEIPT, CONTRIBUTION, IN_KIND, REFUND, TRANSFER_OUT, TRANSFER_IN,
        HOLD, CHARGE, RELEASE, EXPIRY, EXPENSE, REVERSAL,
    )  # fmt: skip
    NOT_REVERSIBLE = frozenset({HOLD, RELEASE, EXPIRY, TRANSFER_OUT, TRANSFER_IN, REVERSAL})


class Ledger(LedgerBase):
    """The books of one project, in one currency."""

    __tablename__ = "ledger_ledgers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    project_id: Mapped[uuid.UUID] = mapped_column(GUID(), unique=True)
    currency: Mapped[str] = mapped_column(String(3))
    scale: Mapped[int] = mapped_column(SmallInteger)
    """ISO 4217 minor-unit digits of ``currency``."""
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))


class Account(LedgerBase):
    """An account of a ledger; ``balance`` is debits minus credits in minor units (cached)."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        UniqueConstraint("ledger_id", "key"),
        CheckConstraint("NOT non_negative OR balance >= 0", name="balance_non_negative"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ledger_id: Mapped[int] = mapped_column(ForeignKey("ledger_ledgers.id"))
    key: Mapped[str] = mapped_column(String(160))
    """Unique in the ledger, e.g. ``cash``, ``pledges:<unit>``, ``usage:<lender>:<borrower>``."""
    kind: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[uuid.UUID | None] = mapped_column(GUID(), index=True)
    """The contributing unit, or for ``usage`` the lending unit that earns the charges."""
    counterparty_unit_id: Mapped[uuid.UUID | None] = mapped_column(GUID(), index=True)
    """For ``usage``: the borrowing unit that consumed the resource (if known)."""
    category: Mapped[str] = mapped_column(String(64), default="")
    non_negative: Mapped[bool] = mapped_column(Boolean)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    """Σ of the account's postings (minor units, debit positive); kept by a trigger."""


class AccountFlow(LedgerBase):
    """Σ of an account's postings per flow (the kind of entry; reversals net into it)."""

    __tablename__ = "ledger_account_flows"

    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"), primary_key=True)
    flow: Mapped[str] = mapped_column(String(16), primary_key=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    """Minor units, debit positive; kept by a trigger on posting insert."""


class Pledge(LedgerBase):
    """A unit's promise to fund a project; a conditional one is off the books until met."""

    __tablename__ = "ledger_pledges"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        UniqueConstraint("ledger_id", "idempotency_key"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ledger_id: Mapped[int] = mapped_column(ForeignKey("ledger_ledgers.id"), index=True)
    unit_id: Mapped[uuid.UUID] = mapped_column(GUID())
    amount: Mapped[int] = mapped_column(BigInteger)
    """Minor units."""
    conditional: Mapped[bool] = mapped_column(Boolean)
    condition: Mapped[str] = mapped_column(Text, default="")
    idempotency_key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))


class Hold(LedgerBase):
    """Cash reserved for an external reference (a booking) until posted, voided or expired."""

    __tablename__ = "ledger_holds"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    ledger_id: Mapped[int] = mapped_column(ForeignKey("ledger_ledgers.id"), index=True)
    reference: Mapped[str] = mapped_column(String(200), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    """Minor units reserved."""
    deadline: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    lender_unit_id: Mapped[uuid.UUID | None] = mapped_column(GUID())
    borrower_unit_id: Mapped[uuid.UUID | None] = mapped_column(GUID())
    category: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))


class Entry(LedgerBase):
    """A balanced set of postings, written once (corrections are reversing entries)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("ledger_id", "idempotency_key"),
        Index("ix_ledger_entries_ledger_effective", "ledger_id", "effective_at"),
        Index("ix_ledger_entries_ledger_kind", "ledger_id", "kind"),
        Index(
            "uq_ledger_entries_pledge_recognised",
            "pledge_id",
            unique=True,
            sqlite_where=text("kind = 'pledge'"),
            postgresql_where=text("kind = 'pledge'"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    ledger_id: Mapped[int] = mapped_column(ForeignKey("ledger_ledgers.id"))
    kind: Mapped[str] = mapped_column(String(16))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    request_hash: Mapped[str] = mapped_column(String(64))
    """SHA-256 of the request body, to tell a retry from a reuse of the key."""
    effective_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    memo: Mapped[str] = mapped_column(Text, default="")
    actor_id: Mapped[uuid.UUID | None] = mapped_column(GUID())
    unit_id: Mapped[uuid.UUID | None] = mapped_column(GUID())
    """The unit the entry concerns: contributor, or the lending unit of a charge."""
    counterparty_project_id: Mapped[uuid.UUID | None] = mapped_column(GUID())
    """For transfers: the other project."""
    pledge_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_pledges.id"), index=True)
    hold_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_holds.id"), index=True)
    """The hold this entry places (kind ``hold``) or resolves."""
    resolves_hold_id: Mapped[int | None] = mapped_column(ForeignKey("ledger_holds.id"), unique=True)
    """Set on the one entry that posts, voids or expires a hold: unique, so once."""
    reverses_entry_id: Mapped[int | None] = mapped_column(
        ForeignKey("ledger_entries.id"), unique=True
    )
    """Set on a reversal: the entry it reverses (unique: an entry is reversed at most once)."""


class Posting(LedgerBase):
    """One leg of an entry: a signed amount on one account (debit > 0 > credit)."""

    __tablename__ = "ledger_postings"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="amount_nonzero"),
        Index("ix_ledger_postings_account", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    entry_id: Mapped[int] = mapped_column(
        ForeignKey("ledger_entries.id", deferrable=True, initially="DEFERRED"), index=True
    )
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    """Minor units; positive debits the account, negative credits it."""
    flow: Mapped[str] = mapped_column(String(16))
    """The kind of entry this amount belongs to (a reversal's legs carry the reversed kind)."""
