"""Exceptions of the ledger; ``app/`` maps each to an HTTP status in one table.

    LedgerError
    ├── InvalidAmount          an amount is not a positive integer of minor units (names it)
    ├── UnknownCurrency        the code is not an ISO 4217 currency this ledger knows
    ├── CurrencyMismatch       the amount's currency is not the ledger's currency
    ├── InvalidShares          agreed cost shares do not sum to 10,000 basis points
    ├── NotFound               no such ledger, hold, pledge or entry
    ├── IdempotencyConflict    the key was used before with another request body
    ├── InsufficientFunds      the project's free cash is short (``shortfall`` says by how much)
    └── InvalidOperation       the request clashes with the state of the ledger
        ├── HoldAlreadyResolved    the hold was posted, voided or expired before
        ├── HoldExpired            the hold's deadline passed: it can only be expired
        ├── HoldNotExpired         expiring a hold before its deadline
        ├── ExceedsHold            posting more than the hold
        ├── ExceedsOutstanding     a receipt above what the pledge still owes, a refund above
        │                          what the unit paid in, or a reversal a later entry depends on
        ├── PledgeState            marking met a pledge that is unconditional or met already
        └── NotReversible          the entry is of a kind that cannot be reversed, or was already

Every refusal leaves the database as it was: no entry, posting or hold is half-written.
"""

from __future__ import annotations

from typing import Any


class LedgerError(Exception):
    """Base of every error the ledger raises on purpose."""

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class InvalidAmount(LedgerError):
    """An amount is not a positive ``int`` of minor units (floats and bools are refused)."""


class UnknownCurrency(LedgerError):
    """The currency code is not in the ledger's ISO 4217 table."""


class CurrencyMismatch(LedgerError):
    """The amount is in another currency than the ledger (or the other project's ledger)."""


class InvalidShares(LedgerError):
    """Agreed cost shares must be 0..10,000 basis points each and sum to exactly 10,000."""


class NotFound(LedgerError):
    """The ledger, hold, pledge or entry does not exist."""


class IdempotencyConflict(LedgerError):
    """The idempotency key was already used with a different request body."""


class InsufficientFunds(LedgerError):
    """The project's free cash cannot cover the amount; ``shortfall`` is the missing sum."""

    def __init__(self, detail: str, *, shortfall: int, available: int, currency: str) -> None:
        super().__init__(detail, field="amount", shortfall=shortfall, available=available)
        self.shortfall = shortfall
        self.available = available
        self.currency = currency


class InvalidOperation(LedgerError):
    """The request is well-formed but clashes with the current state of the ledger."""


class HoldAlreadyResolved(InvalidOperation):
    """The hold was already posted, voided or expired (a hold resolves at most once)."""


class HoldExpired(InvalidOperation):
    """The hold's deadline has passed; it can no longer be posted or voided, only expired."""


class HoldNotExpired(InvalidOperation):
    """The hold's deadline has not passed yet, so it cannot be expired."""


class ExceedsHold(InvalidOperation):
    """A hold can post at most the amount it holds."""


class ExceedsOutstanding(InvalidOperation):
    """The amount is above what is outstanding (pledge balance, paid-in funds, reversible sum)."""


class PledgeState(InvalidOperation):
    """Only an unmet conditional pledge can be marked met."""


class NotReversible(InvalidOperation):
    """Holds and their releases, transfers and reversals cannot be reversed; nor twice."""
