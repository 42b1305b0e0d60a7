"""PostgreSQL roles: the owner migrates, the app role only reads and writes rows.

The owner (``COPOOL_DATABASE_OWNER_URL``) owns every table, runs ``copool db upgrade`` and
``copool db grant``. The app role (``COPOOL_DATABASE_URL``) gets:

- ``SELECT, INSERT`` on the append-only tables (``APPEND_ONLY``): no UPDATE, DELETE or
  TRUNCATE, so the audit log and the books cannot be rewritten through it;
- ``SELECT, INSERT, UPDATE`` on the cached ledger accounts and flows (the posting trigger
  runs with the app's rights; the triggers of migration 0002 refuse any other change);
- ``SELECT, INSERT, UPDATE, DELETE`` on every other table, ``SELECT`` on
  ``alembic_version``, and the sequences;
- nothing else: not owning a table, it can neither ALTER it (``DISABLE TRIGGER``), drop
  its triggers nor TRUNCATE it; ``CREATE`` on the schema and ``TEMPORARY`` on the database
  are revoked from PUBLIC (a temporary table's trigger could otherwise run the app's SQL
  where the cache guards take it for the posting trigger).

``grant_app_role`` is idempotent; run it again after every upgrade (new tables).
"""

from __future__ import annotations

import re

from sqlalchemy import Connection, text

from app.errors import InvalidInput

APPEND_ONLY = (
    "audit_events", "audit_chain", "ledger_ledgers", "ledger_pledges", "ledger_holds",
    "ledger_entries", "ledger_postings",
)  # fmt: skip
"""Rows are written once: the app role may only read and insert them."""
CACHES = ("ledger_accounts", "ledger_account_flows")
"""Kept by the posting trigger, which runs with the app role's rights."""
READ_ONLY = ("alembic_version",)
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _quote(name: str) -> str:
    if not _NAME.match(name):
        raise InvalidInput(
            "a role name is 1 to 63 lower-case letters, digits or _", field="app_role"
        )
    return f'"{name}"'


def _ensure_role(conn: Connection, role: str) -> None:
    if conn.scalar(text("SELECT current_user")) == role:
        raise InvalidInput("the app role must not be the owner role", field="app_role")
    exists = conn.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role})
    if not exists:
        conn.execute(text(f"CREATE ROLE {_quote(role)} LOGIN"))


def _set_password(conn: Connection, role: str, password: str | None) -> None:
    if password:
        # ALTER ROLE takes no bind parameters; format() quotes the literal server-side
        statement = conn.scalar(
            text("SELECT format('ALTER ROLE %I PASSWORD %L', CAST(:r AS text), CAST(:p AS text))"),
            {"r": role, "p": password},
        )
        conn.execute(text(str(statement)))


def _check_separate(conn: Connection, role: str) -> None:
    powerful = conn.scalar(
        text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = :r"), {"r": role}
    )
    if powerful:
        raise InvalidInput("the app role must not be a superuser", field="app_role")
    member = conn.scalar(text("SELECT pg_has_role(:r, current_user, 'MEMBER')"), {"r": role})
    if member:
        raise InvalidInput("the app role must not be a member of the owner", field="app_role")


def _tables(conn: Connection) -> list[str]:
    return list(
        conn.scalars(
            text(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
                "ORDER BY tablename"
            )
        )
    )


def _privileges(table: str) -> str:
    if table in APPEND_ONLY:
        return "SELECT, INSERT"
    if table in CACHES:
        return "SELECT, INSERT, UPDATE"
    if table in READ_ONLY:
        return "SELECT"
    return "SELECT, INSERT, UPDATE, DELETE"


def grant_app_role(conn: Connection, role: str, password: str | None = None) -> list[str]:
    """Create ``role`` if needed and grant it exactly what the app needs (see the module
    docstring); run as the owner. Returns the tables granted, for the caller to report."""
    if conn.dialect.name != "postgresql":
        raise InvalidInput("database roles exist on PostgreSQL only", field="database_url")
    quoted = _quote(role)
    _ensure_role(conn, role)
    _check_separate(conn, role)
    _set_password(conn, role, password)
    database = conn.scalar(text("SELECT quote_ident(current_database())"))
    schema = conn.scalar(text("SELECT quote_ident(current_schema())"))
    conn.execute(text(f"REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC"))
    conn.execute(text(f"REVOKE ALL ON DATABASE {database} FROM {quoted}"))
    conn.execute(text(f"GRANT CONNECT ON DATABASE {database} TO {quoted}"))
    conn.execute(text(f"REVOKE CREATE ON SCHEMA {schema} FROM PUBLIC"))
    conn.execute(text(f"REVOKE ALL ON SCHEMA {schema} FROM {quoted}"))
    conn.execute(text(f"GRANT USAGE ON SCHEMA {schema} TO {quoted}"))
    conn.execute(text(f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {quoted}"))
    tables = _tables(conn)
    for table in tables:
        conn.execute(text(f'GRANT {_privileges(table)} ON {schema}."{table}" TO {quoted}'))
    conn.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {quoted}"))
    return tables


def drop_app_role(conn: Connection, role: str) -> None:
    """Take back what ``grant_app_role`` gave in this database and drop the role (tests)."""
    quoted = _quote(role)
    conn.execute(text(f"DROP OWNED BY {quoted}"))
    conn.execute(text(f"DROP ROLE IF EXISTS {quoted}"))
