"""Reciprocity report: hours and money between units against a plain-Python recomputation,
balances, JSON = CSV, visibility. Every test runs on SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

import csv
import io
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import ledger
from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.bookings.models import Booking
from app.db import make_engine, make_session_factory
from app.reports import reciprocity
from app.reports.scope import ReportFilter
from tests.app import factories as f

P_FROM, P_TO = date(2027, 3, 1), date(2027, 3, 31)
START, END = datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 4, 1, tzinfo=UTC)
STATUSES = ["tentative", "pending_approval", "confirmed", "completed", "cancelled", "released"]
LIVE = set(STATUSES[:4])

pair_st = st.tuples(st.integers(0, 2), st.integers(1, 2)).map(lambda p: (p[0], (p[0] + p[1]) % 3))
loan_st = st.tuples(
    pair_st, st.integers(-3 * 1440, 32 * 1440), st.integers(1, 96).map(lambda q: q * 15),
    st.sampled_from(STATUSES),
)  # fmt: skip
charge_st = st.tuples(pair_st, st.integers(1, 50_000), st.integers(-5, 35))


def _build(factory: Any, loans: list[Any], charges: list[Any]) -> list[uuid.UUID]:
    with factory() as s, s.begin():
        units = [f.unit(s).id for _ in range(3)]
        users = [f.user(s, u, Role.PROJECT_LEAD).id for u in units]
        experts = [f.expert(s, u).id for u in units]
        projects = [f.project(s, u, users[i]).id for i, u in enumerate(units)]
        t = START - timedelta(days=10)
        for (lender, borrower), offset, minutes, status in loans:
            # each loan on its lender's expert, one after another (never overlapping)
            start = max(t, START + timedelta(minutes=offset))
            end = start + timedelta(minutes=minutes)
            s.add(Booking(resource_id=experts[lender], project_id=projects[borrower],
                          borrower_unit_id=units[borrower], lender_unit_id=units[lender],
                          created_by=users[borrower], start=start, end=end, block_start=start,
                          block_end=end, status=status))  # fmt: skip
            t = end
        for i, ((lender, borrower), amount, day) in enumerate(charges):
            at = START + timedelta(days=day, hours=12)
            project = projects[borrower]
            key = uuid.uuid4().hex
            ledger.contribute(s, project, units[borrower], ledger.Money(amount, "EUR"),
                              key=f"c{key}", clock=lambda at=at: at)  # fmt: skip
            hold = ledger.place_hold(
                s, project, ledger.Money(amount, "EUR"), key=f"h{key}", reference=f"r{i}",
                deadline=at + timedelta(days=60), lender_unit_id=units[lender],
                borrower_unit_id=units[borrower], clock=lambda at=at: at,
            )  # fmt: skip
            ledger.post_hold(s, hold.id, ledger.Money(amount, "EUR"), key=f"p{key}",
                             clock=lambda at=at: at)  # fmt: skip
        return units


def _reference(
    units: list[uuid.UUID], loans: list[Any], charges: list[Any]
) -> dict[Any, list[int]]:
    out: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
    t = START - timedelta(days=10)
    for (lender, borrower), offset, minutes, status in loans:
        start = max(t, START + timedelta(minutes=offset))
        end = start + timedelta(minutes=minutes)
        t = end
        if status in LIVE and start < END and end > START:
            clipped = (min(end, END) - max(start, START)).total_seconds() // 60
            out[(str(units[lender]), str(units[borrower]))][0] += int(clipped)
    for (lender, borrower), amount, day in charges:
        if START <= START + timedelta(days=day, hours=12) < END:
            out[(str(units[lender]), str(units[borrower]))][1] += amount
    return out


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(loans=st.lists(loan_st, max_size=10), charges=st.lists(charge_st, max_size=4))
def test_reciprocity_equals_a_recomputation_from_raw_rows(
    db_url: str, loans: Any, charges: Any
) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    try:
        units = _build(factory, loans, charges)
        want = {k: v for k, v in _reference(units, loans, charges).items() if v != [0, 0]}
        got: dict[Any, list[int]] = defaultdict(lambda: [0, 0])
        for unit in units:  # each unit's view: the pairs it lends or borrows in
            filters = ReportFilter(period_from=P_FROM, period_to=P_TO, unit_id=unit)
            with factory() as s:
                rows = reciprocity.pairs(s, SYSTEM, filters).rows
                balance = reciprocity.balances(s, SYSTEM, filters).rows
            for r in rows:
                assert str(unit) in (r["lender_unit_id"], r["borrower_unit_id"])
                got[(r["lender_unit_id"], r["borrower_unit_id"])] = [r["minutes"], r["amount"]]
            lent = [sum(v[i] for k, v in want.items() if k[0] == str(unit)) for i in (0, 1)]
            borrowed = [sum(v[i] for k, v in want.items() if k[1] == str(unit)) for i in (0, 1)]
            expected = (
                []
                if lent == borrowed == [0, 0]
                else [
                    (
                        lent[0],
                        borrowed[0],
                        lent[0] - borrowed[0],
                        lent[1],
                        borrowed[1],
                        lent[1] - borrowed[1],
                    )
                ]
            )
            assert [
                (b["lent_minutes"], b["borrowed_minutes"], b["net_minutes"],
                 b["lent_amount"], b["borrowed_amount"], b["net_amount"])
                for b in balance
            ] == expected  # fmt: skip
        assert {k: v for k, v in got.items() if v != [0, 0]} == want
    finally:
        engine.dispose()


PERIOD = {"from": "2027-03-01", "to": "2027-03-31"}


def test_reciprocity_json_and_csv_agree_and_outsiders_see_nothing(client: Any, world: Any) -> None:
    admin = world.user("admin", "ADM", Role.ADMIN)
    lender = world.user("lender", "LEN", Role.RESOURCE_MANAGER)
    outsider = world.user("outsider", "OUT", Role.UNIT_MANAGER)
    with world.session() as s:
        expert = f.expert(s, world.units["LEN"])
        borrower = f.unit(s, "BOR")
        lead = f.user(s, borrower.id, Role.PROJECT_LEAD)
        project = f.project(s, borrower.id, lead.id)
        t = datetime(2027, 3, 2, 9, tzinfo=UTC)
        s.add(Booking(resource_id=expert.id, project_id=project.id, borrower_unit_id=borrower.id,
                      lender_unit_id=world.units["LEN"], created_by=lead.id, start=t,
                      end=t + timedelta(hours=2), block_start=t, block_end=t + timedelta(hours=2),
                      status="confirmed"))  # fmt: skip
    for route in ("/reports/reciprocity", "/reports/reciprocity/balances"):
        body = client.get(route, params=PERIOD, headers=admin).json()
        assert body["rows"], route
        answer = client.get(route, params={**PERIOD, "format": "csv"}, headers=admin)
        lines = list(csv.reader(io.StringIO(answer.text)))
        assert lines[0] == body["columns"]
        assert lines[1:] == [[str(r[c]) for c in body["columns"]] for r in body["rows"]]
        assert client.get(route, params=PERIOD, headers=lender).json()["rows"]
        assert client.get(route, params=PERIOD, headers=outsider).json()["rows"] == []
        hidden = client.get(route, params={**PERIOD, "unit_id": str(world.units["LEN"])},
                            headers=outsider)  # fmt: skip
        assert hidden.status_code == 404
    matrix = client.get("/reports/reciprocity", params=PERIOD, headers=lender).json()["rows"]
    assert [(r["lender"], r["borrower"], r["minutes"]) for r in matrix] == [("LEN", "BOR", 120)]
