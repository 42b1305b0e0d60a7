"""lifecycle: series occurrences keep their RECURRENCE-ID; the waitlist and its offers

``booking_series.sequence`` keeps a split series' feed SEQUENCE rising, ``notes`` its notes;
``bookings.recurrence_id`` is where a series' rule puts an occurrence (filled from
``start`` for the occurrences already stored: none could move alone before). Requests get
``waitlist`` (null: wait once a run left them out for capacity) and ``auto_accept``.
``freed_windows`` records capacity that came free, in the transaction that freed it;
``waitlist_offers`` the freed time offered to a waiting request until its deadline.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 18:50:00
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GUID = advanced_alchemy.types.guid.GUID(length=16)
_UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)


def _stamps() -> list[sa.Column]:  # type: ignore[type-arg]
    return [
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recurrence_id", _UTC, nullable=True))
    op.execute("UPDATE bookings SET recurrence_id = start WHERE series_id IS NOT NULL")
    with op.batch_alter_table("booking_series", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sequence", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("notes", sa.Text(), nullable=False, server_default=""))
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("waitlist", sa.Boolean(), nullable=True))
        batch_op.add_column(
            sa.Column("auto_accept", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    op.create_table(
        "freed_windows",
        sa.Column("id", _GUID, nullable=False),
        sa.Column("resource_id", _GUID, nullable=False),
        sa.Column("start", _UTC, nullable=False),
        sa.Column("end", _UTC, nullable=False),
        sa.Column("cause", sa.String(length=32), nullable=False),
        sa.Column("booking_id", _GUID, nullable=True),
        sa.Column("processed_at", _UTC, nullable=True),
        *_stamps(),
        # no foreign keys: their KEY SHARE locks deadlocked cancels with approvals (model)
        sa.PrimaryKeyConstraint("id", name=op.f("pk_freed_windows")),
    )
    with op.batch_alter_table("freed_windows", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_freed_windows_resource_id"), ["resource_id"])
        batch_op.create_index(batch_op.f("ix_freed_windows_processed_at"), ["processed_at"])
    op.create_table(
        "waitlist_offers",
        sa.Column("id", _GUID, nullable=False),
        sa.Column("request_id", _GUID, nullable=False),
        sa.Column("window_id", _GUID, nullable=True),
        sa.Column("resource_ids", sa.JSON(), nullable=False),
        sa.Column("start", _UTC, nullable=False),
        sa.Column("end", _UTC, nullable=False),
        sa.Column("cost", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("deadline", _UTC, nullable=False),
        sa.Column("answered_at", _UTC, nullable=True),
        sa.Column("booking_ids", sa.JSON(), nullable=False),
        *_stamps(),
        sa.ForeignKeyConstraint(
            ["request_id"], ["requests.id"], name=op.f("fk_waitlist_offers_request_id_requests")
        ),
        sa.ForeignKeyConstraint(
            ["window_id"],
            ["freed_windows.id"],
            name=op.f("fk_waitlist_offers_window_id_freed_windows"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_waitlist_offers")),
    )
    with op.batch_alter_table("waitlist_offers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_waitlist_offers_request_id"), ["request_id"])
        batch_op.create_index(batch_op.f("ix_waitlist_offers_status"), ["status"])


def downgrade() -> None:
    op.drop_table("waitlist_offers")
    op.drop_table("freed_windows")
    with op.batch_alter_table("requests", schema=None) as batch_op:
        batch_op.drop_column("auto_accept")
        batch_op.drop_column("waitlist")
    with op.batch_alter_table("booking_series", schema=None) as batch_op:
        batch_op.drop_column("notes")
        batch_op.drop_column("sequence")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_column("recurrence_id")
