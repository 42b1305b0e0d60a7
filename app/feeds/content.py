"""What a feed shows: its bookings, read from the database, as :mod:`calendars` records.

One query serves both the full render and the 304 path, so the ETag computed without
rendering changes exactly when the rendered bytes may change. The 304 path reads only the
columns the ETag covers (``details=False``); the render also reads titles and names.

Privacy: the owner of a feed sees the details of a booking only if their unit borrows or
lends it (or they are admin or auditor); any other booking is a busy block without details.
A recurring series is one event with RRULE, and EXDATE for each occurrence that is not
live (cancelled, declined, released, or skipped at creation).
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, func, or_, select
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.bookings.models import LIVE_STATUSES, Booking, BookingSeries
from app.bookings.models import BookingStatus as AppStatus
from app.bookings.recurring import occurrences
from app.catalog.models import Resource, ResourceKind
from app.feeds.models import FeedKind
from app.projects.models import Project
from calendars import BookingRecord, BookingStatus, FeedSpec, Recurrence

UID_DOMAIN = "copool"
"""Right-hand side of every UID. Fixed, so UIDs survive a change of the public URL."""

DEPARTED_MEMORY = timedelta(days=31)
"""How long after leaving the feed a booking is still read, so that Last-Modified moves
when it leaves (a client polling at least monthly never gets a wrong 304 on Last-Modified;
the ETag is exact regardless)."""

_STATUS = {
    AppStatus.TENTATIVE.value: BookingStatus.TENTATIVE,
    AppStatus.PENDING_APPROVAL.value: BookingStatus.PENDING_APPROVAL,
    AppStatus.CONFIRMED.value: BookingStatus.CONFIRMED,
    AppStatus.COMPLETED.value: BookingStatus.COMPLETED,
    AppStatus.CANCELLED.value: BookingStatus.CANCELLED,
    AppStatus.DECLINED.value: BookingStatus.DECLINED,
    AppStatus.RELEASED.value: BookingStatus.CANCELLED,  # a no-show freed for others
}
_SETTLED = {AppStatus.CONFIRMED.value, AppStatus.COMPLETED.value}


@dataclass(frozen=True, slots=True)
class FeedScope:
    """Whose bookings a feed follows, and for whom (privacy is the owner's)."""

    kind: FeedKind
    target_id: uuid.UUID | None
    owner: Actor
    owner_email: str = ""


def _scope(scope: FeedScope) -> ColumnElement[bool]:
    target = scope.target_id
    if scope.kind in (FeedKind.EXPERT, FeedKind.DEVICE):
        return Booking.resource_id == target
    if scope.kind is FeedKind.UNIT:
        return or_(Booking.borrower_unit_id == target, Booking.lender_unit_id == target)
    if scope.kind is FeedKind.PROJECT:
        return Booking.project_id == target
    # "mine": what the owner booked, and, if they are an expert, what they are booked for.
    return or_(
        Booking.created_by == scope.owner.user_id,
        and_(
            Resource.kind == ResourceKind.EXPERT.value,
            func.lower(Resource.email) == scope.owner_email.lower(),
        ),
    )


_VERSION_COLUMNS = (
    Booking.id,
    Booking.series_id,
    Booking.start,
    Booking.end,
    Booking.status,
    Booking.sequence,
    Booking.updated_at,
    Booking.cancelled_at,
    Booking.borrower_unit_id,
    Booking.lender_unit_id,
    Resource.updated_at.label("resource_updated_at"),
    Project.updated_at.label("project_updated_at"),
)
_DETAIL_COLUMNS = (
    Booking.title,
    Booking.status_reason,
    Resource.name.label("resource_name"),
    Resource.location,
    Project.code.label("project_code"),
    Project.name.label("project_name"),
)


def _selected(scope: FeedScope, spec: FeedSpec, now: datetime) -> ColumnElement[bool]:
    """SQL: the bookings a feed reads at ``now``: those the window and grace period may show
    (plus recently departed ones), and every occurrence of a series that has one of them.
    Resource is joined (the "mine" scope needs it)."""
    window_start, window_end = spec.window(now)
    recent = now - spec.cancelled_grace - DEPARTED_MEMORY
    near = and_(
        Booking.start < window_end,
        Booking.end > window_start - DEPARTED_MEMORY,
        or_(Booking.status.in_(LIVE_STATUSES), Booking.updated_at > recent),
    )
    series_near = (
        select(Booking.series_id)
        .join(Resource, Resource.id == Booking.resource_id)
        .where(_scope(scope), near, Booking.series_id.is_not(None))
    )
    return and_(
        _scope(scope),
        or_(and_(Booking.series_id.is_(None), near), Booking.series_id.in_(series_near)),
    )


def _rows(
    session: Session, scope: FeedScope, spec: FeedSpec, now: datetime, details: bool
) -> Sequence[Row[Any]]:
    """The feed's booking rows, by start (a stable order keeps the ETag stable)."""
    columns: tuple[Any, ...] = _VERSION_COLUMNS + (_DETAIL_COLUMNS if details else ())
    query = (
        select(*columns)
        .join(Resource, Resource.id == Booking.resource_id)
        .join(Project, Project.id == Booking.project_id)
        .where(_selected(scope, spec, now))
        .order_by(Booking.start, Booking.id)
    )
    return session.execute(query).all()


def change_stamp(
    session: Session, scope: FeedScope, spec: FeedSpec, now: datetime
) -> tuple[Any, ...]:
    """One aggregate row over what the feed reads; it differs whenever one of those rows was
    added, removed or changed (every ORM write moves ``updated_at``), so an unchanged stamp
    lets a known version be reused without reading 5,000 rows."""
    query = (
        select(
            func.count(),
            func.max(Booking.updated_at),
            func.sum(Booking.sequence),
            func.max(Resource.updated_at),
            func.max(Project.updated_at),
            func.max(BookingSeries.updated_at),
        )
        .select_from(Booking)
        .join(Resource, Resource.id == Booking.resource_id)
        .join(Project, Project.id == Booking.project_id)
        .outerjoin(BookingSeries, BookingSeries.id == Booking.series_id)
        .where(_selected(scope, spec, now))
    )
    return tuple(session.execute(query).one())


def next_change(spec: FeedSpec, records: Sequence[BookingRecord], now: datetime) -> datetime:
    """The first instant after ``now`` at which time alone changes the feed (a booking enters
    or leaves the window, a grace period ends, the window's years change), if no row does."""
    window_start, window_end = spec.window(now)
    out = [
        datetime(window_start.year + 1, 1, 1, tzinfo=UTC) + spec.window_back,
        datetime(window_end.year + 1, 1, 1, tzinfo=UTC) - spec.window_ahead,
    ]
    for r in records:
        withdrawn = r.withdrawn_at
        if r.start >= window_end:
            out.append(r.start - spec.window_ahead)
        if withdrawn is not None:
            out.append(withdrawn + spec.cancelled_grace)
        if r.last_end_us != math.inf:
            last_end = r.end
            if r.recurrence is not None and r.recurrence.until is not None:
                last_end = r.recurrence.until + (r.end - r.start)
            out.append(last_end + spec.window_back)
    return min(t for t in out if t > now)


def load_records(
    session: Session, scope: FeedScope, spec: FeedSpec, now: datetime, *, details: bool
) -> list[BookingRecord]:
    """The feed's records at ``now``; without ``details`` only what the ETag covers is read."""
    rows = _rows(session, scope, spec, now, details)
    series_ids = {r.series_id for r in rows if r.series_id is not None}
    series = (
        {
            s.id: s
            for s in session.scalars(select(BookingSeries).where(BookingSeries.id.in_(series_ids)))
        }
        if series_ids
        else {}
    )
    by_series: dict[uuid.UUID, list[Row[Any]]] = {}
    for row in rows:
        if row.series_id is not None:
            by_series.setdefault(row.series_id, []).append(row)
    owner = scope.owner
    out: list[BookingRecord] = []
    for row in rows:
        if row.series_id is None:
            out.append(_single(row, owner, details))
        elif by_series[row.series_id][0] is row:  # a series stands where its first occurrence does
            out.append(_series(series[row.series_id], by_series[row.series_id], owner, details))
    return out


def _busy_only(owner: Actor, row: Row[Any]) -> bool:
    return not (
        owner.sees_everything or owner.unit_id in (row.borrower_unit_id, row.lender_unit_id)
    )


def _changed(row: Row[Any]) -> datetime:
    # The resource's and project's names are shown too: their changes are the booking's.
    return max(row.updated_at, row.resource_updated_at, row.project_updated_at)


@dataclass(frozen=True, slots=True)
class _Texts:
    summary: str = ""
    resource: str = ""
    description: str = ""
    location: str = ""


def _texts(row: Row[Any], title: str, details: bool) -> _Texts:
    if not details:
        return _Texts()
    description = f"Project {row.project_code}: {row.project_name}"
    if row.status_reason:
        description += f"\n{row.status_reason}"
    return _Texts(
        summary=title or f"{row.resource_name} ({row.project_code})",
        resource=row.resource_name,
        description=description,
        location=row.location or "",
    )


def _single(row: Row[Any], owner: Actor, details: bool) -> BookingRecord:
    status = _STATUS[row.status]
    texts = _texts(row, row.title if details else "", details)
    withdrawn = (row.cancelled_at or row.updated_at) if status.is_withdrawn else None
    return BookingRecord(
        uid=f"booking-{row.id}@{UID_DOMAIN}",
        start=row.start,
        end=row.end,
        status=status,
        sequence=row.sequence,
        last_modified=_changed(row),
        cancelled_at=withdrawn,
        busy_only=_busy_only(owner, row),
        summary=texts.summary,
        resource=texts.resource,
        description=texts.description,
        location=texts.location,
    )


@functools.lru_cache(maxsize=4096)
def _starts(rrule: str, local_start: str, zone: str) -> tuple[datetime, ...]:
    """UTC starts of every occurrence of a stored series (the rule was checked when booked)."""
    return tuple(occurrences(rrule, datetime.fromisoformat(local_start), zone))


def _until_rule(rrule: str, last_start: datetime) -> str:
    """The series' rule with its end as UNTIL in UTC (RFC 5545), in place of COUNT or UNTIL."""
    parts = [
        p
        for p in rrule.removeprefix("RRULE:").split(";")
        if p and not p.startswith(("COUNT=", "UNTIL="))
    ]
    return ";".join([*parts, "UNTIL=" + last_start.strftime("%Y%m%dT%H%M%SZ")])


def _series(
    series: BookingSeries, rows: list[Row[Any]], owner: Actor, details: bool
) -> BookingRecord:
    starts = _starts(series.rrule, series.local_start, series.time_zone)
    live = [r for r in rows if r.status in LIVE_STATUSES]
    booked = {r.start for r in (live or rows)}
    if not live:
        status, cancelled_at = (
            BookingStatus.CANCELLED,
            max(r.cancelled_at or r.updated_at for r in rows),
        )
    else:
        cancelled_at = None
        statuses = {r.status for r in live}
        if statuses <= _SETTLED:
            status = BookingStatus.CONFIRMED
        elif AppStatus.TENTATIVE.value in statuses:
            status = BookingStatus.TENTATIVE
        else:
            status = BookingStatus.PENDING_APPROVAL
    first = rows[0]
    texts = _texts(first, series.title if details else "", details)
    return BookingRecord(
        uid=f"series-{series.id}@{UID_DOMAIN}",
        start=starts[0],
        end=starts[0] + timedelta(minutes=series.duration_minutes),
        status=status,
        # Every change of an occurrence raises its own sequence by one, so the sum rises
        # with each change of the series as a whole.
        sequence=sum(r.sequence for r in rows),
        last_modified=max(series.updated_at, *(_changed(r) for r in rows)),
        cancelled_at=cancelled_at,
        recurrence=Recurrence(
            _until_rule(series.rrule, starts[-1]),
            series.time_zone,
            exdates=tuple(s for s in starts if s not in booked),
        ),
        busy_only=_busy_only(owner, first),
        summary=texts.summary,
        resource=texts.resource,
        description=texts.description,
        location=texts.location,
    )
