"""copool's double-entry ledger: one ledger per joint project, in one currency.

Amounts are integer minor units (``Money(1234, "EUR")`` is 12.34 EUR), never floats. Every
write function takes the caller's SQLAlchemy ``Session``, an idempotency ``key`` (a retry
with the same key and body returns the first result; another body raises
``IdempotencyConflict``), writes inside a savepoint, and only flushes: the caller commits.

On SQLite the session must come from an engine that serialises transactions from their
first statement (``app.db.make_engine`` does: an in-process lock plus ``BEGIN IMMEDIATE``);
on PostgreSQL the ledger locks the project's cash row with ``SELECT … FOR UPDATE``.

    open_ledger / available_funds / available_funds_many         ledger.books
    place_hold / post_hold / void_hold / expire_hold / …          ledger.holds
    pledge / mark_pledge_met / receive_pledge / contribute / …    ledger.funding
    reverse                                                       ledger.reversals
    fund_statement / register / register_csv / unit_statement     ledger.statements
"""

from ledger.books import (
    Clock,
    available_funds,
    available_funds_many,
    get_ledger,
    open_ledger,
    utcnow,
)
from ledger.currency import Money
from ledger.funding import (
    contribute,
    contribute_in_kind,
    mark_pledge_met,
    paid_in,
    pledge,
    pledge_outstanding,
    receive_pledge,
    record_expense,
    refund,
    transfer,
)
from ledger.holds import (
    HoldState,
    expire_due_holds,
    expire_hold,
    hold_state,
    holds_for_reference,
    open_hold,
    place_hold,
    post_hold,
    void_hold,
)
from ledger.models import Account, AccountFlow, Entry, Hold, Ledger, Pledge, Posting
from ledger.reversals import reverse
from ledger.statements import (
    FundStatement,
    RegisterEntry,
    RegisterPage,
    UnitFunds,
    UnitStatement,
    fund_statement,
    register,
    register_csv,
    unit_statement,
)

__all__ = [
    "Account",
    "AccountFlow",
    "Clock",
    "Entry",
    "FundStatement",
    "Hold",
    "HoldState",
    "Ledger",
    "Money",
    "Pledge",
    "Posting",
    "RegisterEntry",
    "RegisterPage",
    "UnitFunds",
    "UnitStatement",
    "available_funds",
    "available_funds_many",
    "contribute",
    "contribute_in_kind",
    "expire_due_holds",
    "expire_hold",
    "fund_statement",
    "get_ledger",
    "hold_state",
    "holds_for_reference",
    "mark_pledge_met",
    "open_hold",
    "open_ledger",
    "paid_in",
    "place_hold",
    "pledge",
    "pledge_outstanding",
    "post_hold",
    "receive_pledge",
    "record_expense",
    "refund",
    "register",
    "register_csv",
    "reverse",
    "transfer",
    "unit_statement",
    "utcnow",
    "void_hold",
]
