"""ledger: project ledgers, accounts, entries, postings, holds, pledges, and their invariants

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 04:30:00.000000

Besides the tables, this revision makes the database itself enforce the ledger's rules,
so raw SQL cannot break them either:

- Every entry balances (Σ postings = 0, at least two legs).
  On both engines an entry's postings are written first and the entry row last: a posting
  for an entry that already exists is refused (the entry is closed), and the postings'
  foreign key to their entry is DEFERRABLE INITIALLY DEFERRED, so a posting left without
  its entry fails the COMMIT (on SQLite this needs ``PRAGMA foreign_keys=ON``, set by app.db).
  PostgreSQL: a DEFERRABLE INITIALLY DEFERRED constraint trigger on postings and entries
  checks each touched entry's sum at COMMIT.
  SQLite has no deferred triggers: the entry row's AFTER INSERT trigger checks the sum of
  the postings written before it.
- Entries, postings, holds, pledges and ledgers are append-only: UPDATE/DELETE refused.
- Cached balances: an AFTER INSERT trigger on postings adds the amount to the account's
  ``balance`` and to its ``ledger_account_flows`` row, so the caches equal the postings.
  On PostgreSQL only these triggers may change them (``pg_trigger_depth()``); on SQLite the
  identity columns of an account are frozen and rows cannot be deleted.
- Project cash (and held cash, and pledge receivables) never below zero: a CHECK on the
  cached balance, which the posting trigger updates under the row's lock.
- A hold resolves at most once: ``ledger_entries.resolves_hold_id`` is UNIQUE.
"""

from collections.abc import Sequence

import advanced_alchemy.types
import sqlalchemy as sa
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BigId = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')
APPEND_ONLY = ('ledger_ledgers', 'ledger_pledges', 'ledger_holds', 'ledger_entries', 'ledger_postings')


def upgrade() -> None:
    op.create_table('ledger_ledgers',
    sa.Column('id', BigId, nullable=False),
    sa.Column('project_id', advanced_alchemy.types.guid.GUID(length=16), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('scale', sa.SmallInteger(), nullable=False),
    sa.Column('created_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_ledgers')),
    sa.UniqueConstraint('project_id', name=op.f('uq_ledger_ledgers_project_id'))
    )
    op.create_table('ledger_accounts',
    sa.Column('id', BigId, nullable=False),
    sa.Column('ledger_id', BigId, nullable=False),
    sa.Column('key', sa.String(length=160), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('unit_id', advanced_alchemy.types.guid.GUID(length=16), nullable=True),
    sa.Column('counterparty_unit_id', advanced_alchemy.types.guid.GUID(length=16), nullable=True),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('non_negative', sa.Boolean(), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.CheckConstraint('NOT non_negative OR balance >= 0', name=op.f('ck_ledger_accounts_balance_non_negative')),
    sa.ForeignKeyConstraint(['ledger_id'], ['ledger_ledgers.id'], name=op.f('fk_ledger_accounts_ledger_id_ledger_ledgers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_accounts')),
    sa.UniqueConstraint('ledger_id', 'key', name=op.f('uq_ledger_accounts_ledger_id'))
    )
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_accounts_counterparty_unit_id'), ['counterparty_unit_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_accounts_unit_id'), ['unit_id'], unique=False)

    op.create_table('ledger_holds',
    sa.Column('id', BigId, nullable=False),
    sa.Column('ledger_id', BigId, nullable=False),
    sa.Column('reference', sa.String(length=200), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('deadline', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.Column('lender_unit_id', advanced_alchemy.types.guid.GUID(length=16), nullable=True),
    sa.Column('borrower_unit_id', advanced_alchemy.types.guid.GUID(length=16), nullable=True),
    sa.Column('category', sa.String(length=64), nullable=False),
    sa.Column('created_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_ledger_holds_amount_positive')),
    sa.ForeignKeyConstraint(['ledger_id'], ['ledger_ledgers.id'], name=op.f('fk_ledger_holds_ledger_id_ledger_ledgers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_holds'))
    )
    with op.batch_alter_table('ledger_holds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_holds_ledger_id'), ['ledger_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_holds_reference'), ['reference'], unique=False)

    op.create_table('ledger_pledges',
    sa.Column('id', BigId, nullable=False),
    sa.Column('ledger_id', BigId, nullable=False),
    sa.Column('unit_id', advanced_alchemy.types.guid.GUID(length=16), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('conditional', sa.Boolean(), nullable=False),
    sa.Column('condition', sa.Text(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_ledger_pledges_amount_positive')),
    sa.ForeignKeyConstraint(['ledger_id'], ['ledger_ledgers.id'], name=op.f('fk_ledger_pledges_ledger_id_ledger_ledgers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_pledges')),
    sa.UniqueConstraint('ledger_id', 'idempotency_key', name=op.f('uq_ledger_pledges_ledger_id'))
    )
    with op.batch_alter_table('ledger_pledges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_pledges_ledger_id'), ['ledger_id'], unique=False)

    op.create_table('ledger_account_flows',
    sa.Column('account_id', BigId, nullable=False),
    sa.Column('flow', sa.String(length=16), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_account_flows_account_id_ledger_accounts')),
    sa.PrimaryKeyConstraint('account_id', 'flow', name=op.f('pk_ledger_account_flows'))
    )
    op.create_table('ledger_entries',
    sa.Column('id', BigId, autoincrement=False, nullable=False),
    sa.Column('ledger_id', BigId, nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('effective_at', advanced_alchemy.types.datetime.DateTimeUTC(timezone=True), nullable=False),
    sa.Column('memo', sa.Text(), nullable=False),
    sa.Column('actor_id', advanced_alchemy.types.guid.GUID(length=16), nullable=True),
    sa.Column('unit_id', advanced_alchemy.types.guid.GUID(length=16), nullable=True),
    sa.Column('counterparty_project_id', advanced_alchemy.types.guid.GUID(length=16), nullable=True),
    sa.Column('pledge_id', BigId, nullable=True),
    sa.Column('hold_id', BigId, nullable=True),
    sa.Column('resolves_hold_id', BigId, nullable=True),
    sa.Column('reverses_entry_id', BigId, nullable=True),
    sa.ForeignKeyConstraint(['hold_id'], ['ledger_holds.id'], name=op.f('fk_ledger_entries_hold_id_ledger_holds')),
    sa.ForeignKeyConstraint(['ledger_id'], ['ledger_ledgers.id'], name=op.f('fk_ledger_entries_ledger_id_ledger_ledgers')),
    sa.ForeignKeyConstraint(['pledge_id'], ['ledger_pledges.id'], name=op.f('fk_ledger_entries_pledge_id_ledger_pledges')),
    sa.ForeignKeyConstraint(['resolves_hold_id'], ['ledger_holds.id'], name=op.f('fk_ledger_entries_resolves_hold_id_ledger_holds')),
    sa.ForeignKeyConstraint(['reverses_entry_id'], ['ledger_entries.id'], name=op.f('fk_ledger_entries_reverses_entry_id_ledger_entries')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entries')),
    sa.UniqueConstraint('ledger_id', 'idempotency_key', name=op.f('uq_ledger_entries_ledger_id')),
    sa.UniqueConstraint('resolves_hold_id', name=op.f('uq_ledger_entries_resolves_hold_id')),
    sa.UniqueConstraint('reverses_entry_id', name=op.f('uq_ledger_entries_reverses_entry_id'))
    )
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_entries_hold_id'), ['hold_id'], unique=False)
        batch_op.create_index('ix_ledger_entries_ledger_effective', ['ledger_id', 'effective_at'], unique=False)
        batch_op.create_index('ix_ledger_entries_ledger_kind', ['ledger_id', 'kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entries_pledge_id'), ['pledge_id'], unique=False)
        batch_op.create_index('uq_ledger_entries_pledge_recognised', ['pledge_id'], unique=True, sqlite_where=sa.text("kind = 'pledge'"), postgresql_where=sa.text("kind = 'pledge'"))

    op.create_table('ledger_postings',
    sa.Column('id', BigId, nullable=False),
    sa.Column('entry_id', BigId, nullable=False),
    sa.Column('account_id', BigId, nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('flow', sa.String(length=16), nullable=False),
    sa.CheckConstraint('amount <> 0', name=op.f('ck_ledger_postings_amount_nonzero')),
    sa.ForeignKeyConstraint(['account_id'], ['ledger_accounts.id'], name=op.f('fk_ledger_postings_account_id_ledger_accounts')),
    sa.ForeignKeyConstraint(['entry_id'], ['ledger_entries.id'], name=op.f('fk_ledger_postings_entry_id_ledger_entries'), initially='DEFERRED', deferrable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_postings'))
    )
    with op.batch_alter_table('ledger_postings', schema=None) as batch_op:
        batch_op.create_index('ix_ledger_postings_account', ['account_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_postings_entry_id'), ['entry_id'], unique=False)

    if op.get_bind().dialect.name == 'postgresql':
        op.execute(sa.schema.CreateSequence(sa.Sequence('ledger_entry_ids')))
        _postgresql_rules()
    else:
        _sqlite_rules()


def _postgresql_rules() -> None:
    """Invariants on PostgreSQL (see the module docstring)."""
    for table in APPEND_ONLY:
        # copool_refuse_change() comes from 0001.
        op.execute(
            f'CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} '
            'FOR EACH ROW EXECUTE FUNCTION copool_refuse_change()'
        )
    op.execute(
        """
        CREATE FUNCTION ledger_apply_posting() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE ledger_accounts SET balance = balance + NEW.amount WHERE id = NEW.account_id;
            INSERT INTO ledger_account_flows (account_id, flow, amount)
            VALUES (NEW.account_id, NEW.flow, NEW.amount)
            ON CONFLICT (account_id, flow)
            DO UPDATE SET amount = ledger_account_flows.amount + EXCLUDED.amount;
            RETURN NULL;
        END $$;
        """
    )
    op.execute(
        'CREATE TRIGGER ledger_postings_apply AFTER INSERT ON ledger_postings '
        'FOR EACH ROW EXECUTE FUNCTION ledger_apply_posting()'
    )
    op.execute(
        """
        CREATE FUNCTION ledger_cache_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            -- Depth 1 is a statement from a client; the posting trigger runs at depth 2.
            IF pg_trigger_depth() < 2 THEN
                IF TG_OP = 'INSERT' AND TG_TABLE_NAME = 'ledger_accounts' AND NEW.balance = 0 THEN
                    RETURN NEW;
                END IF;
                RAISE EXCEPTION '% is kept by the posting trigger only', TG_TABLE_NAME
                    USING ERRCODE = 'restrict_violation';
            END IF;
            IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
            RETURN NEW;
        END $$;
        """
    )
    op.execute(
        'CREATE TRIGGER ledger_accounts_cache_guard BEFORE INSERT OR UPDATE OR DELETE '
        'ON ledger_accounts FOR EACH ROW EXECUTE FUNCTION ledger_cache_guard()'
    )
    op.execute(
        'CREATE TRIGGER ledger_account_flows_cache_guard BEFORE INSERT OR UPDATE OR DELETE '
        'ON ledger_account_flows FOR EACH ROW EXECUTE FUNCTION ledger_cache_guard()'
    )
    op.execute(
        """
        CREATE FUNCTION ledger_entry_open() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF EXISTS (SELECT 1 FROM ledger_entries WHERE id = NEW.entry_id) THEN
                RAISE EXCEPTION 'ledger entry % is closed: its postings come before it', NEW.entry_id
                    USING ERRCODE = 'restrict_violation';
            END IF;
            RETURN NEW;
        END $$;
        """
    )
    op.execute(
        'CREATE TRIGGER ledger_postings_entry_open BEFORE INSERT ON ledger_postings '
        'FOR EACH ROW EXECUTE FUNCTION ledger_entry_open()'
    )
    op.execute(
        """
        CREATE FUNCTION ledger_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            entry bigint;
            total bigint;
            legs integer;
        BEGIN
            IF TG_TABLE_NAME = 'ledger_postings' THEN entry := NEW.entry_id; ELSE entry := NEW.id; END IF;
            SELECT coalesce(sum(amount), 0), count(*) INTO total, legs
              FROM ledger_postings WHERE entry_id = entry;
            IF total <> 0 OR legs < 2 THEN
                RAISE EXCEPTION 'ledger entry % does not balance (% legs, sum %)', entry, legs, total
                    USING ERRCODE = 'check_violation';
            END IF;
            RETURN NULL;
        END $$;
        """
    )
    for table in ('ledger_postings', 'ledger_entries'):
        op.execute(
            f'CREATE CONSTRAINT TRIGGER {table}_balanced AFTER INSERT ON {table} '
            'DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_check_balanced()'
        )


def _sqlite_rules() -> None:
    """Invariants on SQLite (see the module docstring)."""
    for table in APPEND_ONLY:
        for verb in ('UPDATE', 'DELETE'):
            op.execute(
                f'CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} '
                f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
            )
    op.execute(
        'CREATE TRIGGER ledger_postings_apply AFTER INSERT ON ledger_postings BEGIN '
        'UPDATE ledger_accounts SET balance = balance + NEW.amount WHERE id = NEW.account_id; '
        'INSERT INTO ledger_account_flows (account_id, flow, amount) '
        'VALUES (NEW.account_id, NEW.flow, NEW.amount) '
        'ON CONFLICT (account_id, flow) DO UPDATE SET amount = amount + excluded.amount; '
        'END'
    )
    op.execute(
        'CREATE TRIGGER ledger_postings_entry_open BEFORE INSERT ON ledger_postings '
        'WHEN EXISTS (SELECT 1 FROM ledger_entries WHERE id = NEW.entry_id) '
        "BEGIN SELECT RAISE(ABORT, 'ledger entry is closed: its postings come before it'); END"
    )
    op.execute(
        'CREATE TRIGGER ledger_entries_balanced AFTER INSERT ON ledger_entries '
        'WHEN (SELECT count(*) FROM ledger_postings WHERE entry_id = NEW.id) < 2 '
        'OR (SELECT sum(amount) FROM ledger_postings WHERE entry_id = NEW.id) <> 0 '
        "BEGIN SELECT RAISE(ABORT, 'ledger entry does not balance'); END"
    )
    op.execute(
        'CREATE TRIGGER ledger_accounts_frozen BEFORE UPDATE OF '
        'id, ledger_id, key, kind, unit_id, counterparty_unit_id, category, non_negative '
        "ON ledger_accounts BEGIN SELECT RAISE(ABORT, 'ledger account identity is fixed'); END"
    )
    for table in ('ledger_accounts', 'ledger_account_flows'):
        op.execute(
            f'CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} '
            f"BEGIN SELECT RAISE(ABORT, '{table} rows cannot be deleted'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == 'postgresql':
        op.execute('DROP FUNCTION ledger_apply_posting() CASCADE')
        op.execute('DROP FUNCTION ledger_cache_guard() CASCADE')
        op.execute('DROP FUNCTION ledger_check_balanced() CASCADE')
        op.execute('DROP FUNCTION ledger_entry_open() CASCADE')
        op.execute(sa.schema.DropSequence(sa.Sequence('ledger_entry_ids')))
    # SQLite drops a table's triggers with the table; PostgreSQL too for the remaining ones.
    with op.batch_alter_table('ledger_postings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_postings_entry_id'))
        batch_op.drop_index('ix_ledger_postings_account')

    op.drop_table('ledger_postings')
    with op.batch_alter_table('ledger_entries', schema=None) as batch_op:
        batch_op.drop_index('uq_ledger_entries_pledge_recognised', sqlite_where=sa.text("kind = 'pledge'"), postgresql_where=sa.text("kind = 'pledge'"))
        batch_op.drop_index(batch_op.f('ix_ledger_entries_pledge_id'))
        batch_op.drop_index('ix_ledger_entries_ledger_kind')
        batch_op.drop_index('ix_ledger_entries_ledger_effective')
        batch_op.drop_index(batch_op.f('ix_ledger_entries_hold_id'))

    op.drop_table('ledger_entries')
    op.drop_table('ledger_account_flows')
    with op.batch_alter_table('ledger_pledges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_pledges_ledger_id'))

    op.drop_table('ledger_pledges')
    with op.batch_alter_table('ledger_holds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_holds_reference'))
        batch_op.drop_index(batch_op.f('ix_ledger_holds_ledger_id'))

    op.drop_table('ledger_holds')
    with op.batch_alter_table('ledger_accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_accounts_unit_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_accounts_counterparty_unit_id'))

    op.drop_table('ledger_accounts')
    op.drop_table('ledger_ledgers')
