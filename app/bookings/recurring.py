"""Recurring bookings: an RRULE over local wall-clock time, stored as single occurrences.

Occurrences are computed in the series' zone (``dateutil.rrule`` over naive local times,
then placed in the zone), so weekly 10:00 Europe/Berlin stays 10:00 local across
daylight-saving changes. Each occurrence is an ordinary booking, cancellable alone.
Without ``skip_conflicts`` one clash refuses the whole series (nothing is written);
with it, the clashing occurrences are left out and listed. A device that needs an
operator books its ``operator_id`` with every occurrence (the operator's bookings point at
the occurrence through ``operator_for_id``); an occurrence whose operator clashes clashes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from dateutil.rrule import rrulestr
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit.services import record, snapshot
from app.auth.actor import Actor
from app.bookings import backfill
from app.bookings.models import Booking, BookingSeries
from app.bookings.schemas import SeriesCreate, SkippedOccurrence
from app.bookings.services import (
    borrowing_unit,
    check_project_period,
    operator_for,
    place_booking,
    visible_resource,
)
from app.errors import Conflict, InvalidInput, NotFound
from app.projects.services import get_project

MAX_OCCURRENCES = 400


def _local_until(rrule: str, zone_name: str) -> str:
    """Rewrite a UTC ``UNTIL=…Z`` as local wall-clock time: dateutil compares it with the
    naive local DTSTART, and mixing naive and aware values is an error there."""
    parts = []
    for part in rrule.split(";"):
        if part.startswith("UNTIL=") and part.endswith("Z"):
            try:
                until = datetime.strptime(part[6:], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            except ValueError:
                raise InvalidInput(
                    "rrule: UNTIL must look like 20270301T000000Z", field="rrule"
                ) from None
            local = until.astimezone(ZoneInfo(zone_name)).replace(tzinfo=None)
            part = "UNTIL=" + local.strftime("%Y%m%dT%H%M%S")
        parts.append(part)
    return ";".join(parts)


def occurrences(rrule: str, local_start: datetime, zone_name: str) -> list[datetime]:
    """UTC starts of a series whose first occurrence is ``local_start`` (naive) in the zone."""
    try:
        rule = rrulestr(
            _local_until(rrule, zone_name), dtstart=local_start, forceset=True, cache=False
        )
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"rrule: {exc}", field="rrule") from None
    zone = ZoneInfo(zone_name)
    out: list[datetime] = []
    for naive in rule:
        out.append(naive.replace(tzinfo=zone).astimezone(UTC))
        if len(out) > MAX_OCCURRENCES:
            raise InvalidInput(f"rrule: more than {MAX_OCCURRENCES} occurrences", field="rrule")
    if not out:
        raise InvalidInput("rrule: the rule yields no occurrence", field="rrule")
    return out


def create_series(
    session: Session, actor: Actor, data: SeriesCreate
) -> tuple[BookingSeries, list[Booking], list[SkippedOccurrence]]:
    """Book every occurrence of a recurring series (or refuse all of it on a clash)."""
    project = get_project(session, actor, data.project_id)
    borrower = borrowing_unit(session, actor, project)
    resource = visible_resource(session, actor, data.resource_id)
    rule = data.rrule
    starts = occurrences(rule, data.local_start, data.time_zone)
    length = timedelta(minutes=data.duration_minutes)
    check_project_period(project, starts[0], starts[-1] + length)
    backfill.admit(  # the first occurrence ends first: if it is not past, none is
        session,
        actor,
        resource_id=resource.id,
        end=starts[0] + length,
        backfill=data.backfill,
        field="local_start",
        detail={"project_id": str(project.id), "series_rrule": rule},
    )
    operator = operator_for(session, actor, resource, data.operator_id, borrower, starts[0].date())
    series = BookingSeries(
        resource_id=resource.id,
        project_id=project.id,
        created_by=actor.user_id,
        title=data.title,
        rrule=rule,
        time_zone=data.time_zone,
        local_start=data.local_start.isoformat(timespec="seconds"),
        duration_minutes=data.duration_minutes,
        skipped=[],
        sequence=0,
    )
    session.add(series)
    session.flush()
    bookings: list[Booking] = []
    skipped: list[SkippedOccurrence] = []
    for start in starts:
        try:
            with session.begin_nested():
                booking = place_booking(
                    session,
                    actor,
                    resource=resource,
                    project=project,
                    borrower_unit_id=borrower,
                    start=start,
                    end=start + length,
                    title=data.title,
                    series_id=series.id,
                    audit=False,
                )
                booking.recurrence_id = start
                if operator is not None:
                    place_booking(
                        session,
                        actor,
                        resource=operator,
                        project=project,
                        borrower_unit_id=borrower,
                        start=start,
                        end=start + length,
                        title=f"{data.title} (operating {resource.name})",
                        audit=False,
                        operator_for_id=booking.id,
                    )
                bookings.append(booking)
        except Conflict as exc:
            if not data.skip_conflicts:
                raise Conflict(
                    f"occurrence {start.isoformat()}: {exc.detail}",
                    field="rrule",
                    code=exc.extra.get("code", "conflict"),
                    conflicts=exc.extra.get("conflicts", []),
                ) from None
            skipped.append(SkippedOccurrence(start=start, end=start + length, reason=exc.detail))
    if not bookings:
        raise Conflict(
            "every occurrence clashes; nothing was booked", field="rrule", code="overlap"
        )
    series.skipped = [s.start.isoformat() for s in skipped]
    session.flush()
    record(
        session,
        actor,
        "series.create",
        series,
        unit_id=resource.unit_id,
        after=snapshot(
            series,
            occurrences=[b.start.isoformat() for b in bookings],
            operator_id=operator.id if operator else None,
        ),
    )
    return series, bookings, skipped


def get_series(
    session: Session, actor: Actor, series_id: uuid.UUID
) -> tuple[BookingSeries, list[Booking]]:
    """A series and its occurrences, if the actor's unit borrows or lends them."""
    from app.bookings.services import get_booking

    series = session.get(BookingSeries, series_id)
    if series is None:
        raise NotFound("no such series")
    bookings = list(
        session.scalars(
            select(Booking).where(Booking.series_id == series.id).order_by(Booking.start)
        )
    )
    if not bookings:
        raise NotFound("no such series")
    get_booking(session, actor, bookings[0].id)  # visibility follows the bookings
    return series, bookings
