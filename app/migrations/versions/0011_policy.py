"""policy: invitations to join a project (a cost share, users to enrol) await consent

A project may name another unit as co-funder or enrol its users only with that unit's
consent: ``project_invitations`` holds what is proposed until the unit's unit_manager
accepts or declines. ``project_shares`` and ``project_members`` keep holding only what is
in force, so every reader of them stays right without change. At most one pending
invitation per project and unit (a partial unique index on both engines).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 15:50:00
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GUID = advanced_alchemy.types.guid.GUID(length=16)
_UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)


def upgrade() -> None:
    op.create_table(
        "project_invitations",
        sa.Column("id", _GUID, nullable=False),
        sa.Column("project_id", _GUID, nullable=False),
        sa.Column("unit_id", _GUID, nullable=False),
        sa.Column("share_bp", sa.Integer(), nullable=True),
        sa.Column("member_ids", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("invited_by", _GUID, nullable=False),
        sa.Column("answered_by", _GUID, nullable=True),
        sa.Column("answered_at", _UTC, nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.CheckConstraint(
            "share_bp IS NULL OR share_bp BETWEEN 0 AND 10000",
            name=op.f("ck_project_invitations_share_range"),
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects.id"],
            name=op.f("fk_project_invitations_project_id_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_project_invitations_unit_id_units")
        ),
        sa.ForeignKeyConstraint(
            ["invited_by"], ["users.id"], name=op.f("fk_project_invitations_invited_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["answered_by"], ["users.id"], name=op.f("fk_project_invitations_answered_by_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_project_invitations")),
    )
    with op.batch_alter_table("project_invitations", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_project_invitations_project_id"), ["project_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_project_invitations_unit_id"), ["unit_id"], unique=False
        )
        batch_op.create_index(
            "uq_project_invitations_pending",
            ["project_id", "unit_id"],
            unique=True,
            sqlite_where=sa.text("status = 'pending'"),
            postgresql_where=sa.text("status = 'pending'"),
        )


def downgrade() -> None:
    with op.batch_alter_table("project_invitations", schema=None) as batch_op:
        batch_op.drop_index("uq_project_invitations_pending")
        batch_op.drop_index(batch_op.f("ix_project_invitations_unit_id"))
        batch_op.drop_index(batch_op.f("ix_project_invitations_project_id"))
    op.drop_table("project_invitations")
