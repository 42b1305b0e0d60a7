"""HTTP routes of the reports: JSON by default, CSV with ``?format=csv`` or ``Accept: text/csv``.

Both carry the same columns in the same order. The period is ``from``–``to`` (dates,
both days included, UTC), at most ``COPOOL_MAX_RANGE_DAYS`` long.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import date
from enum import StrEnum
from typing import Annotated, Any

from litestar import Controller, Request, Response
from litestar.di import Provide
from litestar.params import QueryParameter
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.catalog.models import ResourceKind
from app.problems import LIST, READ
from app.reports import caps, fulfilment, money, noshows, reciprocity, utilisation
from app.reports.schemas import Report
from app.reports.scope import Grouping, ReportFilter, check_days, check_period, check_visible
from app.routing import get
from app.settings import Settings

AnyRequest = Request[Any, Any, Any]
From = Annotated[date, QueryParameter(name="from", description="First day of the period (UTC)")]
To = Annotated[date, QueryParameter(name="to", description="Last day of the period, included")]
Since = Annotated[
    date | None, QueryParameter(name="from", description="Only projects running on or after it")
]
Until = Annotated[
    date | None, QueryParameter(name="to", description="Only projects started by this day")
]
CSV = "text/csv"
ANSWERS = {**READ, **LIST}


class Format(StrEnum):
    """The answer's format; without it, ``Accept: text/csv`` asks for CSV."""

    JSON = "json"
    CSV = "csv"


class Level(StrEnum):
    """What one utilisation row covers."""

    RESOURCE = "resource"
    TYPE = "type"
    UNIT = "unit"


def _answer(request: AnyRequest, report: Report, fmt: Format | None) -> Response[Any]:
    wants_csv = fmt is Format.CSV or (fmt is None and CSV in request.headers.get("accept", ""))
    if wants_csv:
        return Response(
            report.to_csv(),
            media_type=CSV,
            headers={"Content-Disposition": f'attachment; filename="{report.name}.csv"'},
        )
    return Response(report.model_dump(mode="json"))


def provide_filters(
    settings: Settings,
    actor: Actor,
    db_session: Session,
    period_from: From,
    period_to: To,
    unit_id: uuid.UUID | None = None,
    project_id: uuid.UUID | None = None,
) -> ReportFilter:
    """The filters every report over a period shares, checked (400 naming the field; 404
    for a unit or project the caller may not see)."""
    check_period(period_from, period_to, settings.max_range_days)
    filters = ReportFilter(period_from, period_to, unit_id=unit_id, project_id=project_id)
    check_visible(db_session, actor, filters)
    return filters


class ReportController(Controller):
    """Oversight reports: admins and auditors see every unit, anybody else their own."""

    path = "/reports"
    tags = ["reports"]
    dependencies = {"filters": Provide(provide_filters, sync_to_thread=True)}

    @get("/utilisation", responses=ANSWERS, summary="Booked / available working hours")
    def utilisation(
        self,
        request: AnyRequest,
        actor: Actor,
        db_session: Session,
        filters: ReportFilter,
        kind: ResourceKind | None = None,
        device_type_id: uuid.UUID | None = None,
        group: Grouping = Grouping.MONTH,
        by: Level = Level.RESOURCE,
        format: Format | None = None,
    ) -> Response[Any]:
        filters = replace(filters, kind=kind.value if kind else None,
                          device_type_id=device_type_id, group=group)  # fmt: skip
        return _answer(request, utilisation.report(db_session, actor, filters, by.value), format)

    @get("/fulfilment", responses=ANSWERS, summary="Requests made, served, refused, withdrawn")
    def fulfilment(
        self, request: AnyRequest, actor: Actor, db_session: Session, filters: ReportFilter,
        format: Format | None = None,
    ) -> Response[Any]:  # fmt: skip
        return _answer(request, fulfilment.report(db_session, actor, filters), format)

    @get(
        "/reciprocity", responses=ANSWERS, summary="Hours and money each unit lent each other unit"
    )
    def reciprocity(
        self, request: AnyRequest, actor: Actor, db_session: Session, filters: ReportFilter,
        format: Format | None = None,
    ) -> Response[Any]:  # fmt: skip
        return _answer(request, reciprocity.pairs(db_session, actor, filters), format)

    @get(
        "/reciprocity/balances",
        responses=ANSWERS,
        summary="Each unit's lent, borrowed and net hours and money",
    )
    def reciprocity_balances(
        self, request: AnyRequest, actor: Actor, db_session: Session, filters: ReportFilter,
        format: Format | None = None,
    ) -> Response[Any]:  # fmt: skip
        return _answer(request, reciprocity.balances(db_session, actor, filters), format)

    @get("/caps", responses=ANSWERS, summary="Agreement and lending caps used, flagged at 80 %")
    def caps(
        self, request: AnyRequest, actor: Actor, db_session: Session, filters: ReportFilter,
        format: Format | None = None,
    ) -> Response[Any]:  # fmt: skip
        return _answer(request, caps.report(db_session, actor, filters), format)

    @get("/money", responses=ANSWERS, summary="Pledged, received, held, spent per funder; burn")
    def money(
        self,
        request: AnyRequest,
        actor: Actor,
        db_session: Session,
        unit_id: uuid.UUID | None = None,
        project_id: uuid.UUID | None = None,
        period_from: Since = None,
        period_to: Until = None,
        format: Format | None = None,
    ) -> Response[Any]:
        check_days(period_from, period_to)
        if unit_id is not None:
            check_visible(db_session, actor, ReportFilter(date.min, date.min, unit_id=unit_id))
        report = money.report(db_session, actor, project_id=project_id, unit_id=unit_id,
                              period_from=period_from, period_to=period_to)  # fmt: skip
        return _answer(request, report, format)

    @get("/no-shows", responses=ANSWERS, summary="No-shows and late cancellations, fees charged")
    def no_shows(
        self,
        request: AnyRequest,
        actor: Actor,
        db_session: Session,
        filters: ReportFilter,
        late_hours: Annotated[
            int,
            QueryParameter(ge=0, le=24 * 30, description="Late: cancelled this close to the start"),
        ] = 24,
        format: Format | None = None,
    ) -> Response[Any]:
        return _answer(request, noshows.report(db_session, actor, filters, late_hours), format)


def document_formats(app: Any) -> None:
    """Say in the OpenAPI document that every report answers JSON or CSV (``text/csv``,
    a string with the JSON's columns); the routes return a ``Response`` whose content type
    depends on the request, which Litestar cannot infer."""
    from litestar.openapi.spec import OpenAPIMediaType, OpenAPIResponse, OpenAPIType, Schema

    for path, item in (app.openapi_schema.paths or {}).items():
        if not path.startswith("/reports/") or item.get is None:
            continue
        ok = (item.get.responses or {}).get("200")
        if isinstance(ok, OpenAPIResponse):
            csv = OpenAPIMediaType(schema=Schema(type=OpenAPIType.STRING))
            ok.content = {**(ok.content or {}), CSV: csv}
