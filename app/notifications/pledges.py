"""The daily ``pledges_overdue`` check: a pledge still owing money
``COPOOL_PLEDGE_DUE_DAYS`` after it was made (pledges carry no due date of their own) tells
the pledging unit and the project's lead unit and lead, once per pledge."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

import ledger
from app.base import utcnow
from app.db import session_scope
from app.notifications import kinds
from app.notifications.models import NotificationEvent
from app.notifications.outbox import emit
from app.projects.models import Project
from ledger.models import Ledger, Pledge

if TYPE_CHECKING:
    from app.jobs.tasks import Runtime

_PLEDGES = uuid.UUID("6f1c1c5e-3c55-4f0e-9a57-5d3a2f0c9b11")


def pledge_subject(ledger_id: int, pledge_id: int) -> uuid.UUID:
    """A stable UUID standing for a pledge (whose own id is a number), so it is told once."""
    return uuid.uuid5(_PLEDGES, f"{ledger_id}:{pledge_id}")


def overdue(session: Session, now: datetime, due_days: int) -> int:
    """Emit ``pledge_overdue`` for every pledge owing past its due time not told before."""
    told = 0
    rows = session.execute(
        select(Pledge, Ledger.project_id)
        .join(Ledger, Ledger.id == Pledge.ledger_id)
        .where(Pledge.created_at <= now - timedelta(days=due_days))
        .order_by(Pledge.id)
    ).all()
    for pledge, project_id in rows:
        subject = pledge_subject(pledge.ledger_id, pledge.id)
        already = session.scalar(
            select(
                exists().where(
                    NotificationEvent.kind == kinds.PLEDGE_OVERDUE,
                    NotificationEvent.subject_id == subject,
                )
            )
        )
        owed = 0 if already else ledger.pledge_outstanding(session, pledge.id)
        project = session.get(Project, project_id)
        if owed <= 0 or project is None:
            continue
        emit(
            session,
            kinds.PLEDGE_OVERDUE,
            subject_type="pledge",
            subject_id=subject,
            unit_ids=[pledge.unit_id, project.lead_unit_id],
            user_ids=[project.lead_user_id],
            data={
                "pledge": pledge.id,
                "project_id": str(project.id),
                "project": project.name,
                "outstanding": owed,
                "pledged_at": pledge.created_at.isoformat(),
            },
        )
        told += 1
    return told


def run(rt: Runtime) -> dict[str, Any]:
    """The periodic job's body."""
    with session_scope(rt.factory) as session:
        return {"told": overdue(session, utcnow(), rt.settings.pledge_due_days)}
