"""The frequent writes cost one read under the lock and their inserts, and a refusal among
them leaves nothing behind although they run without a savepoint."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from ledger import available_funds, contribute, open_hold, place_hold, record_expense, void_hold
from ledger.errors import IdempotencyConflict, InsufficientFunds
from ledger.models import Account, Hold, Posting
from tests.ledger.conftest import FakeClock, check_books, eur, new_project


@contextmanager
def _statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "PRAGMA")):
            seen.append(statement.lstrip().split(None, 2)[0].upper())

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def _hold(session: Session, project: uuid.UUID, clock: FakeClock, cents: int, key: str) -> Hold:
    return place_hold(
        session, project, eur(cents), key=key, reference=key,
        deadline=clock.now + timedelta(days=1), lender_unit_id=uuid.UUID(int=7), clock=clock,
    )  # fmt: skip


def test_a_hold_is_one_read_and_three_inserts(
    engine: Engine, session: Session, clock: FakeClock
) -> None:
    project = new_project(session, clock=clock)
    contribute(session, project, uuid.UUID(int=1), eur(10_000), key="fund", clock=clock)
    session.commit()
    with _statements(engine) as seen:
        hold = _hold(session, project, clock, 4_000, "h1")
    # PostgreSQL reads the replay check and the entry id after the lock, in a second read
    reads = ["SELECT", "SELECT"] if engine.dialect.name == "postgresql" else ["SELECT"]
    assert seen == [*reads, "INSERT", "INSERT", "INSERT"], seen
    session.commit()
    assert hold.id is not None and available_funds(session, project) == eur(6_000)
    # the retry replays the first hold, and the key with another body is refused
    assert _hold(session, project, clock, 4_000, "h1").id == hold.id
    with pytest.raises(IdempotencyConflict):
        _hold(session, project, clock, 4_001, "h1")
    session.rollback()
    check_books(session)


@pytest.mark.parametrize(
    "refused",
    [
        lambda s, p, c: _hold(s, p, c, 20_000, "h-big"),
        lambda s, p, c: record_expense(s, p, [("new-category", eur(20_000))], key="x", clock=c),
    ],
    ids=["hold", "expense"],
)
def test_a_refused_write_leaves_nothing_and_the_session_carries_on(
    engine: Engine,
    session: Session,
    clock: FakeClock,
    refused: Callable[[Session, uuid.UUID, FakeClock], object],
) -> None:
    project = new_project(session, clock=clock)
    contribute(session, project, uuid.UUID(int=1), eur(10_000), key="fund", clock=clock)
    session.commit()
    counts = (
        session.scalar(select(func.count()).select_from(Posting)),
        session.scalar(select(func.count()).select_from(Hold)),
        session.scalar(select(func.count()).select_from(Account)),
    )
    with _statements(engine) as seen, pytest.raises(InsufficientFunds):
        refused(session, project, clock)
    # refused on the read (PostgreSQL: the two reads), before any write
    reads = ["SELECT", "SELECT"] if engine.dialect.name == "postgresql" else ["SELECT"]
    assert seen == reads, seen
    _hold(session, project, clock, 3_000, "h-small")  # same transaction, no rollback
    session.commit()
    assert session.scalar(select(func.count()).select_from(Posting)) == counts[0] + 2
    assert session.scalar(select(func.count()).select_from(Hold)) == counts[1] + 1
    assert session.scalar(select(func.count()).select_from(Account)) == counts[2]
    assert available_funds(session, project) == eur(7_000)
    check_books(session)


def test_the_open_hold_of_a_reference_is_one_read_however_many_came_before(
    engine: Engine, session: Session, clock: FakeClock
) -> None:
    """A booking moved again and again has one voided hold per earlier slot; finding the
    one still open reads once (it read every hold and each one's resolving entry)."""
    project = new_project(session, clock=clock)
    contribute(session, project, uuid.UUID(int=1), eur(10_000), key="fund", clock=clock)
    assert open_hold(session, "booking-1") is None
    for n in range(5):
        held = place_hold(
            session, project, eur(100 + n), key=f"hold-{n}", reference="booking-1",
            deadline=clock.now + timedelta(days=1), lender_unit_id=uuid.UUID(int=7), clock=clock,
        )  # fmt: skip
        if n < 4:
            void_hold(session, held.id, key=f"void-{n}", clock=clock)
    session.commit()
    with _statements(engine) as seen:
        found = open_hold(session, "booking-1")
    assert found is not None and (found.id, found.amount) == (held.id, 104)
    assert seen == ["SELECT"], seen
    void_hold(session, held.id, key="void-4", clock=clock)
    assert open_hold(session, "booking-1") is None
    assert open_hold(session, "another") is None
