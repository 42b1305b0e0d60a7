"""one rule set: operator pairing, and why a request went back to open

- ``requests.operator_id``: one of the requesting unit's own experts who operates the
  devices of the request that need an operator (else the plan finds one);
- ``requests.reopen_code``: why an allocated request went back to open (``displaced_by``,
  ``dependency_cancelled``, ``resource_unavailable``); null for a request never reopened;
- ``bookings.operator_for_id``: on an operator's booking, the device booking it operates.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 13:10:00
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GUID = advanced_alchemy.types.guid.GUID(length=16)


def upgrade() -> None:
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("operator_id", GUID, nullable=True))
        batch_op.add_column(sa.Column("reopen_code", sa.String(length=32), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_requests_operator_id_resources"), "resources", ["operator_id"], ["id"]
        )
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("operator_for_id", GUID, nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_bookings_operator_for_id_bookings"), "bookings", ["operator_for_id"],
            ["id"],
        )
        batch_op.create_index(
            batch_op.f("ix_bookings_operator_for_id"), ["operator_for_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bookings_operator_for_id"))
        batch_op.drop_constraint(batch_op.f("fk_bookings_operator_for_id_bookings"), type_="foreignkey")
        batch_op.drop_column("operator_for_id")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_requests_operator_id_resources"), type_="foreignkey")
        batch_op.drop_column("reopen_code")
        batch_op.drop_column("operator_id")
