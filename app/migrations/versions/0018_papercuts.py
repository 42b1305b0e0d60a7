"""papercuts: units carry their time zone

A unit's ``time_zone`` (IANA name) is the zone its people read times in: e-mails and
explanations addressed to the unit show local times in it. Existing units get ``UTC``.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 18:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("units") as batch:
        batch.add_column(
            sa.Column("time_zone", sa.String(length=64), nullable=False, server_default="UTC")
        )


def downgrade() -> None:
    with op.batch_alter_table("units") as batch:
        batch.drop_column("time_zone")
