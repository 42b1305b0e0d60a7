"""The declarative base shared by every table of app/ and ledger/ (one metadata, one history)."""

from __future__ import annotations

from datetime import UTC, datetime

from advanced_alchemy.base import UUIDv7AuditBase, orm_registry
from advanced_alchemy.types import DateTimeUTC

__all__ = ["Base", "DateTimeUTC", "metadata", "utcnow"]

Base = UUIDv7AuditBase
"""Tables with a UUIDv7 ``id`` and ``created_at``/``updated_at`` (UTC on both engines)."""

metadata = orm_registry.metadata


def utcnow() -> datetime:
    """The current instant, timezone-aware in UTC."""
    return datetime.now(UTC)
