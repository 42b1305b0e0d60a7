"""Booked time per bucket (app.reports.minutes) against a plain recomputation: bookings that
start before the period, end after it, end exactly on a bucket's edge or run across many
buckets, for UTC weeks and months, a zone's months and a single bucket. Every test runs on
SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.auth.models import Role
from app.bookings.models import Booking
from app.bookings.rules import _months
from app.db import make_engine, make_session_factory
from app.reports.minutes import per_bucket, seconds_per_bucket
from app.reports.scope import Grouping, ReportFilter, buckets
from tests.app import factories as f

PERIOD = ReportFilter(date(2027, 1, 20), date(2027, 4, 10))  # Berlin's clocks change 28 March
SPANS = {
    "week": buckets(ReportFilter(PERIOD.period_from, PERIOD.period_to, group=Grouping.WEEK)),
    "month": buckets(PERIOD),
    "berlin_month": _months(PERIOD.start, PERIOD.end, ZoneInfo("Europe/Berlin")),
    "one": [(PERIOD.start, PERIOD.end)],
}
EDGES = sorted({t for spans in SPANS.values() for span in spans for t in span})

instant_st = st.one_of(
    st.sampled_from(EDGES),  # exactly on an edge
    st.integers(-20 * 1440, 100 * 1440).map(lambda m: PERIOD.start + timedelta(minutes=m)),
)
booking_st = st.tuples(instant_st, st.integers(1, 50 * 1440))


def _reference(bookings: list[tuple[datetime, datetime]], spans: Any) -> list[int]:
    return [
        sum(max(0, int((min(e, s_end) - max(s, s_start)).total_seconds())) for s, e in bookings)
        for s_start, s_end in spans
    ]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw=st.lists(booking_st, min_size=1, max_size=6), kind=st.sampled_from(sorted(SPANS)))
def test_time_per_bucket_equals_a_recomputation(db_url: str, raw: Any, kind: str) -> None:
    bookings = [(start, start + timedelta(minutes=minutes)) for start, minutes in raw]
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as s, s.begin():
            lender, borrower = f.unit(s), f.unit(s)
            lead = f.user(s, borrower.id, Role.PROJECT_LEAD)
            project = f.project(s, borrower.id, lead.id)
            expert = f.expert(s, lender.id)
            for start, end in bookings:  # cancelled: they may overlap one another
                s.add(Booking(resource_id=expert.id, project_id=project.id,
                              borrower_unit_id=borrower.id, lender_unit_id=lender.id,
                              created_by=lead.id, start=start, end=end, block_start=start,
                              block_end=end, status="cancelled"))  # fmt: skip
        spans = SPANS[kind]
        want = _reference(bookings, spans)
        with make_session_factory(engine)() as s:
            condition = [Booking.resource_id == expert.id]
            seconds = seconds_per_bucket(s, spans, condition, Booking.resource_id)
            minutes = per_bucket(s, spans, condition, Booking.resource_id)
        got = seconds.get((expert.id,), [0.0] * len(spans))
        assert [round(v, 3) for v in got] == [float(w) for w in want]
        assert minutes.get((expert.id,), [0] * len(spans)) == [w // 60 for w in want]
    finally:
        engine.dispose()
