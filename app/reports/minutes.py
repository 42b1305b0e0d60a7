"""Booked minutes per key and time bucket, summed in SQL in one pass over the bookings.

Each booking is put in the bucket its start falls in (a ``CASE`` over the bucket edges,
evaluated once per row: a join with a table of buckets made SQLite scan the bookings once
per bucket) and clipped to that bucket; the few bookings that run past their bucket's end
(over midnight at a week's or month's edge) are read one by one and their remainder
spread over the later buckets in Python.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import case, func, literal, select
from sqlalchemy.orm import Session

from app.base import DateTimeUTC
from app.bookings.availability import Interval
from app.bookings.models import Booking
from app.reports.scope import clip, seconds_between


def per_bucket(
    session: Session, spans: list[Interval], conditions: list[Any], *keys: Any
) -> dict[tuple[Any, ...], list[int]]:
    """Minutes of the bookings meeting ``conditions`` per ``keys`` and bucket of ``spans``
    (consecutive intervals), each booking clipped to the buckets it meets."""
    kind = DateTimeUTC(timezone=True)
    first, last = spans[0][0], spans[-1][1]
    edge: Any = literal(last, kind)
    index: Any = literal(0)
    if len(spans) > 1:
        edge = case(
            *((Booking.start < literal(e, kind), literal(e, kind)) for _, e in spans[:-1]),
            else_=literal(last, kind),
        )
        index = case(
            *((Booking.start < literal(e, kind), i) for i, (_, e) in enumerate(spans[:-1])),
            else_=len(spans) - 1,
        )
    where = [*conditions, Booking.start < last, Booking.end > first]
    start = clip(session, Booking.start, literal(first, kind), upper=False)
    end = clip(session, Booking.end, edge, upper=True)
    rows = (
        select(*(k.label(f"k{n}") for n, k in enumerate(keys)), index.label("i"),
               seconds_between(session, start, end).label("s"))
        .where(*where)
        .subquery()
    )  # fmt: skip
    key_columns = [rows.c[f"k{n}"] for n in range(len(keys))]
    seconds: dict[tuple[Any, ...], list[float]] = defaultdict(lambda: [0.0] * len(spans))
    totals = select(*key_columns, rows.c.i, func.sum(rows.c.s)).group_by(*key_columns, rows.c.i)
    for *key, i, total in session.execute(totals):
        seconds[tuple(key)][i] += float(total)
    overflow = select(*keys, Booking.start, Booking.end).where(*where, Booking.end > edge)
    for *key, b_start, b_end in session.execute(overflow):
        for i, (s, e) in enumerate(spans):
            if b_start < s < b_end:  # a bucket after the one the booking starts in
                seconds[tuple(key)][i] += (min(b_end, e) - s).total_seconds()
    return {k: [round(v / 60) for v in values] for k, values in seconds.items()}
