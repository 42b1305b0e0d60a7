"""Cap usage report against a plain-Python recomputation, JSON = CSV, visibility.
Every test runs on SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.bookings.models import Booking
from app.db import make_engine, make_session_factory
from app.reports import caps
from app.reports.scope import ReportFilter
from tests.app import factories as f

P_FROM, P_TO = date(2027, 3, 10), date(2027, 4, 20)
START, END = datetime(2027, 3, 10, tzinfo=UTC), datetime(2027, 4, 21, tzinfo=UTC)
BERLIN = ZoneInfo("Europe/Berlin")
STATUSES = ["tentative", "confirmed", "completed", "cancelled", "declined"]
LIVE = set(STATUSES[:3])

loan_st = st.tuples(
    st.integers(0, 1),  # expert
    st.integers(0, 1),  # borrower
    st.integers(0, 4 * 1440),  # gap before, minutes
    st.integers(1, 32).map(lambda q: q * 15),
    st.sampled_from(STATUSES),
)


def _months(zone: ZoneInfo) -> list[tuple[datetime, datetime]]:
    local = START.astimezone(zone)
    month = datetime(local.year, local.month, 1, tzinfo=zone)
    out = []
    while month.astimezone(UTC) < END:
        nxt = datetime(month.year + (month.month == 12), month.month % 12 + 1, 1, tzinfo=zone)
        out.append((month.astimezone(UTC), nxt.astimezone(UTC)))
        month = nxt
    return out


def _working_minutes(month: tuple[datetime, datetime]) -> int:
    """Weekdays 09:00–17:00 Berlin, counted day by day (the reference, not the engine's code)."""
    day, last, total = month[0].astimezone(BERLIN).date(), month[1].astimezone(BERLIN).date(), 0
    while day < last:
        total += 480 if day.weekday() < 5 else 0
        day += timedelta(days=1)
    return total


def _used(loans: list[dict[str, Any]], month: tuple[datetime, datetime]) -> int:
    return sum(
        int((min(b["end"], month[1]) - max(b["start"], month[0])).total_seconds() // 60)
        for b in loans
        if b["start"] < month[1] and b["end"] > month[0]
    )


def _row(cap: str, agreement: Any, expert: Any, month: Any, allowed: int, used: int) -> tuple:
    flag = used >= 0.8 * allowed if allowed else used > 0
    return (cap, agreement, str(expert), month[0].date().isoformat(), allowed, used, flag)


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    loans=st.lists(loan_st, max_size=12),
    agreement_caps=st.tuples(st.integers(0, 40), st.one_of(st.none(), st.integers(0, 40))),
    lending_bp=st.tuples(st.integers(0, 10_000), st.sampled_from([2_000, 10_000])),
)
def test_caps_equal_a_recomputation_from_raw_rows(
    db_url: str, loans: Any, agreement_caps: Any, lending_bp: Any
) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    try:
        with factory() as s, s.begin():
            lender, borrowers = f.unit(s).id, [f.unit(s).id, f.unit(s).id]
            users = [f.user(s, b, Role.PROJECT_LEAD).id for b in borrowers]
            projects = [f.project(s, b, users[i]).id for i, b in enumerate(borrowers)]
            agreements = [
                f.agreement(s, lender, b, hours_per_month_cap=cap).id
                for b, cap in zip(borrowers, agreement_caps, strict=True)
            ]
            experts = [f.expert(s, lender, lending_cap_bp=bp).id for bp in lending_bp]
            cursor = [START - timedelta(days=3)] * 2
            made = []
            for e, b, gap, minutes, status in loans:
                start = cursor[e] + timedelta(minutes=gap)
                end = cursor[e] = start + timedelta(minutes=minutes)
                s.add(Booking(resource_id=experts[e], project_id=projects[b], agreement_id=agreements[b],
                              borrower_unit_id=borrowers[b], lender_unit_id=lender,
                              created_by=users[b], start=start, end=end, block_start=start,
                              block_end=end, status=status))  # fmt: skip
                made.append({"e": e, "b": b, "start": start, "end": end, "status": status})
        want = set()
        live = [m for m in made if m["status"] in LIVE]
        in_period = [m for m in live if m["start"] < END and m["end"] > START]
        for e in range(2):
            for b in range(2):
                if agreement_caps[b] is None or not any(
                    m["e"] == e and m["b"] == b for m in in_period
                ):
                    continue
                mine = [m for m in live if m["e"] == e and m["b"] == b]
                for month in _months(ZoneInfo("UTC")):
                    want.add(_row("agreement_cap", str(agreements[b]), experts[e], month,
                                  agreement_caps[b] * 60, _used(mine, month)))  # fmt: skip
            if lending_bp[e] < 10_000 and any(m["e"] == e for m in in_period):
                mine = [m for m in live if m["e"] == e]
                for month in _months(BERLIN):
                    allowed = _working_minutes(month) * lending_bp[e] // 10_000
                    want.add(
                        _row("lending_cap", None, experts[e], month, allowed, _used(mine, month))
                    )
        with factory() as s:
            rows = caps.report(s, SYSTEM, ReportFilter(P_FROM, P_TO, unit_id=lender)).rows
        got = {
            (r["cap"], r["agreement_id"], r["resource_id"], r["month"], r["allowed_minutes"],
             r["used_minutes"], r["over_80"])
            for r in rows
        }  # fmt: skip
        assert len(rows) == len(got)
        assert got == want
    finally:
        engine.dispose()


def test_caps_json_and_csv_agree_and_outsiders_see_nothing(client: Any, world: Any) -> None:
    admin = world.user("admin", "ADM", Role.ADMIN)
    borrower = world.user("borrower", "BOR", Role.REQUESTER)
    outsider = world.user("outsider", "OUT", Role.UNIT_MANAGER)
    with world.session() as s:
        lender = f.unit(s, "LEN").id
        agreement = f.agreement(s, lender, world.units["BOR"], hours_per_month_cap=2)
        expert = f.expert(s, lender)
        project = f.project(s, world.units["BOR"], world.users["borrower"])
        t = datetime(2027, 3, 2, 9, tzinfo=UTC)
        s.add(Booking(resource_id=expert.id, project_id=project.id, agreement_id=agreement.id,
                      borrower_unit_id=world.units["BOR"], lender_unit_id=lender,
                      created_by=world.users["borrower"], start=t, end=t + timedelta(minutes=100),
                      block_start=t, block_end=t + timedelta(minutes=100), status="confirmed"))  # fmt: skip
    period = {"from": "2027-03-01", "to": "2027-03-31"}
    body = client.get("/reports/caps", params=period, headers=admin).json()
    assert [(r["used_minutes"], r["allowed_minutes"], r["over_80"]) for r in body["rows"]] == [
        (100, 120, True)
    ]
    answer = client.get("/reports/caps", params={**period, "format": "csv"}, headers=admin)
    lines = list(csv.reader(io.StringIO(answer.text)))
    assert lines[0] == body["columns"]
    assert lines[1:] == [["" if r[c] is None else str(r[c]) for c in body["columns"]]
                         for r in body["rows"]]  # fmt: skip
    assert (
        client.get("/reports/caps", params=period, headers=borrower).json()["rows"] == body["rows"]
    )
    assert client.get("/reports/caps", params=period, headers=outsider).json()["rows"] == []
    bad = client.get("/reports/caps", params={**period, "to": "x"}, headers=admin)
    assert bad.status_code == 400 and "to" in bad.text
