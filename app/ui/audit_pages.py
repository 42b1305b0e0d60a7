"""The audit log, filterable and paged (who may read it is the audit service's rule)."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated
from urllib.parse import urlencode

from litestar import Controller
from litestar.params import Parameter
from litestar.response import Template
from sqlalchemy.orm import Session

from app.audit import services as audit
from app.auth.actor import Actor
from app.auth.models import User
from app.routing import get
from app.ui.sessions import SignedIn
from app.ui.views import names
from app.ui.web import render
from app.units.models import Unit

PAGE = 50
Short = Annotated[str, Parameter(max_length=64)]


def _day(day: date | None, after: int = 0) -> datetime | None:
    return None if day is None else datetime.combine(day + timedelta(days=after), time(0), UTC)


class AuditPageController(Controller):
    """``/ui/audit``: the append-only log, newest first."""

    path = "/audit"

    @get("/")
    def events(self, signed: SignedIn, actor: Actor, db_session: Session, action: Short = "",
               object_type: Short = "", object_id: Short = "", unit_id: uuid.UUID | None = None,
               since: date | None = None, until: date | None = None,
               offset: Annotated[int, Parameter(ge=0, le=10_000_000)] = 0) -> Template:
        """Audit events matching the filters (``until``: that day included)."""
        rows, total = audit.list_events(
            db_session, actor, limit=PAGE, offset=offset, action=action or None,
            object_type=object_type or None, object_id=object_id or None, unit_id=unit_id,
            since=_day(since), until=_day(until, 1),
        )
        units = names(db_session, Unit, (r.unit_id for r in rows if r.unit_id))
        users = names(db_session, User, (r.actor_user_id for r in rows if r.actor_user_id))
        filters = {"action": action, "object_type": object_type, "object_id": object_id,
                   "unit_id": unit_id or "", "since": since or "", "until": until or ""}
        query = urlencode({k: str(v) for k, v in filters.items() if v})
        return render("audit.html", signed, "audit", rows=rows, total=total, offset=offset,
                      page=PAGE, units=units, users=users, f=filters, query=query)
