"""The content hash of an audit row and the link hash of the audit chain (pure functions).

An audit row's ``content_hash`` is SHA-256 over a canonical JSON of what the row says (id,
time, actor, action, object, unit, before, after, reason), computed in Python when the row
is inserted: no extra round trip. A chain link hashes the previous link, its position, the
event's id and its content hash, so changing, removing or inserting a sealed row breaks
every link from there on.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
"""The ``prev_hash`` of the first link."""

HASHED = (
    "id", "at", "actor_user_id", "actor_unit_id", "action", "object_type", "object_id",
    "unit_id", "before", "after", "reason",
)  # fmt: skip
"""The columns an audit row's content hash covers (bookkeeping columns are left out)."""


def _uuid(value: Any) -> str | None:
    if value is None or isinstance(value, uuid.UUID):
        return None if value is None else str(value)
    return str(uuid.UUID(str(value)))  # a string id, spelt canonically


def _instant(value: datetime) -> str:
    if value.tzinfo is None:  # SQLite hands back naive UTC
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def content_hash(row: Any) -> str:
    """SHA-256 (hex) of an audit row's content; ``row`` is an ``AuditEvent`` or a result row."""
    doc = {
        "id": _uuid(row.id),
        "at": _instant(row.at),
        "actor_user_id": _uuid(row.actor_user_id),
        "actor_unit_id": _uuid(row.actor_unit_id),
        "action": row.action,
        "object_type": row.object_type,
        "object_id": row.object_id,
        "unit_id": _uuid(row.unit_id),
        "before": row.before,
        "after": row.after,
        "reason": row.reason,
    }
    payload = json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def link_hash(prev_hash: str, position: int, event_id: uuid.UUID | str, content: str) -> str:
    """The chain hash of the link at ``position`` sealing event ``event_id``."""
    payload = f"{prev_hash}:{position}:{_uuid(event_id)}:{content}"
    return hashlib.sha256(payload.encode()).hexdigest()
