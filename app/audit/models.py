"""The audit log: one append-only row per change (database triggers refuse UPDATE/DELETE),
and the hash chain that seals it (``app.audit.chain``)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from advanced_alchemy.mixins.uuid import uuid7
from advanced_alchemy.types import GUID
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    FetchedValue,
    ForeignKey,
    Index,
    String,
    Table,
    Text,
    event,
)
from sqlalchemy.orm import Mapped, Mapper, mapped_column

from app.audit.hashing import content_hash
from app.base import Base, DateTimeUTC, metadata


class AuditEvent(Base):
    """Who did what to which object, when, with the object's state before and after."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_txn_id", "txn", "id"),)
    # txn is the database's; nothing on the write path waits for it to come back
    __mapper_args__ = {"eager_defaults": False}

    at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True), index=True)
    actor_user_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    actor_unit_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    object_type: Mapped[str] = mapped_column(String(64), index=True)
    object_id: Mapped[str] = mapped_column(String(64), index=True)
    unit_id: Mapped[uuid.UUID | None] = mapped_column(default=None, index=True)
    """The unit whose data changed (for filtering)."""
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    reason: Mapped[str] = mapped_column(Text, default="")
    content_hash: Mapped[str | None] = mapped_column(String(64))
    """SHA-256 of the row's content (``app.audit.hashing``), set in Python at insert."""
    txn: Mapped[int | None] = mapped_column(BigInteger, server_default=FetchedValue())
    """PostgreSQL: the inserting transaction's id (``pg_current_xact_id()``, a column
    default), which orders the chain; SQLite: NULL (the chain follows the rowid)."""


@event.listens_for(AuditEvent, "before_insert")
def _hash_content(_mapper: Mapper[Any], _connection: Any, target: AuditEvent) -> None:
    """Give the row its id now (the hash covers it) and hash what it says."""
    if target.id is None:
        target.id = uuid7()
    target.content_hash = content_hash(target)


audit_chain = Table(
    "audit_chain",
    metadata,
    Column("position", BigInteger, primary_key=True, autoincrement=False),
    Column("event_id", GUID(), ForeignKey("audit_events.id"), nullable=False, unique=True),
    Column("prev_hash", String(64), nullable=False),
    Column("chain_hash", String(64), nullable=False),
    Column("sealed_at", DateTimeUTC(timezone=True), nullable=False),
)
"""One link per sealed audit row, in chain order (``position`` 1, 2, …)."""
