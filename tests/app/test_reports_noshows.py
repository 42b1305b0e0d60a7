"""No-shows and late cancellations against a plain-Python recomputation, JSON = CSV,
visibility. Every test runs on SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

import csv
import io
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
from app.reports import noshows
from app.reports.scope import ReportFilter
from tests.app import factories as f

P_FROM, P_TO = date(2027, 3, 1), date(2027, 3, 31)
START, END = datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 4, 1, tzinfo=UTC)
booking_st = st.fixed_dictionaries(
    {
        "borrower": st.integers(0, 1),
        "gap": st.integers(0, 3 * 1440),
        "status": st.sampled_from(["confirmed", "completed", "released", "cancelled"]),
        "by": st.sampled_from(["borrower", "lender"]),
        "cancelled_before": st.integers(-300, 72 * 60),  # minutes before the start
        "fee": st.one_of(st.none(), st.integers(1, 5000)),
    }
)


def _build(factory: Any, spec: list[dict[str, Any]]) -> tuple[list[Any], list[dict[str, Any]]]:
    with factory() as s, s.begin():
        lender, borrowers = f.unit(s).id, [f.unit(s).id, f.unit(s).id]
        users = [f.user(s, b, Role.PROJECT_LEAD).id for b in borrowers]
        projects = [f.project(s, b, users[i]).id for i, b in enumerate(borrowers)]
        device = f.device(s, lender, f.device_type(s).id)
        t, made = START - timedelta(days=4), []
        for i, b in enumerate(spec):
            t += timedelta(minutes=b["gap"])
            start, end = t, t + timedelta(hours=1)
            t = end
            cancelled = start - timedelta(minutes=b["cancelled_before"])
            booking = Booking(
                resource_id=device.id, project_id=projects[b["borrower"]],
                borrower_unit_id=borrowers[b["borrower"]], lender_unit_id=lender,
                created_by=users[b["borrower"]], start=start, end=end, block_start=start,
                block_end=end, status=b["status"], status_reason=f"{b['by']}: because",
                cancelled_at=cancelled if b["status"] == "cancelled" else None,
            )  # fmt: skip
            s.add(booking)
            s.flush()
            if b["fee"] is not None and b["status"] == "cancelled":
                project, clock = projects[b["borrower"]], (lambda at=cancelled: at)
                ledger.contribute(s, project, borrowers[b["borrower"]],
                                  ledger.Money(b["fee"], "EUR"), key=f"c{i}{booking.id}")  # fmt: skip
                hold = ledger.place_hold(
                    s, project, ledger.Money(b["fee"], "EUR"), key=f"booking:{booking.id}:hold:0",
                    reference=str(booking.id), deadline=end + timedelta(days=60),
                    lender_unit_id=lender, borrower_unit_id=borrowers[b["borrower"]], clock=clock,
                )  # fmt: skip
                ledger.post_hold(s, hold.id, ledger.Money(b["fee"], "EUR"),
                                 key=f"booking:{booking.id}:fee", clock=clock)  # fmt: skip
            made.append({**b, "start": start, "cancelled": cancelled})
        return borrowers, made


def _reference(borrowers: list[Any], made: list[dict[str, Any]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for b in made:
        row = out[str(borrowers[b["borrower"]])]
        if START <= b["start"] < END:
            row[0] += 1
            row[1] += b["status"] == "released"
            row[2] += (
                b["status"] == "cancelled"
                and b["by"] == "borrower"
                and b["cancelled_before"] < 24 * 60
            )
        if b["fee"] is not None and b["status"] == "cancelled" and START <= b["cancelled"] < END:
            row[3] += b["fee"]
    return {k: v for k, v in out.items() if v != [0, 0, 0, 0]}


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=st.lists(booking_st, max_size=12))
def test_no_shows_equal_a_recomputation_from_raw_rows(db_url: str, spec: Any) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    try:
        borrowers, made = _build(factory, spec)
        got = {}
        for unit in borrowers:
            with factory() as s:
                rows = noshows.report(s, SYSTEM, ReportFilter(P_FROM, P_TO, unit_id=unit)).rows
            for r in rows:
                if r["unit_id"] == str(unit):
                    got[r["unit_id"]] = [
                        r["bookings"], r["no_shows"], r["late_cancellations"], r["fees_charged"]
                    ]  # fmt: skip
        assert got == _reference(borrowers, made)
    finally:
        engine.dispose()


def test_no_shows_json_and_csv_agree_and_outsiders_see_nothing(client: Any, world: Any) -> None:
    admin = world.user("admin", "ADM", Role.ADMIN)
    lender = world.user("lender", "LEN", Role.RESOURCE_MANAGER)
    outsider = world.user("outsider", "OUT", Role.UNIT_MANAGER)
    with world.session() as s:
        device = f.device(s, world.units["LEN"], f.device_type(s).id)
        borrower = f.unit(s, "BOR")
        lead = f.user(s, borrower.id, Role.PROJECT_LEAD)
        project = f.project(s, borrower.id, lead.id)
        t = datetime(2027, 3, 2, 9, tzinfo=UTC)
        s.add(Booking(resource_id=device.id, project_id=project.id, borrower_unit_id=borrower.id,
                      lender_unit_id=world.units["LEN"], created_by=lead.id, start=t,
                      end=t + timedelta(hours=2), block_start=t, block_end=t + timedelta(hours=2),
                      status="released"))  # fmt: skip
    period = {"from": "2027-03-01", "to": "2027-03-31"}
    body = client.get("/reports/no-shows", params=period, headers=admin).json()
    assert [(r["unit"], r["no_shows"]) for r in body["rows"]] == [("BOR", 1)]
    answer = client.get("/reports/no-shows", params={**period, "format": "csv"}, headers=admin)
    lines = list(csv.reader(io.StringIO(answer.text)))
    assert lines[0] == body["columns"]
    assert lines[1:] == [[str(r[c]) for c in body["columns"]] for r in body["rows"]]
    assert client.get("/reports/no-shows", params=period, headers=lender).json() == body
    assert client.get("/reports/no-shows", params=period, headers=outsider).json()["rows"] == []
    bad = client.get("/reports/no-shows", params={**period, "late_hours": -1}, headers=admin)
    assert bad.status_code == 400 and "late_hours" in bad.text
