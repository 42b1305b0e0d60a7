"""Sealing the audit log into a hash chain, and verifying it.

Writing costs nothing extra: each audit row carries a ``content_hash`` computed in Python at
insert (``app.audit.models``). ``seal_audit`` later links *settled* rows, in a fixed order,
into ``audit_chain``: link n stores ``prev_hash`` (link n-1's hash) and
``chain_hash = SHA-256(prev_hash, n, event id, content hash)``. No write transaction waits
for a shared chain head; only the sealer (a periodic job, ``copool audit verify``) takes one
lock, its own.

Settled, and the chain's order:

- PostgreSQL: rows are ordered by ``(txn, id)``, ``txn`` being the inserting transaction's
  id (``pg_current_xact_id()``, a column default). The sealer seals rows whose ``txn`` lies
  below its snapshot's ``xmin``: every transaction below it has ended, and every transaction
  still running or yet to start has a larger id, so no row can ever appear below the sealed
  part. An advisory lock keeps two sealers apart.
- SQLite: write transactions are serialised, and the sealer runs in one (it holds the
  writer lock), so every row it sees is committed and every later row gets a larger rowid:
  rows are ordered by rowid and all are settled.

``verify_audit`` recomputes every content hash and every link. A sealed row that was edited
(its content no longer matches its hash, or hash and content were rewritten together),
deleted, or inserted below the sealed part, and a link that was removed or altered, are
each reported with the row. Rows after the last link (the unsealed tail) are checked
against their own content hash, which catches a careless edit but not one that also
rewrites the hash: until sealed, the tail is only as safe as the database's own refusal of
UPDATE and DELETE (on PostgreSQL, the app role's missing privileges and the triggers it
cannot disable; on SQLite, triggers anyone with the file can drop). Seal often. A rewrite
of the whole chain by someone who can write every table is caught only against a head
hash kept elsewhere: ``copool audit verify`` prints it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

from advanced_alchemy.types import GUID
from sqlalchemy import Select, exists, func, literal, literal_column, select, text, tuple_
from sqlalchemy.orm import Session

from app.audit.hashing import GENESIS, content_hash, link_hash
from app.audit.models import AuditEvent, audit_chain
from app.base import utcnow
from app.errors import Conflict
from app.integrity import Report, check_triggers

SEAL_LOCK = 0x636F706F6F6C  # "copool": the advisory lock only sealers take
SEAL_BATCH = 5_000
_events = AuditEvent.__table__
_ZERO = uuid.UUID(int=0)
TRIGGERS = {
    "postgresql": (
        "audit_events_append_only", "audit_chain_append_only",
        "audit_events_no_truncate", "audit_chain_no_truncate",
    ),
    "sqlite": (
        "audit_events_no_update", "audit_events_no_delete",
        "audit_chain_no_update", "audit_chain_no_delete",
    ),
}  # fmt: skip
"""The triggers of migrations 0001 and 0007 that keep the log append-only, by engine."""


class ChainBroken(Conflict):
    """The chain's last link names an event that is gone: sealing stops until verified."""


def _is_pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _order_key() -> Any:
    """The column(s) that order the chain on this engine (see the module docstring)."""
    return literal_column("audit_events.rowid")


def _head(session: Session) -> Any:
    return session.execute(
        select(audit_chain).order_by(audit_chain.c.position.desc()).limit(1)
    ).first()


def _after_head(session: Session, head: Any) -> Select[Any]:
    """Audit rows that come after the chain's last link, in chain order, settled only."""
    query = select(_events)
    if _is_pg(session):
        txn: Any = -1
        last = _ZERO
        if head is not None:
            txn = session.scalar(select(_events.c.txn).where(_events.c.id == head.event_id))
            if txn is None:
                raise ChainBroken(
                    f"sealed audit event {head.event_id} is missing; run audit verify"
                )
            last = head.event_id
        settled = text("audit_events.txn < pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
        key = (_events.c.txn, _events.c.id)
        return (
            query.where(settled)
            .where(
                tuple_(_events.c.txn, _events.c.id) > tuple_(literal(txn), literal(last, GUID()))
            )
            .order_by(*key)
        )
    rowid = 0
    if head is not None:
        found = session.scalar(select(_order_key()).where(_events.c.id == head.event_id))
        if found is None:
            raise ChainBroken(f"sealed audit event {head.event_id} is missing; run audit verify")
        rowid = found
    return query.where(_order_key() > rowid).order_by(_order_key())


def seal_audit(session: Session, *, limit: int = SEAL_BATCH) -> int:
    """Link up to ``limit`` settled, unsealed audit rows into the chain; returns how many.

    Runs in the caller's transaction (the caller commits); cheap when nothing is new.
    """
    if _is_pg(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": SEAL_LOCK})
    head = _head(session)
    position, prev = (head.position, head.chain_hash) if head is not None else (0, GENESIS)
    now, links = utcnow(), []
    for row in session.execute(_after_head(session, head).limit(limit)):
        position += 1
        digest = row.content_hash or content_hash(row)  # unhashed rows are reported by verify
        chained = link_hash(prev, position, row.id, digest)
        links.append(
            {
                "position": position, "event_id": row.id, "prev_hash": prev,
                "chain_hash": chained, "sealed_at": now,
            }
        )  # fmt: skip
        prev = chained
    if links:
        session.execute(audit_chain.insert(), links)
    return len(links)


def seal_all(session: Session) -> int:
    """Seal in batches until nothing settled is left; returns how many rows were sealed."""
    total = 0
    while (sealed := seal_audit(session)) > 0:
        total += sealed
    return total


def _walk_chain(session: Session) -> Iterator[Any]:
    cols = [c.label(f"e_{c.name}") for c in _events.c]
    query = (
        select(audit_chain, *cols)
        .select_from(audit_chain.outerjoin(_events, _events.c.id == audit_chain.c.event_id))
        .order_by(audit_chain.c.position)
    )
    yield from session.execute(query, execution_options={"yield_per": 2_000})


class _Event:
    """The ``e_``-prefixed event columns of a chain row, readable as an event."""

    def __init__(self, row: Any) -> None:
        self._row = row

    def __getattr__(self, name: str) -> Any:
        return getattr(self._row, f"e_{name}")


def _check_link(report: Report, row: Any, expected: int, prev: str) -> None:
    if row.position != expected:
        report.add(
            "audit_chain", expected,
            f"missing: the chain jumps to position {row.position} (links were deleted)",
        )  # fmt: skip
    elif row.prev_hash != prev:
        report.add("audit_chain", row.position, "prev_hash is not the previous link's hash")
    if row.e_id is None:
        report.add(
            "audit_events", row.event_id, f"deleted (it was sealed at position {row.position})"
        )
        return
    event = _Event(row)
    digest = content_hash(event)
    if event.content_hash != digest:
        report.add(
            "audit_events", row.event_id,
            f"edited: its content does not match its hash (sealed at position {row.position})",
        )  # fmt: skip
    elif link_hash(row.prev_hash, row.position, row.event_id, digest) != row.chain_hash:
        report.add(
            "audit_events", row.event_id,
            f"edited after sealing: content and hash no longer match link {row.position}",
        )  # fmt: skip


def _check_chain(session: Session, report: Report) -> Any:
    """Walk every link; returns the last one (None for an empty chain)."""
    expected, prev, last = 1, GENESIS, None
    for row in _walk_chain(session):
        _check_link(report, row, expected, prev)
        expected, prev, last = row.position + 1, row.chain_hash, row
    report.counts["sealed"] = expected - 1
    return last


def _check_unsealed(session: Session, report: Report, head: Any) -> None:
    """Rows without a link: below the head they were inserted; above it, the tail."""
    limit: Any = None
    if _is_pg(session):
        key: Any = _events.c.txn
        if head is not None and head.e_id is not None:
            limit = (head.e_txn, head.e_id)
    else:
        key = _order_key()
        if head is not None:
            limit = session.scalar(select(_order_key()).where(_events.c.id == head.event_id))
    linked = exists().where(audit_chain.c.event_id == _events.c.id)
    query = select(_events, key.label("order_key")).where(~linked).order_by(key, _events.c.id)
    tail = 0
    for row in session.execute(query, execution_options={"yield_per": 2_000}):
        ordered = (row.order_key, row.id) if _is_pg(session) else row.order_key
        if limit is not None and ordered < limit:
            report.add("audit_events", row.id, "inserted below the sealed part of the log")
            continue
        tail += 1
        if row.content_hash is None:
            report.add("audit_events", row.id, "has no content hash (not written by copool)")
        elif row.content_hash != content_hash(row):
            report.add("audit_events", row.id, "edited: its content does not match its hash")
    report.counts["unsealed"] = tail


def verify_audit(session: Session) -> Report:
    """Recompute the audit log's content hashes and chain; every bad row is a finding."""
    report = Report("audit")
    report.counts["events"] = session.scalar(select(func.count()).select_from(_events)) or 0
    head = _check_chain(session, report)
    _check_unsealed(session, report, head)
    check_triggers(session, report, TRIGGERS)  # last: a bad row is the better first finding
    report.note = f"head {head.chain_hash if head is not None else GENESIS}"
    return report
