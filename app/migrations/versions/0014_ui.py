"""ui: dashboard sessions and one-time login links

``ui_sessions`` holds a signed-in browser (the cookie's token stored as SHA-256, the API key
it was made from, if any, so that revoking the key ends it); ``ui_login_links`` holds the
links of ``copool users login-link`` (SHA-256, 15 minutes, used once).

Revision ID: 0014
Revises: 0011
Create Date: 2026-12-03 19:00:00
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_GUID = advanced_alchemy.types.guid.GUID(length=16)
_UTC = advanced_alchemy.types.datetime.DateTimeUTC(timezone=True)


def _common() -> list[sa.Column]:
    return [
        sa.Column("id", _GUID, nullable=False),
        sa.Column("user_id", _GUID, nullable=False),
        sa.Column("token_sha256", sa.String(length=64), nullable=False),
        sa.Column("expires_at", _UTC, nullable=False),
        sa.Column("sa_orm_sentinel", sa.Integer(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "ui_sessions",
        *_common(),
        sa.Column("api_key_id", _GUID, nullable=True),
        sa.Column("ended_at", _UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_ui_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["api_key_id"],
            ["api_keys.id"],
            name=op.f("fk_ui_sessions_api_key_id_api_keys"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ui_sessions")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_ui_sessions_token_sha256")),
    )
    op.create_index(op.f("ix_ui_sessions_user_id"), "ui_sessions", ["user_id"])
    op.create_table(
        "ui_login_links",
        *_common(),
        sa.Column("used_at", _UTC, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_ui_login_links_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ui_login_links")),
        sa.UniqueConstraint("token_sha256", name=op.f("uq_ui_login_links_token_sha256")),
    )
    op.create_index(op.f("ix_ui_login_links_user_id"), "ui_login_links", ["user_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_ui_login_links_user_id"), table_name="ui_login_links")
    op.drop_table("ui_login_links")
    op.drop_index(op.f("ix_ui_sessions_user_id"), table_name="ui_sessions")
    op.drop_table("ui_sessions")
