"""jobs: run ownership and heartbeats, periodic job status, procrastinate's queue (PostgreSQL)

Allocation runs get ``attempts``, ``owner`` and ``heartbeat_at`` (both engines): the run rows
say who solves what and whether that worker is alive, so a dead worker's run is taken back.
``periodic_jobs`` keeps each periodic job's last run, result and error (both engines; on
SQLite it also decides which process runs a due job).

On PostgreSQL the procrastinate job queue's schema (tables ``procrastinate_*``, its types,
functions and triggers) is created from the SQL procrastinate ships (``SchemaManager``) for
the pinned version (procrastinate 3.x). A later procrastinate release that changes its
schema needs a migration of its own that applies procrastinate's migration files.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 16:00:00
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GUID = advanced_alchemy.types.guid.GUID(length=16)
UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("allocation_runs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("owner", sa.String(length=200), nullable=False, server_default=""))
        batch_op.add_column(sa.Column("heartbeat_at", UTC, nullable=True))
    op.create_table(
        "periodic_jobs",
        sa.Column("id", GUID, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("last_started_at", UTC, nullable=True),
        sa.Column("last_finished_at", UTC, nullable=True),
        sa.Column("last_status", sa.String(length=16), nullable=False),
        sa.Column("last_result", sa.JSON(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("runs", sa.Integer(), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_periodic_jobs")),
        sa.UniqueConstraint("name", name=op.f("uq_periodic_jobs_name")),
    )
    if op.get_bind().dialect.name == "postgresql":
        from procrastinate.schema import SchemaManager

        # the raw driver connection: no parameters, so psycopg runs the script as written
        op.get_bind().connection.driver_connection.execute(SchemaManager.get_schema())


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            """
            DO $$
            DECLARE r record;
            BEGIN
              FOR r IN SELECT tablename FROM pg_tables
                       WHERE schemaname = 'public' AND tablename LIKE 'procrastinate%' LOOP
                EXECUTE format('DROP TABLE IF EXISTS %I CASCADE', r.tablename);
              END LOOP;
              FOR r IN SELECT p.oid::regprocedure AS sig FROM pg_proc p
                       JOIN pg_namespace n ON n.oid = p.pronamespace
                       WHERE n.nspname = 'public' AND p.proname LIKE 'procrastinate%' LOOP
                EXECUTE format('DROP FUNCTION IF EXISTS %s CASCADE', r.sig);
              END LOOP;
              FOR r IN SELECT typname FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                       WHERE n.nspname = 'public' AND typname LIKE 'procrastinate%'
                       AND t.typtype IN ('e', 'c') LOOP
                EXECUTE format('DROP TYPE IF EXISTS %I CASCADE', r.typname);
              END LOOP;
            END $$;
            """
        )
    op.drop_table("periodic_jobs")
    with op.batch_alter_table("allocation_runs", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("owner")
        batch_op.drop_column("attempts")
