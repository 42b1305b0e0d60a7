"""tamper: audit content hashes and chain, TRUNCATE refused, SQLite ledger caches guarded

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 16:00:00.000000

- ``audit_events.content_hash`` (SHA-256 of the row's content, set by the app at insert;
  existing rows are hashed here) and ``audit_events.txn`` (PostgreSQL: the inserting
  transaction's id, a column default, which orders the chain; SQLite: NULL, the chain
  follows the rowid). See ``app.audit.chain``.
- ``audit_chain``: one link per sealed audit row; append-only like the log itself.
- PostgreSQL: ``BEFORE TRUNCATE`` triggers on the audit log, the chain and every ledger
  table (the UPDATE/DELETE triggers of 0001 and 0002 do not fire on TRUNCATE).
- SQLite: the cached ``ledger_accounts.balance`` and ``ledger_account_flows`` may change
  only by the amount of the account's newest posting while that posting's entry is still
  open, i.e. inside the posting trigger of 0002; an account starts at zero. (PostgreSQL
  already refuses any change outside that trigger, see 0002.)
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NO_TRUNCATE = (
    'audit_events', 'audit_chain', 'ledger_ledgers', 'ledger_accounts', 'ledger_account_flows',
    'ledger_pledges', 'ledger_holds', 'ledger_entries', 'ledger_postings',
)
NEWEST_POSTING = (
    '(SELECT p.entry_id, p.amount, p.flow FROM ledger_postings p '
    'WHERE p.account_id = {account} ORDER BY p.id DESC LIMIT 1)'
)
OPEN = 'NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.id = n.entry_id)'


def upgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.add_column(sa.Column('content_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('txn', sa.BigInteger(), nullable=True))
        batch_op.create_index('ix_audit_events_txn_id', ['txn', 'id'], unique=False)
    op.create_table('audit_chain',
    sa.Column('position', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('event_id', advanced_alchemy.types.guid.GUID(length=16), nullable=False),
    sa.Column('prev_hash', sa.String(length=64), nullable=False),
    sa.Column('chain_hash', sa.String(length=64), nullable=False),
    sa.Column('sealed_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['event_id'], ['audit_events.id'], name=op.f('fk_audit_chain_event_id_audit_events')),
    sa.PrimaryKeyConstraint('position', name=op.f('pk_audit_chain')),
    sa.UniqueConstraint('event_id', name=op.f('uq_audit_chain_event_id'))
    )
    _hash_existing_events(postgresql)
    if postgresql:
        _postgresql_rules()
    else:
        _sqlite_rules()


def _hash_existing_events(postgresql: bool) -> None:
    """Rows written before this revision get their content hash (and txn 0) now."""
    from app.audit.hashing import content_hash
    from app.audit.models import AuditEvent

    events = AuditEvent.__table__
    bind = op.get_bind()
    if postgresql:
        op.execute('ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only')
    else:
        op.execute('DROP TRIGGER audit_events_no_update')
    columns = [events.c[name] for name in (
        'id', 'at', 'actor_user_id', 'actor_unit_id', 'action', 'object_type', 'object_id',
        'unit_id', 'before', 'after', 'reason')]
    rows = bind.execute(sa.select(*columns)).all()
    for row in rows:
        values = {'content_hash': content_hash(row)}
        if postgresql:
            values['txn'] = 0
        bind.execute(sa.update(events).where(events.c.id == row.id).values(**values))
    if postgresql:
        op.execute('ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only')
        op.execute('ALTER TABLE audit_events ALTER COLUMN txn SET DEFAULT (pg_current_xact_id()::text::bigint)')
    else:
        op.execute(
            'CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events '
            "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
        )


def _postgresql_rules() -> None:
    """TRUNCATE refused; the chain append-only (copool_refuse_change() comes from 0001)."""
    op.execute(
        """
        CREATE FUNCTION copool_refuse_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION '% cannot be truncated', TG_TABLE_NAME
                USING ERRCODE = 'restrict_violation';
        END $$;
        """
    )
    for table in NO_TRUNCATE:
        op.execute(
            f'CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} '
            'FOR EACH STATEMENT EXECUTE FUNCTION copool_refuse_truncate()'
        )
    op.execute(
        'CREATE TRIGGER audit_chain_append_only BEFORE UPDATE OR DELETE ON audit_chain '
        'FOR EACH ROW EXECUTE FUNCTION copool_refuse_change()'
    )
    # 0002's guard read NEW.balance on ledger_account_flows too (PL/pgSQL does not stop at a
    # false AND), so a client's change of a flow was refused with "no field balance"
    op.execute(
        """
        CREATE OR REPLACE FUNCTION ledger_cache_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- Depth 1 is a statement from a client; the posting trigger runs at depth 2.
            IF pg_trigger_depth() < 2 THEN
                IF TG_OP = 'INSERT' AND TG_TABLE_NAME = 'ledger_accounts' THEN
                    IF NEW.balance = 0 THEN RETURN NEW; END IF;
                END IF;
                RAISE EXCEPTION '% is kept by the posting trigger only', TG_TABLE_NAME
                    USING ERRCODE = 'restrict_violation';
            END IF;
            IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
            RETURN NEW;
        END $$;
        """
    )


def _sqlite_rules() -> None:
    """The chain append-only; ledger caches move only with their newest open posting."""
    for verb in ('UPDATE', 'DELETE'):
        op.execute(
            f'CREATE TRIGGER audit_chain_no_{verb.lower()} BEFORE {verb} ON audit_chain '
            "BEGIN SELECT RAISE(ABORT, 'audit_chain is append-only'); END"
        )
    refuse = "BEGIN SELECT RAISE(ABORT, '{table} is kept by the posting trigger only'); END"
    op.execute(
        'CREATE TRIGGER ledger_accounts_start_at_zero BEFORE INSERT ON ledger_accounts '
        'WHEN NEW.balance <> 0 ' + refuse.format(table='ledger_accounts')
    )
    newest = NEWEST_POSTING.format(account='NEW.id')
    op.execute(
        'CREATE TRIGGER ledger_accounts_balance_guard BEFORE UPDATE OF balance ON ledger_accounts '
        f'WHEN NOT EXISTS (SELECT 1 FROM {newest} n '
        f'WHERE n.amount = NEW.balance - OLD.balance AND {OPEN}) '
        + refuse.format(table='ledger_accounts')
    )
    newest = NEWEST_POSTING.format(account='NEW.account_id')
    op.execute(
        'CREATE TRIGGER ledger_account_flows_insert_guard BEFORE INSERT ON ledger_account_flows '
        f'WHEN NOT EXISTS (SELECT 1 FROM {newest} n '
        f'WHERE n.amount = NEW.amount AND n.flow = NEW.flow AND {OPEN}) '
        + refuse.format(table='ledger_account_flows')
    )
    op.execute(
        'CREATE TRIGGER ledger_account_flows_update_guard BEFORE UPDATE ON ledger_account_flows '
        'WHEN NEW.account_id IS NOT OLD.account_id OR NEW.flow IS NOT OLD.flow '
        f'OR NOT EXISTS (SELECT 1 FROM {newest} n '
        f'WHERE n.amount = NEW.amount - OLD.amount AND n.flow = NEW.flow AND {OPEN}) '
        + refuse.format(table='ledger_account_flows')
    )


def downgrade() -> None:
    postgresql = op.get_bind().dialect.name == 'postgresql'
    if postgresql:
        op.execute('DROP FUNCTION copool_refuse_truncate() CASCADE')
    else:
        for trigger in ('ledger_accounts_start_at_zero', 'ledger_accounts_balance_guard',
                        'ledger_account_flows_insert_guard', 'ledger_account_flows_update_guard'):
            op.execute(f'DROP TRIGGER {trigger}')
    op.drop_table('audit_chain')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_events_txn_id')
        batch_op.drop_column('txn')
        batch_op.drop_column('content_hash')
    if not postgresql:  # a batch that rebuilt the table dropped its triggers
        for verb in ('UPDATE', 'DELETE'):
            op.execute(
                f'CREATE TRIGGER IF NOT EXISTS audit_events_no_{verb.lower()} BEFORE {verb} '
                "ON audit_events BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
            )
