"""A report's filters and who may see what: the visibility rules of bookings and projects.

Admins and auditors see every unit; anybody else sees their own unit's data (resources,
requests) and the loans their unit lends or borrows: the rule of ``GET /bookings``.
A unit or project filter the caller may not see answers 404, as elsewhere in the API.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select, true
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.bookings.models import Booking
from app.errors import InvalidInput, NotFound
from app.projects.models import Project
from app.projects.services import get_project
from app.schemas import MAX_YEAR, MIN_YEAR
from app.units.models import Unit


class Grouping(StrEnum):
    """Calendar buckets of a report over time (UTC; weeks start on Monday)."""

    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class ReportFilter:
    """A report's filters, checked: the period is ``[start, end)`` in UTC."""

    period_from: date
    period_to: date
    """The last day included."""
    unit_id: uuid.UUID | None = None
    project_id: uuid.UUID | None = None
    kind: str | None = None
    device_type_id: uuid.UUID | None = None
    group: Grouping = Grouping.MONTH

    @property
    def start(self) -> datetime:
        """The first instant of the period (UTC midnight of ``period_from``)."""
        return datetime.combine(self.period_from, time(0), UTC)

    @property
    def end(self) -> datetime:
        """The instant after the period (UTC midnight after ``period_to``)."""
        return datetime.combine(self.period_to + timedelta(days=1), time(0), UTC)


def check_days(period_from: date | None, period_to: date | None) -> None:
    """Refuse an out-of-range day or an inverted period (either end may be open)."""
    for name, day in (("from", period_from), ("to", period_to)):
        if day is not None and not MIN_YEAR <= day.year <= MAX_YEAR:
            raise InvalidInput(
                f"{name}: must lie in the years {MIN_YEAR} to {MAX_YEAR}", field=name
            )
    if period_from is not None and period_to is not None and period_to < period_from:
        raise InvalidInput("to: must not be before from", field="to")


def check_period(period_from: date, period_to: date, max_days: int) -> None:
    """Refuse an inverted, over-long or out-of-range period, naming the field."""
    check_days(period_from, period_to)
    if (period_to - period_from).days + 1 > max_days:
        raise InvalidInput(f"to: the period spans at most {max_days} days", field="to")


def check_visible(session: Session, actor: Actor, filters: ReportFilter) -> None:
    """404 for a unit or project filter the actor may not see."""
    if filters.unit_id is not None:
        if session.get(Unit, filters.unit_id) is None:
            raise NotFound("no such unit")
        if not actor.sees_everything and filters.unit_id != actor.unit_id:
            raise NotFound("no such unit")
    if filters.project_id is not None:
        get_project(session, actor, filters.project_id)


def unit_scope(actor: Actor, filters: ReportFilter) -> uuid.UUID | None:
    """The one unit whose data the report covers, or None for every unit."""
    if filters.unit_id is not None:
        return filters.unit_id
    return None if actor.sees_everything else actor.unit_id


def visible_bookings(actor: Actor, filters: ReportFilter) -> ColumnElement[bool]:
    """SQL: bookings the actor's unit (or the filtered unit) lends or borrows."""
    unit = unit_scope(actor, filters)
    if unit is None:
        return true()
    return or_(Booking.borrower_unit_id == unit, Booking.lender_unit_id == unit)


def unit_names(session: Session) -> dict[uuid.UUID, str]:
    """Every unit's code, for labelling rows."""
    return {uid: code for uid, code in session.execute(select(Unit.id, Unit.code))}


def buckets(filters: ReportFilter) -> list[tuple[datetime, datetime]]:
    """The period cut into weeks or months (the first and last clipped to the period)."""
    out: list[tuple[datetime, datetime]] = []
    cursor = filters.start
    while cursor < filters.end:
        if filters.group is Grouping.WEEK:
            nxt = datetime.combine(cursor.date() - timedelta(days=cursor.weekday()), time(0), UTC)
            nxt += timedelta(days=7)
        else:
            nxt = datetime(cursor.year + (cursor.month == 12), cursor.month % 12 + 1, 1, tzinfo=UTC)
        out.append((cursor, min(nxt, filters.end)))
        cursor = nxt
    return out


def seconds_between(session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    """SQL: seconds from ``start`` to ``end`` on either engine."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def seconds_sum(session: Session, start: Any, end: Any) -> ColumnElement[Any]:
    """SQL aggregate: the seconds from ``start`` to ``end`` summed over a group
    (PostgreSQL sums intervals: exact, and far cheaper than summing numeric epochs)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", func.sum(end - start))
    return func.sum(seconds_between(session, start, end))


def project_currencies(session: Session) -> dict[uuid.UUID, str]:
    """Every project's currency: reports group bookings by project in SQL (no join per
    booking) and by currency here."""
    return {
        pid: currency for pid, currency in session.execute(select(Project.id, Project.currency))
    }


def clip(session: Session, a: Any, b: Any, *, upper: bool) -> Any:
    """SQL: the earlier (``upper``) or later of two instants on either engine."""
    if session.get_bind().dialect.name == "postgresql":
        return func.least(a, b) if upper else func.greatest(a, b)
    return func.min(a, b) if upper else func.max(a, b)
