"""Engines and sessions for SQLite (embedded default) and PostgreSQL.

SQLite allows one writer at a time. copool makes that explicit instead of letting writers
collide in SQLite's busy handler (whose back-off sleeps gave p99 latencies of seconds):
every transaction on a SQLite engine first takes an in-process lock, then runs
``BEGIN IMMEDIATE`` (which also serialises against other processes), and releases the
lock when the transaction ends. A check followed by an insert inside one transaction is
therefore atomic on SQLite, as the exclusion constraint makes it on PostgreSQL.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from app.errors import Busy


class _SerialisedConnection(sqlite3.Connection):
    """A sqlite3 connection whose COMMIT/ROLLBACK release the engine's writer lock."""

    writer_lock: threading.Lock
    holds_lock: bool = False

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
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        dbapi_conn = conn.connection.driver_connection
        if not lock.acquire(timeout=busy_timeout_ms / 1000):
            raise Busy("the database is busy; retry shortly")
        dbapi_conn.holds_lock = True
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
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
) -> Engine:
    """An engine for ``url``; SQLite engines serialise transactions (see the module doc)."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, sqlite_busy_timeout_ms, echo)
    return create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        # a lock wait ends in an error (503), never an endless hang
        connect_args={"options": f"-c lock_timeout={sqlite_busy_timeout_ms}"},
    )


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
