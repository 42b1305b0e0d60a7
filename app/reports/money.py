"""Project money: pledged, received, held and spent per funder, and the burn against the
project's end date.

The figures are the ledger's own fund statement (``app.funds.services.statement``: cached
balances and flows, one read per project), never re-derived. One row per contributing
unit and one ``(total)`` row per project carrying the burn: spent so far per elapsed day,
that rate carried to the end date, and the shortfall it would leave against the project's
cash. Projects whose ledger the caller may not read (``readable_project``) are left out;
a named project the caller may not read answers 403 or 404 as ``/funds/statement`` does.
"""

from __future__ import annotations

import uuid
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

import ledger
from app.auth.actor import Actor
from app.base import utcnow
from app.errors import NotFound, PermissionDenied
from app.funds import services as funds
from app.projects.models import Project
from app.projects.services import participates
from app.reports.schemas import Report
from app.reports.scope import unit_names

COLUMNS = [
    "project_id", "project", "currency", "unit_id", "unit", "pledged", "received", "held",
    "spent", "available", "end_date", "days_elapsed", "days_total", "burn_per_day",
    "projected_spend_at_end", "projected_shortfall",
]  # fmt: skip


def report(
    session: Session,
    actor: Actor,
    *,
    project_id: uuid.UUID | None = None,
    unit_id: uuid.UUID | None = None,
    period_from: date | None = None,
    period_to: date | None = None,
    today: date | None = None,
) -> Report:
    """Each readable project's money per funder (``unit_id``: that funder's lines only);
    with a period, only the projects running in it (the figures are the ledger's, to date)."""
    today = today or utcnow().date()
    units = unit_names(session)
    rows: list[dict[str, Any]] = []
    for project in _projects(session, actor, project_id, (period_from, period_to)):
        try:
            statement = funds.statement(session, actor, project.id)
        except (PermissionDenied, NotFound):
            if project_id is not None:
                raise
            continue
        head = {"project_id": str(project.id), "project": project.code,
                "currency": statement.currency}  # fmt: skip
        for line in statement.units:
            if unit_id is None or line.unit_id == unit_id:
                rows.append({**head, **_figures(line), "unit_id": str(line.unit_id),
                             "unit": units.get(line.unit_id, ""), **_no_burn()})  # fmt: skip
        if unit_id is None:
            rows.append({**head, **_figures(statement), "unit_id": None, "unit": "(total)",
                         **_burn(project, statement, today)})  # fmt: skip
    return Report(name="money", period_from=period_from, period_to=period_to, columns=COLUMNS,
                  rows=rows)  # fmt: skip


def _projects(
    session: Session,
    actor: Actor,
    project_id: uuid.UUID | None,
    period: tuple[date | None, date | None],
) -> list[Project]:
    query = select(Project).order_by(Project.code)
    if period[0] is not None:  # still running on the period's first day or later
        query = query.where(Project.end_date >= period[0])
    if period[1] is not None:  # started by the period's last day
        query = query.where(Project.start_date <= period[1])
    if project_id is not None:
        query = query.where(Project.id == project_id)
    elif not actor.sees_everything:
        query = query.where(participates(actor.unit_id))
    return list(session.scalars(query))


def _figures(line: Any) -> dict[str, int]:
    return {k: getattr(line, k) for k in ("pledged", "received", "held", "spent", "available")}


def _no_burn() -> dict[str, Any]:
    return dict.fromkeys(COLUMNS[10:], None)


def _burn(project: Project, statement: ledger.FundStatement, today: date) -> dict[str, Any]:
    """Spent per elapsed day, carried to the end date, against the project's cash."""
    total = (project.end_date - project.start_date).days + 1
    elapsed = min(max((today - project.start_date).days + 1, 0), total)
    projected = statement.spent * total // elapsed if elapsed else statement.spent
    cash = statement.spent + statement.held + statement.available
    return {
        "end_date": project.end_date.isoformat(), "days_elapsed": elapsed, "days_total": total,
        "burn_per_day": statement.spent // elapsed if elapsed else None,
        "projected_spend_at_end": projected,
        "projected_shortfall": max(projected - cash, 0),
    }  # fmt: skip
