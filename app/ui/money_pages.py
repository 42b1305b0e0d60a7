"""Project funds (statement, running balance, pledges, receipts, a chart) and the reports."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any

from litestar import Controller, Response
from litestar.params import QueryParameter
from litestar.response import Template
from sqlalchemy.orm import Session

import ledger
from app.auth.actor import Actor
from app.errors import NotFound
from app.funds import services as funds
from app.projects.services import get_project, list_projects
from app.reports import caps, fulfilment, money, noshows, reciprocity, utilisation
from app.reports.schemas import Report
from app.reports.scope import ReportFilter, check_period, check_visible
from app.routing import get
from app.settings import Settings
from app.ui.sessions import SignedIn
from app.ui.views import bar_chart, names, step_chart
from app.ui.web import render
from app.units.models import Unit
from ledger.currency import currency_scale

From = Annotated[date | None, QueryParameter(name="from")]
To = Annotated[date | None, QueryParameter(name="to")]
REGISTER_PAGES = 5
"""The statement reads at most this many pages of 1,000 entries for its balance column."""


def register(session: Session, actor: Actor, project_id: uuid.UUID) -> list[ledger.RegisterEntry]:
    """The project's entries (the API's register), up to ``REGISTER_PAGES`` pages."""
    found: list[ledger.RegisterEntry] = []
    after: int | None = None
    for _ in range(REGISTER_PAGES):
        page = funds.entries(session, actor, project_id, since=None, until=None, account=None,
                             kind=None, after=after, limit=1000)
        found += page.entries
        after = page.next_after
        if after is None:
            break
    return found


def with_balance(entries: list[ledger.RegisterEntry]) -> list[dict[str, Any]]:
    """Each entry with its cash movement and the cash balance after it, in time order."""
    balance = 0
    rows = []
    for e in sorted(entries, key=lambda e: (e.effective_at, e.id)):
        cash = sum(line.amount for line in e.lines if line.account == "cash")
        balance += cash
        rows.append({"entry": e, "cash": cash, "balance": balance})
    return rows


class FundsController(Controller):
    """``/ui/projects``: the actor's projects and each one's fund statement."""

    path = "/projects"

    @get("/")
    def projects(self, signed: SignedIn, actor: Actor, db_session: Session) -> Template:
        """Projects the actor may see, each linking to its funds."""
        found, _ = list_projects(db_session, actor, limit=200, offset=0)
        return render("projects.html", signed, "projects", projects=found)

    @get("/{project_id:uuid}/funds")
    def statement(self, signed: SignedIn, actor: Actor, db_session: Session,
                  project_id: uuid.UUID) -> Template:
        """The fund statement, the register with a running cash balance, and its chart."""
        project = get_project(db_session, actor, project_id)
        statement = funds.statement(db_session, actor, project_id)
        rows = with_balance(register(db_session, actor, project_id))
        units = names(db_session, Unit, [u.unit_id for u in statement.units])
        scale = 10 ** currency_scale(project.currency)
        opened = datetime.combine(project.start_date, datetime.min.time(), UTC)
        series = [(opened, 0)] + [(r["entry"].effective_at, r["balance"]) for r in rows]
        now = datetime.now(UTC)
        if rows and now > series[-1][0]:
            series.append((now, rows[-1]["balance"]))  # the line runs on to today
        chart = step_chart(sorted(series, key=lambda p: p[0]), scale=scale) if rows else None
        return render(
            "funds.html", signed, "projects", project=project, s=statement, rows=rows,
            units=units, chart=chart,
            pledges=[r for r in rows if r["entry"].kind == "pledge"],
            receipts=[r for r in rows if r["entry"].kind in ("receipt", "contribution")],
        )


@dataclass(frozen=True, slots=True)
class Kind:
    """A report the dashboard shows: its title, how to run it, what its chart plots."""

    title: str
    run: Callable[[Session, Actor, ReportFilter], Report]
    label: str
    value: str


REPORTS: dict[str, Kind] = {
    "utilisation": Kind("Utilisation per resource", lambda s, a, f: utilisation.report(s, a, f, "resource"), "group", "utilisation"),
    "fulfilment": Kind("Fulfilment of requests", fulfilment.report, "project", "served"),
    "reciprocity": Kind("Reciprocity between units", reciprocity.balances, "unit", "net_minutes"),
    "caps": Kind("Caps used", caps.report, "resource", "share"),
    "money": Kind("Project money", lambda s, a, f: money.report(s, a, project_id=f.project_id, unit_id=f.unit_id), "project", "spent"),
    "no-shows": Kind("No-shows and late cancellations", noshows.report, "unit", "no_shows"),
}
"""The API's reports (``app.reports``), called as its routes call them."""


def _run(session: Session, actor: Actor, settings: Settings, name: str, period_from: date | None,
         period_to: date | None, project_id: uuid.UUID | None) -> tuple[Kind, Report, ReportFilter]:
    kind = REPORTS.get(name)
    if kind is None:
        raise NotFound("no such report")
    today = datetime.now(UTC).date()
    first = period_from or today.replace(day=1)
    last = period_to or today
    check_period(first, last, settings.max_range_days)
    filters = ReportFilter(first, last, project_id=project_id)
    check_visible(session, actor, filters)
    return kind, kind.run(session, actor, filters), filters


class ReportPagesController(Controller):
    """``/ui/reports``: each report as a table and a bar chart, and its CSV."""

    path = "/reports"

    @get("/")
    def report(self, signed: SignedIn, actor: Actor, db_session: Session, settings: Settings,
               name: str = "utilisation", period_from: From = None,
               period_to: To = None, project_id: uuid.UUID | None = None) -> Template:
        """One report over a period (this month by default)."""
        kind, report, filters = _run(db_session, actor, settings, name, period_from, period_to,
                                     project_id)
        points = [(str(r.get(kind.label) or "—"), float(r.get(kind.value) or 0))
                  for r in report.rows[:30]]
        return render(
            "reports.html", signed, "reports", reports=REPORTS, name=name, kind=kind,
            report=report, filters=filters, bars=bar_chart(points), project_id=project_id or "",
        )

    @get("/{name:str}/csv")
    def csv(self, actor: Actor, db_session: Session, settings: Settings, name: str,
            period_from: From = None, period_to: To = None,
            project_id: uuid.UUID | None = None) -> Response[str]:
        """The report as CSV: the same columns as the API's ``?format=csv``."""
        _, report, _ = _run(db_session, actor, settings, name, period_from, period_to, project_id)
        return Response(
            report.to_csv(), media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{report.name}.csv"'},
        )
