"""HTTP route for reading the audit log (admins and auditors)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from litestar import Controller
from litestar.params import Parameter
from sqlalchemy.orm import Session

from app.audit import services
from app.auth.actor import Actor
from app.pagination import Limit, Offset, OptionalInstant, page
from app.problems import LIST
from app.routing import get
from app.schemas import Page, Schema, aware


class AuditEventRead(Schema):
    """One change: who, when, what, to which object, before and after."""

    id: uuid.UUID
    at: datetime
    actor_user_id: uuid.UUID | None
    actor_unit_id: uuid.UUID | None
    action: str
    object_type: str
    object_id: str
    unit_id: uuid.UUID | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str


class AuditController(Controller):
    """The append-only audit log."""

    path = "/audit-events"
    tags = ["audit"]

    @get("/", responses=LIST, summary="List audit events, newest first")
    def list_events(
        self,
        actor: Actor,
        db_session: Session,
        limit: Limit = 50,
        offset: Offset = 0,
        action: Annotated[str | None, Parameter(max_length=64)] = None,
        object_type: Annotated[str | None, Parameter(max_length=64)] = None,
        object_id: Annotated[str | None, Parameter(max_length=64)] = None,
        actor_user_id: uuid.UUID | None = None,
        unit_id: uuid.UUID | None = None,
        since: OptionalInstant = None,
        until: OptionalInstant = None,
    ) -> Page[AuditEventRead]:
        rows, total = services.list_events(
            db_session,
            actor,
            limit=limit,
            offset=offset,
            action=action,
            object_type=object_type,
            object_id=object_id,
            actor_user_id=actor_user_id,
            unit_id=unit_id,
            since=aware(since, "since"),
            until=aware(until, "until"),
        )
        return page(AuditEventRead, rows, total, limit, offset)
