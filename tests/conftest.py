"""Database fixtures: every database test runs on SQLite and on PostgreSQL.

SQLite: the schema is migrated once per session into a template file, which each test
copies (a fresh database in a millisecond). PostgreSQL: a database of its own per test
session, migrated once; after each test every table is truncated. The PostgreSQL server
comes from ``COPOOL_TEST_POSTGRES_URL`` (``make test`` starts a throwaway one); without
it the PostgreSQL half is skipped, unless ``COPOOL_TEST_REQUIRE_POSTGRES=1`` says it must run.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.db import make_engine, make_session_factory
from app.migrate import upgrade

PG_URL = os.environ.get("COPOOL_TEST_POSTGRES_URL", "")
REQUIRE_PG = os.environ.get("COPOOL_TEST_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head, copied by each test."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A PostgreSQL database for this test session, migrated to head; dropped at the end."""
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("COPOOL_TEST_REQUIRE_POSTGRES=1 but COPOOL_TEST_POSTGRES_URL is unset")
        pytest.skip("PostgreSQL not configured (set COPOOL_TEST_POSTGRES_URL or run `make test`)")
    server = make_url(PG_URL)
    name = f"copool_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = server.set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def truncate_all(url: str) -> None:
    """Empty every table of the PostgreSQL database at ``url`` (tests only)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        tables = conn.execute(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                "AND tablename <> 'alembic_version'"
            )
        ).scalars()
        names = ", ".join(f'"{t}"' for t in tables)
        # the append-only tables refuse TRUNCATE by trigger (migration 0007); the test
        # server's superuser empties them with triggers off for this transaction only
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        if names:
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of an empty, migrated database of each engine."""
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / "copool.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
    else:
        url: str = request.getfixturevalue("postgres_database")
        try:
            yield url
        finally:
            truncate_all(url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on the test database (SQLite engines serialise writers, see app.db)."""
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    """A session on the test database; the test commits what it wants to keep."""
    with make_session_factory(engine)() as s:
        yield s
