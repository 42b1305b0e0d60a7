"""guard: API keys that expire, and the throttle's shared counters

- ``api_keys.expires_at``: after it the key answers 401 like a revoked one (null: never);
- ``throttle_counters``: fixed-window counters shared by every worker (``app.throttle``):
  failed authentications per client address, writes per API key. One row per bucket,
  reset when its window has passed. On PostgreSQL the table is UNLOGGED: it is not
  written to the WAL (cheap), and a crash empties it, which only forgets counts.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 16:00:00
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "expires_at", advanced_alchemy.types.datetime.DateTimeUTC(timezone=True),
                nullable=True,
            )
        )
    op.create_table(
        "throttle_counters",
        sa.Column("bucket", sa.String(length=80), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_throttle_counters")),
        comment="Fixed-window counters of app.throttle (failures per address, writes per key)",
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE throttle_counters SET UNLOGGED")


def downgrade() -> None:
    op.drop_table("throttle_counters")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("expires_at")
