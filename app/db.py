"""Engines and sessions for SQLite (embedded default) and PostgreSQL.

SQLite allows one writer at a time. copool makes that explicit instead of letting writers
collide in SQLite's busy handler (whose back-off sleeps gave p99 latencies of seconds):
every write transaction on a SQLite engine first takes an in-process lock, then runs
``BEGIN IMMEDIATE`` (which also serialises against other processes), and releases the
lock when the transaction ends. A check followed by an insert inside one transaction is
therefore atomic on SQLite, as the exclusion constraint makes it on PostgreSQL.

Read-only transactions (``read_only_engine``; the app uses them for GET and HEAD) take
no lock: on SQLite a deferred ``BEGIN`` with ``PRAGMA query_only`` on, which WAL runs
beside the one writer; on PostgreSQL ``BEGIN READ ONLY`` (psycopg's ``read_only``, no
extra round trip). Both engines refuse a write inside one, so a GET that writes by
accident fails loudly instead of queueing behind writers.

A write that must not wait (``NOWAIT``, e.g. an API key's ``last_used_at`` touched
during a GET) gets ``Busy`` at once when SQLite's writer lock is taken.

Behind PgBouncer in transaction mode (``COPOOL_PGBOUNCER=true``) a server connection serves
another client after every transaction, so nothing may live in the session: psycopg
prepares no statements (``prepare_threshold=None``) and, instead of the ``lock_timeout`` and
``jit`` startup options (PgBouncer refuses startup options), every transaction begins with
``set_config(…, is_local => true)``, i.e. ``SET LOCAL`` (one more statement per transaction).
copool sets nothing else per session; its only advisory lock is per transaction.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Busy

READ_ONLY = "copool_read_only"
"""Execution option: the transaction only reads (no writer lock; writes are refused)."""
NOWAIT = "copool_nowait"
"""Execution option: on SQLite, raise ``Busy`` at once instead of waiting for the writer lock."""
READ_METHODS = frozenset({"GET", "HEAD"})
"""HTTP methods whose requests run in read-only transactions (``app.main``)."""

LOCK_SQLSTATES = {
    "55P03": "lock_not_available",  # lock_timeout (or NOWAIT) ran out
    "40P01": "deadlock_detected",
    "40001": "serialization_failure",
}
"""PostgreSQL errors that mean "the same request may succeed if retried"."""
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def is_lock_failure(exc: BaseException) -> bool:
    """Whether a database error is a lock timeout, deadlock or serialization failure (on
    PostgreSQL by SQLSTATE, on SQLite by the BUSY/LOCKED result code): worth a retry."""
    orig = getattr(exc, "orig", None) or exc
    if getattr(orig, "sqlstate", None) in LOCK_SQLSTATES:
        return True
    code = getattr(orig, "sqlite_errorcode", None)
    # extended codes (SQLITE_BUSY_SNAPSHOT, …) keep the primary code in the low byte
    return isinstance(code, int) and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)


class _SerialisedConnection(sqlite3.Connection):
    """A sqlite3 connection whose COMMIT/ROLLBACK release the engine's writer lock."""

    writer_lock: threading.Lock
    holds_lock: bool = False
    query_only: bool = False

    def _release(self) -> None:
        if self.holds_lock:
            self.holds_lock = False
            self.writer_lock.release()

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()


def _ensure_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Put the file in WAL mode unless it is already; a connection opened at the same moment
    may hold the lock the switch needs, and SQLite refuses at once instead of waiting, so
    the switch is retried (a few milliseconds apart) until the other one has made it."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while str(cursor.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


def _sqlite_engine(url: str, busy_timeout_ms: int, echo: bool) -> Engine:
    lock = threading.Lock()
    engine = create_engine(
        url,
        echo=echo,
        connect_args={
            "check_same_thread": False,
            "isolation_level": None,  # we emit BEGIN ourselves
            "factory": _SerialisedConnection,
            "timeout": busy_timeout_ms / 1000,
        },
        pool_size=20,
        max_overflow=40,
        pool_pre_ping=False,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.writer_lock = lock
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        # WAL is a property of the file: set it only when missing, because switching the
        # mode needs a lock that another connection (the in-process job worker) may hold,
        # and SQLite answers that with "database is locked" without waiting
        _ensure_wal(cursor, busy_timeout_ms)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        dbapi_conn = conn.connection.driver_connection
        options = conn.get_execution_options()
        read_only = bool(options.get(READ_ONLY))
        if dbapi_conn.query_only != read_only:
            # Only when the pooled connection switches between reading and writing.
            conn.exec_driver_sql(f"PRAGMA query_only={int(read_only)}")
            dbapi_conn.query_only = read_only
        if read_only:
            conn.exec_driver_sql("BEGIN")  # deferred: a WAL reader, no writer lock
            return
        nowait = bool(options.get(NOWAIT))
        acquired = (
            lock.acquire(blocking=False) if nowait else lock.acquire(timeout=busy_timeout_ms / 1000)
        )
        if not acquired:
            raise Busy("the database is busy; retry shortly")
        dbapi_conn.holds_lock = True
        try:
            if nowait:  # another process may hold SQLite's own write lock: do not wait either
                conn.exec_driver_sql("PRAGMA busy_timeout=0")
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            finally:
                if nowait:
                    conn.exec_driver_sql(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        except BaseException:
            dbapi_conn._release()
            raise

    return engine


def make_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 20,
    sqlite_busy_timeout_ms: int = 30_000,
    echo: bool = False,
    pgbouncer: bool | None = None,
) -> Engine:
    """An engine for ``url``; SQLite engines serialise transactions (see the module doc).
    ``pgbouncer`` (default: ``COPOOL_PGBOUNCER``) keeps PostgreSQL sessions free of state."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, sqlite_busy_timeout_ms, echo)
    if pgbouncer is None:
        from app.settings import get_settings

        pgbouncer = get_settings().pgbouncer
    if pgbouncer:
        return _pgbouncer_engine(url, pool_size, max_overflow, sqlite_busy_timeout_ms, echo)
    return create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        # No ping per checkout (a round trip on every request); a connection that died
        # fails its request once (503 when psycopg says so) and leaves the pool.
        pool_pre_ping=False,
        # A lock wait ends in an error (503), never an endless hang. JIT off: the planner's
        # estimates for the slot search's reads passed the JIT threshold, and compiling took
        # 39 of 63 ms of a query that runs in milliseconds (OLTP queries never gain from it).
        connect_args={"options": f"-c lock_timeout={sqlite_busy_timeout_ms} -c jit=off"},
    )


PSYCOPG_PGBOUNCER_ARGS: dict[str, Any] = {"prepare_threshold": None}
"""psycopg connection arguments behind PgBouncer in transaction mode: no prepared statements."""


def _pgbouncer_engine(
    url: str, pool_size: int, max_overflow: int, lock_timeout_ms: int, echo: bool
) -> Engine:
    engine = create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=False,
        connect_args=dict(PSYCOPG_PGBOUNCER_ARGS),
    )
    settings = (
        f"SELECT set_config('lock_timeout', '{int(lock_timeout_ms)}', true), "
        "set_config('jit', 'off', true)"
    )

    @event.listens_for(engine, "begin")
    def _set_local(conn: Any) -> None:
        conn.exec_driver_sql(settings)

    return engine


def read_only_engine(engine: Engine) -> Engine:
    """``engine`` (same pool) whose transactions are read-only; make it once per engine."""
    options: dict[str, Any] = {READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True  # psycopg sends BEGIN READ ONLY
    return engine.execution_options(**options)


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded objects usable after commit (the API renders them then)."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session for CLI commands and background jobs: commit on success, roll back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
