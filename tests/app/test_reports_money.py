"""Project money report against a plain-Python recomputation of random ledger operations,
JSON = CSV, visibility. Every test runs on SQLite and PostgreSQL (``db_url``)."""

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
from app.db import make_engine, make_session_factory
from app.reports import money
from tests.app import factories as f

TODAY = date(2027, 3, 11)
op_st = st.one_of(
    st.tuples(st.just("pledge"), st.integers(0, 1), st.integers(1, 10_000)),
    st.tuples(st.just("contribute"), st.integers(0, 1), st.integers(1, 10_000)),
    st.tuples(st.just("hold"), st.integers(1, 5_000), st.sampled_from([None, 0, 50, 100])),
)


def _apply(s: Any, project: uuid.UUID, units: list[uuid.UUID], ops: list[Any]) -> dict[str, Any]:
    """Run the operations through the ledger; return the plain sums they should give."""
    want: dict[str, Any] = {"pledged": defaultdict(int), "received": defaultdict(int),
                            "held": 0, "spent": 0}  # fmt: skip
    cash = 0
    lender = f.unit(s).id
    for i, op in enumerate(ops):
        key = f"{i}-{uuid.uuid4().hex}"
        if op[0] == "pledge":
            ledger.pledge(s, project, units[op[1]], ledger.Money(op[2], "EUR"), key=key)
            want["pledged"][op[1]] += op[2]
        elif op[0] == "contribute":
            ledger.contribute(s, project, units[op[1]], ledger.Money(op[2], "EUR"), key=key)
            want["received"][op[1]] += op[2]
            cash += op[2]
        elif op[1] <= cash:
            hold = ledger.place_hold(
                s, project, ledger.Money(op[1], "EUR"), key=key, reference=key,
                deadline=datetime(2028, 1, 1, tzinfo=UTC), lender_unit_id=lender,
            )  # fmt: skip
            cash -= op[1]
            if op[2] is None:
                want["held"] += op[1]
            elif op[2] == 0:
                ledger.void_hold(s, hold.id, key=f"v{key}")
                cash += op[1]
            else:
                charged = op[1] * op[2] // 100
                ledger.post_hold(s, hold.id, ledger.Money(charged, "EUR"), key=f"p{key}")
                want["spent"] += charged
                cash += op[1] - charged
    want["available"] = cash
    return want


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ops=st.lists(op_st, max_size=12), started=st.integers(-5, 40), length=st.integers(1, 90))
def test_money_equals_a_recomputation_from_raw_operations(
    db_url: str, ops: Any, started: int, length: int
) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    try:
        with factory() as s, s.begin():
            units = [f.unit(s).id, f.unit(s).id]
            lead = f.user(s, units[0], Role.PROJECT_LEAD)
            start = TODAY - timedelta(days=started)
            project = f.project(s, units[0], lead.id, start_date=start,
                                end_date=start + timedelta(days=length))  # fmt: skip
            want = _apply(s, project.id, units, ops)
        with factory() as s:
            rows = money.report(s, SYSTEM, project_id=project.id, today=TODAY).rows
        lines = {r["unit_id"]: r for r in rows}
        for i, unit in enumerate(units):
            line = lines.get(str(unit))
            if line is None:  # a unit appears once it pledged or paid, or holds a share
                assert not want["pledged"][i] and not want["received"][i]
                continue
            assert (line["pledged"], line["received"]) == (want["pledged"][i], want["received"][i])
        total = lines[None]
        assert (total["received"], total["held"], total["spent"], total["available"]) == (
            sum(want["received"].values()), want["held"], want["spent"], want["available"]
        )  # fmt: skip
        assert total["pledged"] == sum(want["pledged"].values())
        days = length + 1
        elapsed = min(max(started + 1, 0), days)
        projected = want["spent"] * days // elapsed if elapsed else want["spent"]
        assert (total["days_total"], total["days_elapsed"], total["projected_spend_at_end"]) == (
            days, elapsed, projected
        )  # fmt: skip
        cash = want["spent"] + want["held"] + want["available"]
        assert total["projected_shortfall"] == max(projected - cash, 0)
    finally:
        engine.dispose()


def test_money_json_and_csv_agree_and_each_sees_only_readable_ledgers(
    client: Any, world: Any
) -> None:
    auditor = world.user("auditor", "AUD", Role.AUDITOR)
    lead = world.user("lead", "LEAD", Role.PROJECT_LEAD)
    outsider = world.user("outsider", "OUT", Role.UNIT_MANAGER)
    with world.session() as s:
        project = f.project(s, world.units["LEAD"], world.users["lead"])  # the lead is a member
        ledger.contribute(s, project.id, world.units["LEAD"], ledger.Money(5000, "EUR"), key="c1")
    body = client.get("/reports/money", headers=auditor).json()
    assert [(r["unit"], r["received"]) for r in body["rows"]] == [("LEAD", 5000), ("(total)", 5000)]
    answer = client.get("/reports/money", params={"format": "csv"}, headers=auditor)
    lines = list(csv.reader(io.StringIO(answer.text)))
    assert lines[0] == body["columns"]
    assert lines[1:] == [["" if r[c] is None else str(r[c]) for c in body["columns"]]
                         for r in body["rows"]]  # fmt: skip
    assert client.get("/reports/money", headers=lead).json()["rows"] == body["rows"]
    assert client.get("/reports/money", headers=outsider).json()["rows"] == []
    hidden = client.get("/reports/money", params={"project_id": str(project.id)}, headers=outsider)
    assert hidden.status_code == 404


def test_money_period_lists_only_the_projects_running_in_it(client: Any, world: Any) -> None:
    auditor = world.user("auditor", "AUD", Role.AUDITOR)
    world.user("lead", "LEAD", Role.PROJECT_LEAD)
    with world.session() as s:
        spring = f.project(
            s,
            world.units["LEAD"],
            world.users["lead"],
            code="SPRING",
            start_date=date(2027, 3, 1),
            end_date=date(2027, 5, 31),
        )
        autumn = f.project(s, world.units["LEAD"], world.users["lead"], code="AUTUMN",
                           start_date=date(2027, 9, 1), end_date=date(2027, 11, 30))  # fmt: skip
        for p in (spring, autumn):
            ledger.contribute(s, p.id, world.units["LEAD"], ledger.Money(100, "EUR"), key=p.code)

    def projects(**params: str) -> list[str]:
        answer = client.get("/reports/money", params=params, headers=auditor)
        assert answer.status_code == 200, answer.text
        return sorted({r["project"] for r in answer.json()["rows"]})

    assert projects() == ["AUTUMN", "SPRING"]
    assert projects(**{"from": "2027-05-31", "to": "2027-08-31"}) == ["SPRING"]  # its last day
    assert projects(**{"from": "2027-06-01", "to": "2027-08-31"}) == []
    assert projects(**{"from": "2027-06-01"}) == ["AUTUMN"]
    assert projects(to="2027-03-01") == ["SPRING"]  # its first day
    inverted = client.get("/reports/money", params={"from": "2027-06-02", "to": "2027-06-01"},
                          headers=auditor)  # fmt: skip
    assert inverted.status_code == 400
    assert "to" in inverted.json()["detail"]
    far = client.get("/reports/money", params={"from": "9999-01-01"}, headers=auditor)
    assert far.status_code == 400 and "from" in far.json()["detail"]
