"""Writing and reading the audit log."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from app.audit.models import AuditEvent
from app.auth.actor import Actor
from app.auth.models import Role
from app.base import utcnow
from app.errors import PermissionDenied

_SKIP = {"created_at", "updated_at", "sa_orm_sentinel", "token_sha256"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def snapshot(obj: Any, **extra: Any) -> dict[str, Any]:
    """The column values of an ORM object as JSON (secrets and bookkeeping columns left out)."""
    mapper = inspect(type(obj))
    data = {
        attr.key: _jsonable(getattr(obj, attr.key))
        for attr in mapper.column_attrs
        if attr.key not in _SKIP
    }
    data.update({k: _jsonable(v) for k, v in extra.items()})
    return data


def record(
    session: Session,
    actor: Actor,
    action: str,
    obj: Any,
    *,
    unit_id: uuid.UUID | None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    reason: str = "",
    object_type: str | None = None,
) -> AuditEvent:
    """Append one audit row for a change of ``obj`` (call it in the changing transaction)."""
    event = AuditEvent(
        at=utcnow(),
        actor_user_id=None if actor.user_id.int == 0 else actor.user_id,
        actor_unit_id=None if actor.unit_id.int == 0 else actor.unit_id,
        action=action,
        object_type=object_type or getattr(obj, "__tablename__", type(obj).__name__),
        object_id=str(obj.id),
        unit_id=unit_id,
        before=before,
        after=after,
        reason=reason,
    )
    session.add(event)
    return event


def list_events(
    session: Session,
    actor: Actor,
    *,
    limit: int,
    offset: int,
    action: str | None = None,
    object_type: str | None = None,
    object_id: str | None = None,
    actor_user_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> tuple[list[AuditEvent], int]:
    """Audit rows, newest first: admins and auditors read the whole log, a unit manager the
    events of their own unit's objects (``unit_id``), nobody else any."""
    query = select(AuditEvent)
    if not actor.sees_everything:
        if Role.UNIT_MANAGER not in actor.roles:
            raise PermissionDenied(
                "reading the audit log needs the role auditor or admin, or unit_manager "
                "(for the unit's own objects)"
            )
        query = query.where(AuditEvent.unit_id == actor.unit_id)
    for column, value in (
        (AuditEvent.action, action),
        (AuditEvent.object_type, object_type),
        (AuditEvent.object_id, object_id),
        (AuditEvent.actor_user_id, actor_user_id),
        (AuditEvent.unit_id, unit_id),
    ):
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    if until is not None:
        query = query.where(AuditEvent.at < until)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit).offset(offset)
    ).all()
    return list(rows), total
