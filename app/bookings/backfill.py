"""Bookings in the past: refused, unless an admin backfills them (and the log says so).

A booking, or any occurrence of a series, that ends before now is refused with 400 naming
the field. An admin may record one anyway by sending ``"backfill": true`` (say, a loan that
happened while the service was down); the flag is for admins only (403 for anyone else,
even for a future slot), and each backfill writes a ``booking.backfill`` audit event in
the same transaction as the booking.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from app.audit.services import record
from app.auth.actor import Actor
from app.base import utcnow
from app.bookings.schemas import BookingCreate
from app.errors import InvalidInput, PermissionDenied


class _Slot:
    """The audit log's handle for the resource a backfill books."""

    def __init__(self, ident: uuid.UUID) -> None:
        self.id = ident


def admit(
    session: Session,
    actor: Actor,
    *,
    resource_id: uuid.UUID,
    end: datetime,
    backfill: bool,
    field: str,
    detail: dict[str, Any],
) -> None:
    """Refuse a slot that ends before now unless an admin backfills it (then audit it)."""
    if backfill and not actor.is_admin:
        raise PermissionDenied("backfill: only admins may book in the past")
    if not backfill:
        if end <= utcnow():
            raise InvalidInput(
                f"{field}: the booking would end in the past ({end.isoformat()}); "
                "only an admin may backfill it (\"backfill\": true)",
                field=field,
            )
        return
    record(
        session,
        actor,
        "booking.backfill",
        _Slot(resource_id),
        unit_id=None,
        after={"resource_id": str(resource_id), "end": end.isoformat(), **detail},
        object_type="resources",
    )


def admit_booking(session: Session, actor: Actor, data: BookingCreate) -> None:
    """``admit`` for a direct booking (the field at fault is ``end``)."""
    admit(
        session,
        actor,
        resource_id=data.resource_id,
        end=data.end,
        backfill=data.backfill,
        field="end",
        detail={"project_id": str(data.project_id), "start": data.start.isoformat()},
    )
