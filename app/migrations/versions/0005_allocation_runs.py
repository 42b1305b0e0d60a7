"""allocation runs: background optimisation over a snapshot, with progress, plan and apply report

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 04:40:00
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GUID = advanced_alchemy.types.guid.GUID(length=16)
UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)


def upgrade() -> None:
    op.create_table(
        "allocation_runs",
        sa.Column("id", GUID, nullable=False),
        sa.Column("created_by", GUID, nullable=False),
        sa.Column("unit_id", GUID, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("horizon_start", UTC, nullable=False),
        sa.Column("horizon_end", UTC, nullable=False),
        sa.Column("slot_minutes", sa.Integer(), nullable=False),
        sa.Column("time_limit_s", sa.Integer(), nullable=False),
        sa.Column("project_ids", sa.JSON(), nullable=False),
        sa.Column("unit_ids", sa.JSON(), nullable=False),
        sa.Column("emergency", sa.Boolean(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.Column("snapshot", sa.JSON(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("started_at", UTC, nullable=True),
        sa.Column("finished_at", UTC, nullable=True),
        sa.Column("applied_at", UTC, nullable=True),
        sa.Column("apply_report", sa.JSON(), nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"],
                                name=op.f("fk_allocation_runs_created_by_users")),
        sa.ForeignKeyConstraint(["unit_id"], ["units.id"],
                                name=op.f("fk_allocation_runs_unit_id_units")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocation_runs")),
    )
    with op.batch_alter_table("allocation_runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_allocation_runs_unit_id"), ["unit_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_allocation_runs_status"), ["status"], unique=False)


def downgrade() -> None:
    op.drop_table("allocation_runs")
