"""Tampering with the books and the audit log: refused, or reported by the verify commands.

PostgreSQL: the raw-SQL tamper list runs as the app role that ``copool db grant`` makes,
and every statement is refused. SQLite has no roles (whoever can write the file can drop a
trigger), so each statement is either refused by a trigger or its effect is reported by
``copool ledger verify`` / ``copool audit verify``, naming the row.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner, Result
from litestar.testing import TestClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

import ledger
from app.audit.hashing import content_hash
from app.audit.models import AuditEvent, audit_chain
from app.auth.models import Role
from app.cli import main
from app.dbroles import drop_app_role
from app.main import create_app
from app.settings import Settings, get_settings
from tests.app.booking_world import build
from tests.app.conftest import World
from tests.conftest import truncate_all

MON = "2027-03-01"

Copool = Callable[..., Result]


def _slot(day: str, start: str, end: str) -> dict[str, str]:
    return {"start": f"{day}T{start}:00+01:00", "end": f"{day}T{end}:00+01:00"}


@pytest.fixture
def copool(monkeypatch: pytest.MonkeyPatch) -> Iterator[Copool]:
    """Run ``copool …`` with the given environment (settings re-read each time)."""

    def invoke(*args: str, **env: str) -> Result:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        get_settings.cache_clear()
        return CliRunner().invoke(main, list(args))

    yield invoke
    get_settings.cache_clear()


def _post(client: TestClient[Any], path: str, body: dict[str, Any], headers: Any) -> Any:
    answer = client.post(path, json=body, headers=headers)
    assert answer.status_code in (200, 201), answer.text
    return answer.json()


def _scenario(client: TestClient[Any], world: World) -> SimpleNamespace:
    """Bookings (one held, one cancelled, one charged), a pledge and a receipt."""
    w = build(world, funds=1_000_000)
    boss = world.user("b-boss", "B", Role.UNIT_MANAGER)
    base = {"resource_id": str(w.expert), "project_id": str(w.project)}
    held = _post(client, "/bookings", {**base, **_slot(MON, "10:00", "12:00")}, w.requester)
    gone = _post(client, "/bookings", {**base, **_slot(MON, "13:00", "14:00")}, w.requester)
    _post(client, f"/bookings/{gone['id']}/cancel", {"reason": "moved"}, w.requester)
    done = _post(client, "/bookings", {**base, **_slot(MON, "14:00", "15:00")}, w.requester)
    with world.session() as session:  # the charge a completed booking posts (its end is ahead)
        hold = ledger.holds_for_reference(session, done["id"])[0]
        ledger.post_hold(session, hold.id, ledger.Money(7_000, "EUR"), key=f"charge-{hold.id}")
    pledge = _post(
        client,
        f"/projects/{w.project}/funds/pledges",
        {"unit_id": str(w.borrower), "amount": 60_000},
        boss,
    )
    _post(
        client,
        f"/pledges/{pledge['pledge_id']}/receipts",
        {"amount": 50_000},
        world.headers("lead"),
    )
    return SimpleNamespace(world=w, held=held, pledge_id=pledge["pledge_id"])


def _ids(url: str) -> dict[str, Any]:
    """Rows the tamper cases aim at, read from the scenario's database."""
    engine = create_engine(url)
    with engine.connect() as conn:
        one = lambda sql: conn.execute(text(sql)).scalar_one()  # noqa: E731
        ids = {
            "open_hold": one(
                "SELECT min(id) FROM ledger_holds WHERE id NOT IN "
                "(SELECT resolves_hold_id FROM ledger_entries WHERE resolves_hold_id IS NOT NULL)"
            ),
            "receipt": one("SELECT min(id) FROM ledger_entries WHERE kind = 'receipt'"),
            "pledge": one("SELECT min(id) FROM ledger_pledges"),
            "cash": one("SELECT min(id) FROM ledger_accounts WHERE kind = 'cash'"),
            "events": one("SELECT count(*) FROM audit_events"),
            "sealed": one("SELECT count(*) FROM audit_chain"),
        }
        ids["receipt_posting"] = one(
            f"SELECT min(id) FROM ledger_postings WHERE entry_id = {ids['receipt']}"
        )
        ids["hold_entry"] = one(
            f"SELECT id FROM ledger_entries WHERE kind = 'hold' AND hold_id = {ids['open_hold']}"
        )
        middle = max(1, ids["sealed"] // 2)
        ids["middle"] = middle
        ids["middle_event"] = str(
            conn.execute(
                select(audit_chain.c.event_id).where(audit_chain.c.position == middle)
            ).scalar_one()
        )
    engine.dispose()
    return ids


@pytest.fixture
def scenario(client: TestClient[Any], world: World, db_url: str, copool: Copool) -> Any:
    """The scenario, its audit log sealed by a first ``copool audit verify``."""
    built = _scenario(client, world)
    sealed = copool("audit", "verify", COPOOL_DATABASE_URL=db_url)
    assert sealed.exit_code == 0, sealed.output
    return built


def test_verify_passes_on_a_clean_database_after_a_realistic_scenario(
    scenario: Any, db_url: str, copool: Copool
) -> None:
    books = copool("ledger", "verify", COPOOL_DATABASE_URL=db_url)
    assert books.exit_code == 0, books.output
    assert books.output.startswith("ledger verify: ok (")
    log = copool("audit", "verify", COPOOL_DATABASE_URL=db_url)
    assert log.exit_code == 0, log.output
    ids = _ids(db_url)
    assert ids["sealed"] == ids["events"] > 10  # everything settled was sealed
    assert f"{ids['events']} sealed, 0 unsealed" in log.output


# --------------------------------------------------------------------------- SQLite

NOFK = "PRAGMA foreign_keys = OFF"


def _rewrite_reason(conn: sqlite3.Connection, url: str, event_id: str) -> None:
    """Edit a sealed row's reason and recompute its content hash, as a careful forger would."""
    engine = create_engine(url)
    table = AuditEvent.__table__
    with engine.connect() as c:
        row = c.execute(select(table).where(table.c.id == uuid.UUID(event_id))).one()
    engine.dispose()
    forged = SimpleNamespace(**{**row._mapping, "reason": "nothing happened"})
    conn.execute("DROP TRIGGER audit_events_no_update")
    conn.execute(
        "UPDATE audit_events SET reason = 'nothing happened', content_hash = ? WHERE id = ?",
        (content_hash(forged), uuid.UUID(event_id).bytes),
    )


SQLITE_CASES: list[tuple[str, list[str], str | None]] = [
    # (what, statements, None if refused else the "table id" a verify command names)
    ("update an entry", ["UPDATE ledger_entries SET memo = 'x' WHERE id = {receipt}"], None),
    ("delete an entry", ["DELETE FROM ledger_entries WHERE id = {receipt}"], None),
    ("truncate entries", ["DELETE FROM ledger_entries"], None),
    (
        "update a posting",
        ["UPDATE ledger_postings SET amount = 1 WHERE id = {receipt_posting}"],
        None,
    ),
    ("truncate postings", ["DELETE FROM ledger_postings"], None),
    ("update a hold", ["UPDATE ledger_holds SET amount = 1 WHERE id = {open_hold}"], None),
    ("delete a hold", ["DELETE FROM ledger_holds WHERE id = {open_hold}"], None),
    ("update a pledge", ["UPDATE ledger_pledges SET amount = 1 WHERE id = {pledge}"], None),
    ("delete a pledge", ["DELETE FROM ledger_pledges"], None),
    ("update the audit log", ["UPDATE audit_events SET reason = 'x'"], None),
    ("truncate the audit log", ["DELETE FROM audit_events"], None),
    ("delete a chain link", ["DELETE FROM audit_chain WHERE position = {middle}"], None),
    ("raise a cached balance", ["UPDATE ledger_accounts SET balance = balance + 1000000"], None),
    ("zero a cached flow", ["UPDATE ledger_account_flows SET amount = 0"], None),
    (
        "forge an account",
        [
            "INSERT INTO ledger_accounts (ledger_id, key, kind, category, non_negative, balance) "
            "SELECT id, 'forged', 'cash', '', 1, 500 FROM ledger_ledgers",
        ],
        None,
    ),
    ("unflag cash", ["UPDATE ledger_accounts SET non_negative = 0 WHERE id = {cash}"], None),
    (
        "drop a trigger",
        ["DROP TRIGGER ledger_postings_no_update"],
        "trigger ledger_postings_no_update",
    ),
    (
        "change a posting",
        [
            "DROP TRIGGER ledger_postings_no_update",
            "UPDATE ledger_postings SET amount = amount + 100 WHERE id = {receipt_posting}",
        ],
        "ledger_entries {receipt}",
    ),
    (
        "delete an entry's postings",
        [
            "DROP TRIGGER ledger_postings_no_delete",
            "DELETE FROM ledger_postings WHERE entry_id = {receipt}",
        ],
        "ledger_entries {receipt}",
    ),
    (
        "delete an entry, trigger dropped",
        [
            NOFK,
            "DROP TRIGGER ledger_entries_no_delete",
            "DELETE FROM ledger_entries WHERE id = {receipt}",
        ],
        "ledger_postings {receipt_posting}",
    ),
    (
        "halve a hold",
        [
            "DROP TRIGGER ledger_holds_no_update",
            "UPDATE ledger_holds SET amount = amount / 2 WHERE id = {open_hold}",
        ],
        "ledger_holds {open_hold}",
    ),
    (
        "delete a hold, trigger dropped",
        [
            NOFK,
            "DROP TRIGGER ledger_holds_no_delete",
            "DELETE FROM ledger_holds WHERE id = {open_hold}",
        ],
        "ledger_entries {hold_entry}",
    ),
    (
        "inflate a pledge",
        [
            "DROP TRIGGER ledger_pledges_no_update",
            "UPDATE ledger_pledges SET amount = amount * 10 WHERE id = {pledge}",
        ],
        "ledger_pledges {pledge}",
    ),
    (
        "raise a cached balance, trigger dropped",
        [
            "DROP TRIGGER ledger_accounts_balance_guard",
            "UPDATE ledger_accounts SET balance = balance + 1000000 WHERE id = {cash}",
        ],
        "ledger_accounts {cash}",
    ),
    (
        "zero a cached flow, trigger dropped",
        [
            "DROP TRIGGER ledger_account_flows_update_guard",
            "UPDATE ledger_account_flows SET amount = 0 WHERE account_id = {cash}",
        ],
        "ledger_account_flows {cash}/",
    ),
    (
        "delete cached flows",
        [
            "DROP TRIGGER ledger_account_flows_no_delete",
            "DELETE FROM ledger_account_flows WHERE account_id = {cash}",
        ],
        "ledger_account_flows {cash}/",
    ),
    (
        "unflag cash, trigger dropped",
        [
            "DROP TRIGGER ledger_accounts_frozen",
            "UPDATE ledger_accounts SET non_negative = 0 WHERE id = {cash}",
        ],
        "ledger_accounts {cash}",
    ),
    (
        "edit a sealed audit row",
        [
            "DROP TRIGGER audit_events_no_update",
            "UPDATE audit_events SET reason = 'nothing happened' WHERE id = X'{middle_hex}'",
        ],
        "audit_events {middle_event}",
    ),
    (
        "delete a sealed audit row",
        [
            NOFK,
            "DROP TRIGGER audit_events_no_delete",
            "DELETE FROM audit_events WHERE id = X'{middle_hex}'",
        ],
        "audit_events {middle_event}",
    ),
    (
        "truncate the audit log, trigger dropped",
        [
            NOFK,
            "DROP TRIGGER audit_events_no_delete",
            "DELETE FROM audit_events",
        ],
        "audit_events ",
    ),
    (
        "insert below the seal",
        [
            "INSERT INTO audit_events (rowid, id, at, action, object_type, object_id, reason, "
            "created_at, updated_at, content_hash) SELECT 0, randomblob(16), at, 'forged', "
            "object_type, object_id, '', created_at, updated_at, content_hash FROM audit_events "
            "LIMIT 1",
        ],
        "inserted below the sealed part",
    ),
    (
        "delete a chain link, trigger dropped",
        [
            "DROP TRIGGER audit_chain_no_delete",
            "DELETE FROM audit_chain WHERE position = {middle}",
        ],
        "audit_chain {middle}",
    ),
    (
        "rewrite a chain link",
        [
            "DROP TRIGGER audit_chain_no_update",
            "UPDATE audit_chain SET chain_hash = prev_hash WHERE position = {middle}",
        ],
        "audit_chain {next}",
    ),
]


def _tamper_sqlite(path: Path, statements: list[Any]) -> bool:
    """Run the statements in one transaction; whether SQLite refused them."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        if NOFK in statements:
            conn.execute(NOFK)
        conn.execute("BEGIN")
        for statement in statements:
            if callable(statement):
                statement(conn)
            elif statement != NOFK:
                conn.execute(statement)
        conn.execute("COMMIT")
        return False
    except sqlite3.DatabaseError:
        conn.execute("ROLLBACK")
        return True
    finally:
        conn.close()


def test_on_sqlite_every_tampering_is_refused_or_reported(
    request: pytest.FixtureRequest, db_url: str, copool: Copool, tmp_path: Path
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("the SQLite half of the tamper list")
    request.getfixturevalue("scenario")
    source = Path(db_url.removeprefix("sqlite:///"))
    ids = _ids(db_url)
    ids["middle_hex"] = uuid.UUID(ids["middle_event"]).hex
    ids["next"] = ids["middle"] + 1
    rewrite = ("rewrite a sealed row and its hash", [], f"audit_events {ids['middle_event']}")
    for n, (what, statements, expected) in enumerate([*SQLITE_CASES, rewrite]):
        copy = tmp_path / f"case{n}.db"
        with sqlite3.connect(source) as live, sqlite3.connect(copy) as target:
            live.backup(target)  # WAL included, unlike a file copy
        url = f"sqlite:///{copy}"
        sql: list[Any] = [s.format(**ids) for s in statements]
        if not statements:
            sql = [lambda conn, url=url: _rewrite_reason(conn, url, ids["middle_event"])]
        refused = _tamper_sqlite(copy, sql)
        assert refused == (expected is None), what
        if refused:
            continue
        books = copool("ledger", "verify", COPOOL_DATABASE_URL=url)
        log = copool("audit", "verify", COPOOL_DATABASE_URL=url)
        assert (books.exit_code, log.exit_code) != (0, 0), what
        assert expected is not None and expected.format(**ids) in books.output + log.output, (
            what,
            books.output,
            log.output,
        )


# ----------------------------------------------------------------------- PostgreSQL

PG_TAMPER = [
    *(
        statement.format(t=table, c="position" if table == "audit_chain" else "id")
        for table in (
            "ledger_entries", "ledger_postings", "ledger_holds", "ledger_pledges",
            "ledger_ledgers", "audit_events", "audit_chain",
        )
        for statement in (
            "UPDATE {t} SET {c} = {c}",
            "DELETE FROM {t}",
            "TRUNCATE {t} CASCADE",
            "ALTER TABLE {t} DISABLE TRIGGER ALL",
            "ALTER TABLE {t} DISABLE TRIGGER {t}_append_only",
            "DROP TRIGGER {t}_append_only ON {t}",
        )
    ),
    "UPDATE ledger_accounts SET balance = balance + 1000000 WHERE kind = 'cash'",
    "UPDATE ledger_account_flows SET amount = 0",
    "DELETE FROM ledger_account_flows",
    "TRUNCATE ledger_accounts CASCADE",
    "ALTER TABLE ledger_accounts DISABLE TRIGGER ledger_accounts_cache_guard",
    "DROP TRIGGER ledger_accounts_cache_guard ON ledger_accounts",
    "INSERT INTO ledger_accounts (ledger_id, key, kind, category, non_negative, balance) "
    "SELECT id, 'forged', 'cash', '', true, 500 FROM ledger_ledgers",
    "SET session_replication_role = replica",
    "CREATE TEMP TABLE sneaky (id int)",
    "CREATE TABLE public.sneaky (id int)",
    "DROP TABLE audit_chain",
]  # fmt: skip


@pytest.fixture
def app_role(db_url: str, copool: Copool) -> Iterator[str]:
    """A fresh app role, granted by ``copool db grant`` as the owner; its database URL."""
    if not db_url.startswith("postgresql"):
        pytest.skip("roles exist on PostgreSQL only")
    role = f"copool_app_{uuid.uuid4().hex[:8]}"
    app_url = make_url(db_url).set(username=role).render_as_string(hide_password=False)
    granted = copool(
        "db", "grant", "--app-role", role, "--password-env", "TAMPER_APP_PW",
        COPOOL_DATABASE_URL=app_url, COPOOL_DATABASE_OWNER_URL=db_url,
        TAMPER_APP_PW="it's a secret",  # a quote, to see it quoted
    )  # fmt: skip
    assert granted.exit_code == 0, granted.output
    owner = create_engine(db_url)
    with owner.connect() as conn:
        query = text("SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = :r")
        assert conn.execute(query, {"r": role}).scalar_one()
    owner.dispose()
    yield app_url
    owner = create_engine(db_url, isolation_level="AUTOCOMMIT")
    with owner.connect() as conn:
        drop_app_role(conn, role)
    owner.dispose()


def test_on_postgresql_the_app_role_is_refused_every_tampering(
    app_role: str, db_url: str, copool: Copool, tmp_path: Path
) -> None:
    # the whole scenario runs through the app role: it has what the app needs
    app = create_app(Settings(database_url=app_role, api_key_touch_seconds=0))
    with TestClient(app=app) as client:
        _scenario(client, World(app=app))
    app.state.engine.dispose()
    env = {"COPOOL_DATABASE_URL": app_role}
    assert copool("audit", "verify", **env).exit_code == 0
    engine = create_engine(app_role)
    accepted, refused = [], set()
    for statement in PG_TAMPER:
        try:
            with engine.begin() as conn:
                conn.execute(text(statement))
            accepted.append(statement)
        except DBAPIError as exc:
            refused.add(getattr(exc.orig, "sqlstate", None))
    engine.dispose()
    assert accepted == []
    # refused for want of privilege (42501) or by a trigger (23001), never by accident
    assert refused == {"42501", "23001"}
    books = copool("ledger", "verify", **env)
    log = copool("audit", "verify", **env)
    assert (books.exit_code, log.exit_code) == (0, 0), books.output + log.output


def test_on_postgresql_a_backdated_audit_row_is_reported(
    app_role: str, copool: Copool, client: TestClient[Any], world: World
) -> None:
    _scenario(client, world)
    env = {"COPOOL_DATABASE_URL": app_role}
    assert copool("audit", "verify", **env).exit_code == 0
    engine = create_engine(app_role)
    with engine.begin() as conn:  # the app role may insert: it writes the log
        forged = conn.execute(
            text(
                "INSERT INTO audit_events (id, at, action, object_type, object_id, reason, "
                "created_at, updated_at, txn) SELECT gen_random_uuid(), at, 'forged', "
                "object_type, object_id, '', created_at, updated_at, 0 FROM audit_events "
                "LIMIT 1 RETURNING id"
            )
        ).scalar_one()
    engine.dispose()
    log = copool("audit", "verify", **env)
    assert log.exit_code == 1
    assert f"audit_events {forged}: inserted below the sealed part" in log.output


def test_the_single_url_test_database_still_empties_between_tests(
    db_url: str, client: TestClient[Any], world: World, copool: Copool
) -> None:
    _scenario(client, world)
    assert copool("audit", "verify", COPOOL_DATABASE_URL=db_url).exit_code == 0
    if db_url.startswith("sqlite"):
        return  # each SQLite test gets a fresh copy of the migrated template
    owner = create_engine(db_url)
    with pytest.raises(DBAPIError, match="cannot be truncated"), owner.begin() as conn:
        conn.execute(text("TRUNCATE audit_chain, audit_events CASCADE"))
    truncate_all(db_url)  # what the db_url fixture does after each test
    with owner.connect() as conn:
        for table in ("audit_events", "audit_chain", "ledger_entries", "ledger_accounts"):
            assert conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
    owner.dispose()


def test_on_postgresql_what_the_owner_can_still_do_is_reported(
    scenario: Any, db_url: str, copool: Copool
) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite has no owner: the SQLite tamper list covers it")
    ids = _ids(db_url)
    with _disabled(db_url, "ledger_postings", "audit_events") as owner:
        owner.execute(
            text(
                f"UPDATE ledger_postings SET amount = amount + 1 WHERE id = {ids['receipt_posting']}"
            )
        )
        owner.execute(
            text("UPDATE audit_events SET reason = 'nothing happened' WHERE id = :id"),
            {"id": uuid.UUID(ids["middle_event"])},
        )
        owner.commit()
        books = copool("ledger", "verify", COPOOL_DATABASE_URL=db_url)
        log = copool("audit", "verify", COPOOL_DATABASE_URL=db_url)
    assert books.exit_code == 1
    assert "trigger ledger_postings_append_only: is disabled" in books.output
    assert f"ledger_entries {ids['receipt']}: does not balance" in books.output
    assert log.exit_code == 1
    assert f"audit_events {ids['middle_event']}: edited" in log.output


@contextmanager
def _disabled(url: str, *tables: str) -> Iterator[Any]:
    """The owner's connection with the tables' append-only triggers off, on again after
    (the session's database is shared by every PostgreSQL test)."""
    engine = create_engine(url)
    conn = engine.connect()
    try:
        for table in tables:
            conn.execute(text(f"ALTER TABLE {table} DISABLE TRIGGER {table}_append_only"))
        yield conn
    finally:
        conn.rollback()
        for table in tables:
            conn.execute(text(f"ALTER TABLE {table} ENABLE TRIGGER {table}_append_only"))
        conn.commit()
        conn.close()
        engine.dispose()


def test_db_grant_refuses_the_owner_a_bad_name_and_sqlite(db_url: str, copool: Copool) -> None:
    env = {"COPOOL_DATABASE_URL": db_url}
    if db_url.startswith("sqlite"):
        refused = copool("db", "grant", "--app-role", "copool_app", **env)
        assert refused.exit_code == 1 and "PostgreSQL only" in refused.output
        return
    owner = make_url(db_url).username or ""
    same = copool("db", "grant", "--app-role", owner, **env)
    assert same.exit_code == 1 and "must not be the owner" in same.output
    bad = copool("db", "grant", "--app-role", 'x"; DROP TABLE audit_events; --', **env)
    assert bad.exit_code == 1 and "lower-case letters" in bad.output


def test_db_upgrade_migrates_with_the_owner_url(tmp_path: Path, copool: Copool) -> None:
    app_db, owner_db = tmp_path / "app.db", tmp_path / "owner.db"
    done = copool(
        "db", "upgrade",
        COPOOL_DATABASE_URL=f"sqlite:///{app_db}", COPOOL_DATABASE_OWNER_URL=f"sqlite:///{owner_db}",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert not app_db.exists()
    with sqlite3.connect(owner_db) as conn:
        assert conn.execute(
            "SELECT count(*) FROM sqlite_master WHERE name = 'audit_chain'"
        ).fetchone() == (1,)
