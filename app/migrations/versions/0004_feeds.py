"""feeds: calendar feed subscriptions (secret URLs stored as SHA-256)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 05:00:00.000000
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('feed_subscriptions',
    sa.Column('id', advanced_alchemy.types.guid.GUID(length=16), nullable=False),
    sa.Column('user_id', advanced_alchemy.types.guid.GUID(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('target_id', advanced_alchemy.types.guid.GUID(length=16), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('time_zone', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('token_sha256', sa.String(length=64), nullable=False),
    sa.Column('rotated_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
    sa.Column('revoked_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=True),
    sa.Column('sa_orm_sentinel', sa.Integer(), nullable=True),
    sa.Column('created_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.Column('updated_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_feed_subscriptions_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feed_subscriptions')),
    sa.UniqueConstraint('token_sha256', name=op.f('uq_feed_subscriptions_token_sha256'))
    )
    with op.batch_alter_table('feed_subscriptions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_feed_subscriptions_user_id'), ['user_id'], unique=False)


def downgrade() -> None:
    op.drop_table('feed_subscriptions')
