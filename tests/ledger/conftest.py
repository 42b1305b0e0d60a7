"""Small factories for ledger tests: a fake clock and fresh project ledgers."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from ledger import Money, open_ledger
from ledger.models import Ledger


class FakeClock:
    """An injectable clock that only moves when told to."""

    def __init__(self, start: datetime = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    """A fake clock starting 2026-03-01 09:00 UTC."""
    return FakeClock()


def eur(amount: int) -> Money:
    """``amount`` euro cents."""
    return Money(amount, "EUR")


def new_project(
    session: Session, currency: str = "EUR", clock: Callable[[], datetime] | None = None
) -> uuid.UUID:
    """A fresh project id with an opened ledger (committed)."""
    project_id = uuid.uuid4()
    if clock is None:
        open_ledger(session, project_id, currency)
    else:
        open_ledger(session, project_id, currency, clock=clock)
    session.commit()
    return project_id


def check_books(session: Session) -> None:
    """The database-wide invariants: every entry balances, caches equal their postings,
    nothing non-negative is negative, every hold resolved at most once."""
    assert (
        session.execute(text("SELECT coalesce(sum(amount), 0) FROM ledger_postings")).scalar_one()
        == 0
    )
    unbalanced = session.execute(
        text("SELECT entry_id FROM ledger_postings GROUP BY entry_id HAVING sum(amount) <> 0")
    ).all()
    assert unbalanced == []
    orphans = session.execute(
        text(
            "SELECT count(*) FROM ledger_postings p LEFT JOIN ledger_entries e "
            "ON e.id = p.entry_id WHERE e.id IS NULL"
        )
    ).scalar_one()
    assert orphans == 0
    drift = session.execute(
        text(
            "SELECT a.id, a.balance, coalesce(sum(p.amount), 0) FROM ledger_accounts a "
            "LEFT JOIN ledger_postings p ON p.account_id = a.id "
            "GROUP BY a.id, a.balance HAVING a.balance <> coalesce(sum(p.amount), 0)"
        )
    ).all()
    assert drift == []
    flow_drift = session.execute(
        text(
            "SELECT f.account_id, f.flow FROM ledger_account_flows f "
            "LEFT JOIN (SELECT account_id, flow, sum(amount) AS total FROM ledger_postings "
            "GROUP BY account_id, flow) p ON p.account_id = f.account_id AND p.flow = f.flow "
            "WHERE f.amount <> coalesce(p.total, 0)"
        )
    ).all()
    assert flow_drift == []
    missing_flows = session.execute(
        text(
            "SELECT p.account_id, p.flow FROM ledger_postings p LEFT JOIN ledger_account_flows f "
            "ON f.account_id = p.account_id AND f.flow = p.flow WHERE f.account_id IS NULL"
        )
    ).all()
    assert missing_flows == []
    negative = session.execute(
        text("SELECT key FROM ledger_accounts WHERE non_negative AND balance < 0")
    ).all()
    assert negative == []
    twice = session.execute(
        text(
            "SELECT resolves_hold_id FROM ledger_entries WHERE resolves_hold_id IS NOT NULL "
            "GROUP BY resolves_hold_id HAVING count(*) > 1"
        )
    ).all()
    assert twice == []
    session.rollback()  # end the read transaction (on SQLite it holds the writer lock)


def ledger_of(session: Session, project_id: uuid.UUID) -> Ledger:
    """The project's ledger row."""
    from ledger import get_ledger

    return get_ledger(session, project_id)
