"""Booked time per key and time bucket, summed in SQL in one pass over the bookings.

Each booking is grouped by the bucket its start falls in (``i``) and the bucket its end
falls in (``j``), both a ``CASE`` over the bucket edges evaluated once per row (a join
with a table of buckets made SQLite scan the bookings once per bucket). Per group the
database returns the count and the sums of the starts and ends (seconds since the
period's start, each clipped to the period); that is enough to split the group's time
exactly: a group within one bucket holds ``Σend − Σstart``, one running from bucket ``i``
into ``j`` holds ``n·edge − Σstart`` in ``i``, whole buckets between and
``Σend − n·edge`` in ``j``. No booking is read one by one.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Integer,
    case,
    func,
    literal,
    literal_column,
    select,
    type_coerce,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from app.base import DateTimeUTC
from app.bookings.availability import Interval
from app.bookings.models import Booking
from app.reports.scope import clip

_INSTANT = DateTimeUTC(timezone=True)
_UNIX_JULIAN_DAY = 2440587.5
"""SQLite's ``julianday()`` of 1970-01-01T00:00Z."""
_EPSILON_DAYS = 5e-9
"""Less than SQLite's resolution of a millisecond, more than a day number's rounding."""


def cast_int(value: Any) -> ColumnElement[Any]:
    """SQL: ``value`` truncated to an integer."""
    return sql_cast(value, Integer)


def _evenly(edges: list[datetime], days: int) -> bool:
    return all((b - a) == timedelta(days=days) for a, b in itertools.pairwise(edges))


def per_bucket(
    session: Session, spans: list[Interval], conditions: list[Any], *keys: Any
) -> dict[tuple[Any, ...], list[int]]:
    """Minutes of the bookings meeting ``conditions`` per ``keys`` and bucket of ``spans``
    (consecutive intervals), each booking clipped to the buckets it meets."""
    seconds = seconds_per_bucket(session, spans, conditions, *keys)
    return {k: [round(v / 60) for v in values] for k, values in seconds.items()}


def seconds_per_bucket(
    session: Session, spans: list[Interval], conditions: list[Any], *keys: Any
) -> dict[tuple[Any, ...], list[float]]:
    """Seconds of the bookings meeting ``conditions`` per ``keys`` and bucket of ``spans``."""
    first, last = spans[0][0], spans[-1][1]
    postgres = session.get_bind().dialect.name == "postgresql"
    start = clip(session, Booking.start, literal(first, _INSTANT), upper=False)
    end = clip(session, Booking.end, literal(last, _INSTANT), upper=True)
    labels = _Labels(spans, postgres)
    i_columns, j_columns = labels.columns(start, end=False), labels.columns(end, end=True)
    # grouped by the labels: a key or bucket computed from bound values would otherwise be
    # rendered twice with different parameters, which PostgreSQL takes for two expressions
    # keys come raw and are converted once per distinct key, not once per row
    named = [*(type_coerce(k, NullType()).label(f"k{n}") for n, k in enumerate(keys)),
             *(c.label(f"b{n}") for n, c in enumerate([*i_columns, *j_columns]))]  # fmt: skip
    query = (
        select(*named, func.count(), _seconds_sum(postgres, first, start),
               _seconds_sum(postgres, first, end))
        .where(*conditions, Booking.start < last, Booking.end > first)
        .group_by(*(literal_column(c.name) for c in named))
    )  # fmt: skip
    offsets = [(s - first).total_seconds() for s, _ in spans] + [(last - first).total_seconds()]
    out: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0] * len(spans))
    width, n_i = len(keys), len(i_columns)
    for row in session.connection().execute(query):
        i = labels.index(row[width : width + n_i], end=False)
        j = labels.index(row[width + n_i : len(named)], end=True)
        n, starts, ends = row[len(named) :]
        _spread(out[tuple(row[:width])], offsets, i, j, n, float(starts), float(ends))
    dialect = session.get_bind().dialect
    convert = [k.type.result_processor(dialect, None) for k in keys]
    return defaultdict(
        lambda: [0.0] * len(spans),
        {tuple(c(v) if c else v for c, v in zip(convert, key, strict=True)): values
         for key, values in out.items()},
    )  # fmt: skip


def _seconds_sum(postgres: bool, origin: datetime, instant: Any) -> ColumnElement[Any]:
    """SQL: the sum of the seconds from ``origin`` to ``instant`` over a group (PostgreSQL
    sums intervals, exactly and far faster than numeric epochs)."""
    if postgres:
        return func.extract("epoch", func.sum(instant - literal(origin, _INSTANT)))
    return func.sum((func.julianday(instant) - literal(_julian(origin))) * 86400.0)


def _julian(instant: datetime) -> float:
    return _UNIX_JULIAN_DAY + instant.timestamp() / 86400


def _spread(
    seconds: list[float], offsets: list[float], i: int, j: int, n: int, starts: float, ends: float
) -> None:
    """Add a group of ``n`` bookings that start in bucket ``i`` and end in ``j``."""
    if i == j:
        seconds[i] += ends - starts
        return
    seconds[i] += n * offsets[i + 1] - starts
    for k in range(i + 1, j):
        seconds[k] += n * (offsets[k + 1] - offsets[k])
    seconds[j] += ends - n * offsets[j]


class _Labels:
    """How SQL names the bucket an instant (clipped to the buckets) falls in, and how
    Python turns that name into the bucket's index.

    UTC weeks are named by arithmetic (PostgreSQL ``date_bin``, SQLite day numbers), far
    cheaper per row than a ``CASE`` over 53 edges; UTC months on SQLite by the stored
    text's ``YYYY-MM``. Months elsewhere (and a zone's months) by that ``CASE``: over a
    dozen edges PostgreSQL runs it faster than ``date_trunc`` with a zone (CPU 0.57 vs
    0.80 s at 1M bookings). An end lies in the bucket that closes at or after it.
    """

    def __init__(self, spans: list[Interval], postgres: bool) -> None:
        self.spans, self.postgres = spans, postgres
        inner = [e for _, e in spans[:-1]]
        midnight = all(e.tzinfo == UTC and e.time() == time(0) for e in inner)
        self.kind = "one" if not inner else "case"
        if not inner:
            return
        if midnight and all(e.weekday() == 0 for e in inner) and _evenly(inner, 7):
            self.kind = "week"
            first = spans[0][0]
            self.origin = datetime.combine(first.date() - timedelta(days=first.weekday()),
                                           time(0), UTC)  # fmt: skip
        elif midnight and all(e.day == 1 for e in inner) and not postgres:
            self.kind = "month"
            self.months = {(s.year, s.month): n for n, (s, _) in enumerate(spans)}
            after = spans[-1][1]
            self.months.setdefault((after.year, after.month), len(spans))

    def columns(self, instant: Any, *, end: bool) -> list[ColumnElement[Any]]:
        """SQL expressions whose values name the bucket of ``instant``."""
        if self.kind == "one":
            return []
        if self.kind == "case":
            inner = [e for _, e in self.spans[:-1]]
            return [case(*(((instant <= literal(e, _INSTANT)) if end
                            else (instant < literal(e, _INSTANT)), n)
                           for n, e in enumerate(inner)), else_=len(inner))]  # fmt: skip
        if self.postgres:
            moment = instant - literal(timedelta(microseconds=1)) if end else instant
            return [func.date_bin(literal(timedelta(days=7)), moment,
                                  literal(self.origin, _INSTANT))]  # fmt: skip
        if self.kind == "week":
            days = func.julianday(instant) - literal(_julian(self.origin))
            # SQLite's instants are whole milliseconds: an end a millisecond past an edge
            # is past it, one exactly on it is not
            return [cast_int(((days - _EPSILON_DAYS) if end else days) / 7)]
        month = func.substr(instant, 1, 7)
        if not end:
            return [month]
        return [month, func.substr(instant, 9) == "01 00:00:00.000000"]

    def index(self, values: Sequence[Any], *, end: bool) -> int:
        """The bucket's index from the values of ``columns``."""
        if self.kind == "one":
            return 0
        if self.kind == "case":
            return int(values[0])
        if self.kind == "week":
            if self.postgres:
                return (values[0] - self.origin).days // 7
            return int(values[0])
        year, month = values[0].split("-")
        return self.months[(int(year), int(month))] - (1 if end and values[1] else 0)
