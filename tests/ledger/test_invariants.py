"""Raw SQL cannot break the ledger's rules: the database refuses it on both engines."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ledger import contribute, place_hold, record_expense, void_hold
from ledger.models import Entry
from tests.ledger.conftest import FakeClock, check_books, eur, new_project

RAW_ENTRY = 9_000_000


def _funded(session: Session, clock: FakeClock) -> tuple[uuid.UUID, dict[str, int]]:
    project = new_project(session, clock=clock)
    contribute(session, project, uuid.uuid4(), eur(1000), key="c", clock=clock)
    record_expense(session, project, [("travel", eur(1))], key="x", clock=clock)
    session.commit()
    rows = session.execute(text("SELECT key, id FROM ledger_accounts")).all()
    session.commit()  # on SQLite even a read holds the writer lock until the transaction ends
    return project, {k: i for k, i in rows}


def _insert_entry(conn, entry_id: int, ledger_id: int = 1, **extra: object) -> None:  # type: ignore[no-untyped-def]
    cols = {
        "id": entry_id, "ledger_id": ledger_id, "kind": "expense",
        "idempotency_key": f"raw{entry_id}", "request_hash": "x",
        "effective_at": "2026-03-01 09:00:00", "memo": "",
        **extra,
    }  # fmt: skip
    names, params = ", ".join(cols), ", ".join(f":{c}" for c in cols)
    conn.execute(text(f"INSERT INTO ledger_entries ({names}) VALUES ({params})"), cols)


def _insert_posting(conn, entry_id: int, account_id: int, amount: int) -> None:  # type: ignore[no-untyped-def]
    conn.execute(
        text(
            "INSERT INTO ledger_postings (entry_id, account_id, amount, flow) "
            "VALUES (:e, :a, :m, 'expense')"
        ),
        {"e": entry_id, "a": account_id, "m": amount},
    )


def _ledger_id(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT id FROM ledger_ledgers")).scalar_one()


@pytest.mark.parametrize("postings_first", [True, False])
def test_an_unbalanced_entry_is_refused(
    engine: Engine, session: Session, clock: FakeClock, postings_first: bool
) -> None:
    _, acc = _funded(session, clock)
    ledger_id = _ledger_id(engine)
    with pytest.raises(DBAPIError), engine.begin() as conn:
        if not postings_first:
            _insert_entry(conn, RAW_ENTRY, ledger_id)
        _insert_posting(conn, RAW_ENTRY, acc["expense:travel"], 50)
        _insert_posting(conn, RAW_ENTRY, acc["cash"], -40)
        if postings_first:
            _insert_entry(conn, RAW_ENTRY, ledger_id)
    check_books(session)
    assert session.get(Entry, RAW_ENTRY) is None


def test_an_entry_with_one_leg_or_none_is_refused(
    engine: Engine, session: Session, clock: FakeClock
) -> None:
    _funded(session, clock)
    ledger_id = _ledger_id(engine)
    with pytest.raises(DBAPIError), engine.begin() as conn:
        _insert_entry(conn, RAW_ENTRY, ledger_id)


def test_a_posting_without_its_entry_fails_at_commit(
    engine: Engine, session: Session, clock: FakeClock
) -> None:
    _, acc = _funded(session, clock)
    with pytest.raises(DBAPIError), engine.begin() as conn:
        _insert_posting(conn, RAW_ENTRY, acc["expense:travel"], 5)
        _insert_posting(conn, RAW_ENTRY, acc["cash"], -5)
    check_books(session)


def test_a_leg_cannot_be_added_to_a_closed_entry(
    engine: Engine, session: Session, clock: FakeClock
) -> None:
    _, acc = _funded(session, clock)
    entry_id = session.execute(text("SELECT max(id) FROM ledger_entries")).scalar_one()
    session.commit()
    with pytest.raises(DBAPIError), engine.begin() as conn:
        _insert_posting(conn, entry_id, acc["expense:travel"], 5)
        _insert_posting(conn, entry_id, acc["cash"], -5)
    check_books(session)


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE ledger_postings SET amount = amount * 2",
        "DELETE FROM ledger_postings",
        "UPDATE ledger_entries SET memo = 'edited'",
        "DELETE FROM ledger_entries",
        "UPDATE ledger_holds SET amount = 1",
        "DELETE FROM ledger_holds",
        "UPDATE ledger_pledges SET amount = 1",
        "UPDATE ledger_ledgers SET currency = 'USD'",
        "DELETE FROM ledger_accounts",
        "UPDATE ledger_accounts SET key = 'renamed'",
        "DELETE FROM ledger_account_flows",
    ],
)
def test_the_books_are_append_only(
    engine: Engine, session: Session, clock: FakeClock, statement: str
) -> None:
    project, _ = _funded(session, clock)
    hold = place_hold(
        session, project, eur(5), key="h", reference="b1", deadline=clock.now + timedelta(days=1),
        lender_unit_id=uuid.uuid4(), clock=clock,
    )  # fmt: skip
    from ledger import pledge

    pledge(session, project, uuid.uuid4(), eur(5), key="p", clock=clock)
    session.commit()
    assert hold.id
    with pytest.raises(DBAPIError), engine.begin() as conn:
        conn.execute(text(statement))
    check_books(session)


def test_cached_balances_cannot_be_edited_on_postgresql(
    engine: Engine, session: Session, clock: FakeClock
) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite triggers cannot tell the posting trigger from a client")
    _funded(session, clock)
    for statement in (
        "UPDATE ledger_accounts SET balance = balance + 100 WHERE key = 'cash'",
        "UPDATE ledger_account_flows SET amount = 0",
        "INSERT INTO ledger_accounts (ledger_id, key, kind, category, non_negative, balance) "
        "SELECT id, 'forged', 'cash', '', true, 500 FROM ledger_ledgers",
    ):
        with pytest.raises(DBAPIError), engine.begin() as conn:
            conn.execute(text(statement))
    check_books(session)


def test_cash_cannot_go_below_zero(engine: Engine, session: Session, clock: FakeClock) -> None:
    _, acc = _funded(session, clock)
    ledger_id = _ledger_id(engine)
    with pytest.raises(DBAPIError), engine.begin() as conn:
        # A balanced entry that spends more than the 9.99 EUR the project has.
        _insert_posting(conn, RAW_ENTRY, acc["expense:travel"], 1000)
        _insert_posting(conn, RAW_ENTRY, acc["cash"], -1000)
        _insert_entry(conn, RAW_ENTRY, ledger_id)
    check_books(session)
    assert (
        session.execute(text("SELECT balance FROM ledger_accounts WHERE key = 'cash'")).scalar_one()
        == 999
    )


def test_a_hold_resolves_at_most_once(engine: Engine, session: Session, clock: FakeClock) -> None:
    project, acc = _funded(session, clock)
    hold = place_hold(
        session, project, eur(100), key="h", reference="b1", deadline=clock.now + timedelta(days=1),
        lender_unit_id=uuid.uuid4(), clock=clock,
    )  # fmt: skip
    void_hold(session, hold.id, key="v", clock=clock)
    session.commit()
    acc = dict(session.execute(text("SELECT key, id FROM ledger_accounts")).all())  # type: ignore[arg-type]
    session.commit()
    ledger_id = _ledger_id(engine)
    with pytest.raises(DBAPIError), engine.begin() as conn:
        # A second, balanced "void" of the same hold.
        _insert_posting(conn, RAW_ENTRY, acc["cash"], 100)
        _insert_posting(conn, RAW_ENTRY, acc["expense:travel"], -100)
        _insert_entry(conn, RAW_ENTRY, ledger_id, kind="release", resolves_hold_id=hold.id)
    check_books(session)
