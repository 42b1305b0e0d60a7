"""notify: the notification outbox, its deliveries, webhook endpoints and preferences

``notification_events`` is the outbox services write in their own transaction;
``notification_deliveries`` holds one row per event, recipient and channel (inbox, e-mail,
webhook) that the worker claims when due (``status``, ``next_attempt_at``);
``webhook_endpoints`` a unit's or a user's signed receivers; ``notification_preferences``
each user's channels per kind and the daily digest choice.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 18:40:22
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GUID = advanced_alchemy.types.guid.GUID(length=16)
_UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)


def upgrade() -> None:
    op.create_table(
        "notification_events",
        sa.Column("id", _GUID, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("subject_type", sa.String(length=40), nullable=False),
        sa.Column("subject_id", _GUID, nullable=False),
        sa.Column("unit_id", _GUID, nullable=True),
        sa.Column("unit_ids", sa.JSON(), nullable=False),
        sa.Column("actor_id", _GUID, nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_events")),
    )
    with op.batch_alter_table("notification_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_notification_events_kind"), ["kind"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_notification_events_unit_id"), ["unit_id"], unique=False
        )

    op.create_table(
        "notification_preferences",
        sa.Column("id", _GUID, nullable=False),
        sa.Column("user_id", _GUID, nullable=False),
        sa.Column("channels", sa.JSON(), nullable=False),
        sa.Column("email_digest", sa.Boolean(), nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_preferences_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_preferences")),
        sa.UniqueConstraint("user_id", name=op.f("uq_notification_preferences_user_id")),
    )
    op.create_table(
        "webhook_endpoints",
        sa.Column("id", _GUID, nullable=False),
        sa.Column("unit_id", _GUID, nullable=True),
        sa.Column("user_id", _GUID, nullable=True),
        sa.Column("created_by", _GUID, nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("events", sa.JSON(), nullable=False),
        sa.Column("secret", sa.String(length=100), nullable=False),
        sa.Column("previous_secret", sa.String(length=100), nullable=True),
        sa.Column("previous_secret_until", _UTC, nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("failing_since", _UTC, nullable=True),
        sa.Column("disabled_at", _UTC, nullable=True),
        sa.Column("deleted_at", _UTC, nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["created_by"], ["users.id"], name=op.f("fk_webhook_endpoints_created_by_users")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_webhook_endpoints_unit_id_units")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_webhook_endpoints_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_endpoints")),
    )
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_webhook_endpoints_unit_id"), ["unit_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_webhook_endpoints_user_id"), ["user_id"], unique=False)

    op.create_table(
        "notification_deliveries",
        sa.Column("id", _GUID, nullable=False),
        sa.Column("event_id", _GUID, nullable=False),
        sa.Column("user_id", _GUID, nullable=True),
        sa.Column("endpoint_id", _GUID, nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _UTC, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("delivered_at", _UTC, nullable=True),
        sa.Column("read_at", _UTC, nullable=True),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["endpoint_id"],
            ["webhook_endpoints.id"],
            name=op.f("fk_notification_deliveries_endpoint_id_webhook_endpoints"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["notification_events.id"],
            name=op.f("fk_notification_deliveries_event_id_notification_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_notification_deliveries_user_id_users")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_deliveries")),
    )
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_notification_deliveries_due", ["status", "next_attempt_at"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_notification_deliveries_endpoint_id"), ["endpoint_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_notification_deliveries_event_id"), ["event_id"], unique=False
        )
        batch_op.create_index(
            "ix_notification_deliveries_inbox", ["user_id", "channel", "read_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("notification_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_notification_deliveries_inbox")
        batch_op.drop_index(batch_op.f("ix_notification_deliveries_event_id"))
        batch_op.drop_index(batch_op.f("ix_notification_deliveries_endpoint_id"))
        batch_op.drop_index("ix_notification_deliveries_due")

    op.drop_table("notification_deliveries")
    with op.batch_alter_table("webhook_endpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_webhook_endpoints_user_id"))
        batch_op.drop_index(batch_op.f("ix_webhook_endpoints_unit_id"))

    op.drop_table("webhook_endpoints")
    op.drop_table("notification_preferences")
    with op.batch_alter_table("notification_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_notification_events_unit_id"))
        batch_op.drop_index(batch_op.f("ix_notification_events_kind"))

    op.drop_table("notification_events")
