"""What a feed shows: its bookings, read from the database, as :mod:`calendars` records.

One query serves both the full render and the 304 path, so the ETag computed without
rendering changes exactly when the rendered bytes may change. The 304 path reads only the
columns the ETag covers (``details=False``); the render also reads titles and names.

The rows are plain columns, shaped by SQL so that Python does little per row: ids come as
UUID text, the privacy flag, the booking's last change (with its resource's and project's)
and its withdrawal instant are computed by the database, and SQLite's timestamps are parsed
by ``datetime.fromisoformat`` instead of SQLAlchemy's per-value conversion. A 5,000-booking
feed is read in about a third of the time ORM-typed columns took.

Privacy: the owner of a feed sees the details of a booking only if their unit borrows or
lends it, or co-funds its project (``app.auth.policy``), or they are admin or auditor; any
other booking is a busy block without details. A unit's feed shows its loans both ways and
the bookings of the projects it co-funds.
A recurring series is one event with RRULE, EXDATE for each occurrence that is not live
(cancelled, declined, released, or skipped at creation), and a RECURRENCE-ID event for
each occurrence moved or renamed alone (``bookings.recurrence_id`` keeps where the rule
put it). A split series ("this and following") is two series, two UIDs.
"""

from __future__ import annotations

import functools
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Dialect,
    Row,
    Select,
    String,
    TypeDecorator,
    and_,
    bindparam,
    case,
    func,
    literal,
    literal_column,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from app.auth.actor import Actor
from app.auth.policy import cofunded_projects
from app.bookings.models import LIVE_STATUSES, Booking, BookingSeries
from app.bookings.models import BookingStatus as AppStatus
from app.bookings.recurring import occurrences
from app.catalog.models import Resource, ResourceKind
from app.feeds.models import FeedKind
from app.projects.models import Project
from calendars import BookingRecord, BookingStatus, FeedSpec, Override, Recurrence

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


def _scope(
    kind: FeedKind, booking: type[Booking] = Booking, resource: type[Resource] = Resource
) -> ColumnElement[bool]:
    """SQL: the bookings a feed of ``kind`` follows (parameters: see :func:`_params`)."""
    if kind in (FeedKind.EXPERT, FeedKind.DEVICE):
        return booking.resource_id == bindparam("target")
    if kind is FeedKind.UNIT:  # its loans both ways, and what the projects it co-funds book
        return or_(
            booking.borrower_unit_id == bindparam("target"),
            booking.lender_unit_id == bindparam("target"),
            booking.project_id.in_(cofunded_projects(bindparam("target"))),
        )
    if kind is FeedKind.PROJECT:
        return booking.project_id == bindparam("target")
    # "mine": what the owner booked, and, if they are an expert, what they are booked for.
    return or_(
        booking.created_by == bindparam("user"),
        and_(
            resource.kind == ResourceKind.EXPERT.value,
            func.lower(resource.email) == bindparam("email"),
        ),
    )


def _near(booking: type[Booking] = Booking) -> ColumnElement[bool]:
    """SQL: the window and grace period may show the booking (or it left them recently)."""
    return and_(
        booking.start < bindparam("window_end"),
        booking.end > bindparam("departed"),
        or_(booking.status.in_(LIVE_STATUSES), booking.updated_at > bindparam("recent")),
    )


def _params(scope: FeedScope, spec: FeedSpec, now: datetime) -> dict[str, Any]:
    """The values of the feed queries' parameters at ``now``."""
    window_start, window_end = spec.window(now)
    values: dict[str, Any] = {
        "window_end": window_end,
        "departed": window_start - DEPARTED_MEMORY,
        "recent": now - spec.cancelled_grace - DEPARTED_MEMORY,
    }
    if scope.kind is FeedKind.MINE:
        values |= {"user": scope.owner.user_id, "email": scope.owner_email.lower()}
    else:
        values["target"] = scope.target_id
    return values


class _UuidText(FunctionElement[str]):
    """SQL: a UUID column as its canonical text (``8-4-4-4-12``, lower case), or NULL.

    Building 20,000 :class:`uuid.UUID` objects was a fifth of a big feed's read time, and
    the feed needs the text anyway (UIDs)."""

    type = String()
    name = "uuid_text"
    inherit_cache = True


@compiles(_UuidText)
def _uuid_text(element: _UuidText, compiler: SQLCompiler, **kw: Any) -> str:
    return f"CAST({compiler.process(element.clauses, **kw)} AS VARCHAR)"


@compiles(_UuidText, "sqlite")
def _uuid_text_sqlite(element: _UuidText, compiler: SQLCompiler, **kw: Any) -> str:
    # advanced-alchemy stores UUIDs as 16 big-endian bytes on SQLite.
    arg = compiler.process(element.clauses, **kw)
    hex_ = f"lower(hex({arg}))"
    parts = "||'-'||".join(
        f"substr({hex_},{at},{n})" for at, n in ((1, 8), (9, 4), (13, 4), (17, 4), (21, 12))
    )
    return f"CASE WHEN {arg} IS NULL THEN NULL ELSE {parts} END"


class _Latest(FunctionElement[datetime]):
    """SQL: the latest of some non-null timestamps (GREATEST; SQLite's scalar max)."""

    type = DateTime(timezone=True)
    name = "greatest"
    inherit_cache = True


@compiles(_Latest)
def _latest(element: _Latest, compiler: SQLCompiler, **kw: Any) -> str:
    return f"GREATEST({compiler.process(element.clauses, **kw)})"


@compiles(_Latest, "sqlite")
def _latest_sqlite(element: _Latest, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite keeps timestamps as text in one fixed format, so text order is time order.
    return f"max({compiler.process(element.clauses, **kw)})"


def _sqlite_instant(value: str | None) -> datetime | None:
    # Appending the offset is four times cheaper than .replace(tzinfo=UTC) afterwards.
    return None if value is None else datetime.fromisoformat(value + "+00:00")


class _Instant(TypeDecorator[datetime]):
    """A timestamp column read cheaply: SQLite's text goes through ``fromisoformat`` (C) and
    is UTC; PostgreSQL's driver already returns aware datetimes."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        """Parse SQLite's text; take the driver's datetimes elsewhere."""
        return _sqlite_instant if dialect.name == "sqlite" else None


def _instant(column: Any) -> ColumnElement[datetime]:
    return type_coerce(column, _Instant())


def _version_columns(sees_everything: bool) -> tuple[Any, ...]:
    """What the ETag covers of a booking row, shaped in SQL (see the module doc)."""
    if sees_everything:
        busy: ColumnElement[int] = literal(0)
    else:
        mine = or_(
            Booking.borrower_unit_id == bindparam("unit"),
            Booking.lender_unit_id == bindparam("unit"),
            Booking.project_id.in_(cofunded_projects(bindparam("unit"))),
        )
        busy = case((mine, 0), else_=1)
    return (
        _UuidText(Booking.id).label("id"),
        _UuidText(Booking.series_id).label("series_id"),
        _instant(Booking.recurrence_id).label("recurrence_id"),
        _instant(Booking.start).label("start"),
        _instant(Booking.end).label("end"),
        Booking.status,
        Booking.sequence,
        # The resource's and project's names are shown too: their changes are the booking's.
        _instant(_Latest(Booking.updated_at, Resource.updated_at, Project.updated_at)).label(
            "changed"
        ),
        _instant(
            case(
                (
                    Booking.status.not_in(LIVE_STATUSES),
                    func.coalesce(Booking.cancelled_at, Booking.updated_at),
                )
            )
        ).label("withdrawn_at"),
        busy.label("busy"),
    )


_DETAIL_COLUMNS = (
    Booking.title,
    Booking.status_reason,
    Resource.name.label("resource_name"),
    Resource.location,
    Project.code.label("project_code"),
    Project.name.label("project_name"),
)


def _selected(kind: FeedKind) -> ColumnElement[bool]:
    """SQL: the bookings a feed reads at ``now``: those the window and grace period may show
    (plus recently departed ones), and every occurrence of a series that has one of them.
    The "mine" scope needs Resource joined."""
    # Whether another occurrence of the series is near is asked only of occurrences that
    # are not near themselves, through the series index: on SQLite this halves the cost of
    # the change stamp (and so of a 304) against an IN over all of the feed's series.
    other = aliased(Booking)
    other_near: Select[Any] = select(literal_column("1")).select_from(other)
    if kind is FeedKind.MINE:
        other_resource = aliased(Resource)
        other_near = other_near.join(other_resource, other_resource.id == other.resource_id)
        other_scope = _scope(kind, other, other_resource)
    else:
        other_scope = _scope(kind, other)
    other_near = other_near.where(other.series_id == Booking.series_id, other_scope, _near(other))
    return and_(
        _scope(kind), or_(_near(), and_(Booking.series_id.is_not(None), other_near.exists()))
    )


# The queries are built once per kind and reused with parameters: SQLAlchemy then finds
# their compiled form without rebuilding and hashing the expression (~1.5 ms of each 304).
@functools.cache
def _rows_query(kind: FeedKind, sees_everything: bool, details: bool) -> Select[Any]:
    columns = _version_columns(sees_everything) + (_DETAIL_COLUMNS if details else ())
    return (
        select(*columns)
        .join(Resource, Resource.id == Booking.resource_id)
        .join(Project, Project.id == Booking.project_id)
        .where(_selected(kind))
        .order_by(Booking.start, Booking.id)
    )


def _rows(
    session: Session, scope: FeedScope, spec: FeedSpec, now: datetime, details: bool
) -> Sequence[Row[Any]]:
    """The feed's booking rows, by start (a stable order keeps the ETag stable)."""
    owner = scope.owner
    query = _rows_query(scope.kind, owner.sees_everything, details)
    params = _params(scope, spec, now)
    if not owner.sees_everything:
        params["unit"] = owner.unit_id
    return session.execute(query, params).all()


@functools.cache
def _stamp_query(kind: FeedKind) -> Select[Any]:
    # Resources and projects are few and rarely edited: the latest change over each whole
    # table stands in for a join per booking row (a needless 200 now and then, never a
    # wrong 304), which made the aggregate a fifth cheaper.
    aggregates: tuple[Any, ...] = (
        func.count(),
        func.max(Booking.updated_at),
        func.sum(Booking.sequence),
        func.max(BookingSeries.updated_at),
        select(func.max(Resource.updated_at)).correlate(None).scalar_subquery(),
        select(func.max(Project.updated_at)).correlate(None).scalar_subquery(),
    )
    query = (
        select(*aggregates)
        .select_from(Booking)
        .outerjoin(BookingSeries, BookingSeries.id == Booking.series_id)
        .where(_selected(kind))
    )
    if kind is FeedKind.MINE:
        return query.join(Resource, Resource.id == Booking.resource_id)
    return query


def change_stamp(
    session: Session, scope: FeedScope, spec: FeedSpec, now: datetime
) -> tuple[Any, ...]:
    """One aggregate row over what the feed reads; it differs whenever one of those rows was
    added, removed or changed (every ORM write moves ``updated_at``), so an unchanged stamp
    lets a known version be reused without reading 5,000 rows."""
    return tuple(session.execute(_stamp_query(scope.kind), _params(scope, spec, now)).one())


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
    by_series: dict[str, list[Row[Any]]] = {}
    for row in rows:
        if row.series_id is not None:
            by_series.setdefault(row.series_id, []).append(row)
    series = (
        {
            str(s.id): s
            for s in session.scalars(
                select(BookingSeries).where(BookingSeries.id.in_([uuid.UUID(i) for i in by_series]))
            )
        }
        if by_series
        else {}
    )
    out: list[BookingRecord] = []
    for row in rows:
        if row.series_id is None:
            out.append(_single(row, details))
        elif by_series[row.series_id][0] is row:  # a series stands where its first occurrence does
            out.append(_series(series[row.series_id], by_series[row.series_id], details))
    return out


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


def _single(row: Row[Any], details: bool) -> BookingRecord:
    texts = _texts(row, row.title if details else "", details)
    return BookingRecord(
        uid=f"booking-{row.id}@{UID_DOMAIN}",
        start=row.start,
        end=row.end,
        status=_STATUS[row.status],
        sequence=row.sequence,
        last_modified=row.changed,
        cancelled_at=row.withdrawn_at,
        busy_only=bool(row.busy),
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


def _series(series: BookingSeries, rows: list[Row[Any]], details: bool) -> BookingRecord:
    starts = _starts(series.rrule, series.local_start, series.time_zone)
    live = [r for r in rows if r.status in LIVE_STATUSES]
    status, cancelled_at = _series_status(rows, live)
    first = rows[0]
    texts = _texts(first, series.title if details else "", details)
    length = timedelta(minutes=series.duration_minutes)
    return BookingRecord(
        uid=f"series-{series.id}@{UID_DOMAIN}",
        start=starts[0],
        end=starts[0] + length,
        status=status,
        # Every change of an occurrence raises its own sequence by one, so the sum rises
        # with each change of the series as a whole; the series' own sequence rises by what
        # leaves it when it is split, so the sum never falls.
        sequence=series.sequence + sum(r.sequence for r in rows),
        last_modified=max(series.updated_at, *(r.changed for r in rows)),
        cancelled_at=cancelled_at,
        recurrence=Recurrence(
            _until_rule(series.rrule, starts[-1]),
            series.time_zone,
            exdates=_exdates(starts, live or rows),
            overrides=_overrides(series, live, length, details),
        ),
        busy_only=bool(first.busy),
        summary=texts.summary,
        resource=texts.resource,
        description=texts.description,
        location=texts.location,
    )


def _key(row: Row[Any]) -> datetime:
    """Where the series' rule puts the occurrence (moved alone, it keeps this)."""
    return row.recurrence_id or row.start


def _exdates(starts: Sequence[datetime], shown: list[Row[Any]]) -> tuple[datetime, ...]:
    """The rule's occurrences without a live booking (cancelled, declined, released, or
    skipped at creation); all of them when the whole series is withdrawn."""
    booked = {_key(r) for r in shown}
    return tuple(s for s in starts if s not in booked)


def _overrides(
    series: BookingSeries, live: list[Row[Any]], length: timedelta, details: bool
) -> tuple[Override, ...]:
    """Occurrences moved or renamed alone: a RECURRENCE-ID event each."""
    out = []
    for r in live:
        key = _key(r)
        title = r.title if details and r.title != series.title else ""
        if (r.start, r.end) != (key, key + length) or title:
            out.append(Override(recurrence_id=key, start=r.start, end=r.end, summary=title))
    return tuple(out)


def _series_status(
    rows: list[Row[Any]], live: list[Row[Any]]
) -> tuple[BookingStatus, datetime | None]:
    """A series' status: cancelled once no occurrence is live, else the least settled."""
    if not live:
        return BookingStatus.CANCELLED, max(r.withdrawn_at for r in rows)
    statuses = {r.status for r in live}
    if statuses <= _SETTLED:
        return BookingStatus.CONFIRMED, None
    if AppStatus.TENTATIVE.value in statuses:
        return BookingStatus.TENTATIVE, None
    return BookingStatus.PENDING_APPROVAL, None
