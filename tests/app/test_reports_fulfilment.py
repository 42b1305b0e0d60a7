"""Fulfilment report: counts and times to allocation against a plain-Python recomputation,
JSON = CSV, visibility. Every test runs on SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

import csv
import io
import math
import statistics
import uuid
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.bookings.models import Booking, Request, Requirement
from app.db import make_engine, make_session_factory
from app.reports import fulfilment
from app.reports.scope import ReportFilter
from tests.app import factories as f

P_FROM, P_TO = date(2027, 3, 1), date(2027, 3, 31)
START, END = datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 4, 1, tzinfo=UTC)
REQUEST_STATUSES = [
    "open", "allocated", "pending_approval", "confirmed", "completed",
    "declined", "cancelled", "expired",
]  # fmt: skip
BOOKING_STATUSES = ["tentative", "confirmed", "completed", "cancelled", "declined", "released"]
LIVE = {"tentative", "confirmed", "completed"}
SERVING = {"allocated", "pending_approval", "confirmed", "completed"}
OUTCOME = {"open": "open", "declined": "declined", "expired": "expired", "cancelled": "withdrawn"}

request_st = st.fixed_dictionaries(
    {
        "unit": st.integers(0, 1),
        "project": st.integers(0, 1),
        "status": st.sampled_from(REQUEST_STATUSES),
        "asked": st.integers(-3 * 1440, 33 * 1440),  # minutes from the period's start
        "quantities": st.lists(st.integers(1, 3), min_size=1, max_size=2),
        "bookings": st.lists(
            st.tuples(st.integers(0, 5 * 1440), st.sampled_from(BOOKING_STATUSES)), max_size=4
        ),
    }
)


def _booking(**kw: Any) -> Booking:
    return Booking(block_start=kw["start"], block_end=kw["end"], **kw)


def _build(
    factory: Any, spec: list[dict[str, Any]]
) -> tuple[list[uuid.UUID], list[dict[str, Any]]]:
    with factory() as s, s.begin():
        units = [f.unit(s).id, f.unit(s).id]
        lender = f.unit(s).id
        expert = f.expert(s, lender)
        users = [f.user(s, u, Role.PROJECT_LEAD).id for u in units]
        projects = [
            f.project(s, units[0], users[0], shares={units[0]: 5000, units[1]: 5000}).id
            for _ in range(2)
        ]
        t = datetime(2027, 1, 1, tzinfo=UTC)
        made = []
        for r in spec:
            asked = START + timedelta(minutes=r["asked"])
            request = Request(
                project_id=projects[r["project"]],
                unit_id=units[r["unit"]],
                created_by=users[r["unit"]],
                title="r",
                duration_minutes=60,
                window_start=asked,
                window_end=asked + timedelta(days=7),
                status=r["status"],
                created_at=asked,
            )
            s.add(request)
            s.flush()
            for i, q in enumerate(r["quantities"]):
                s.add(Requirement(request_id=request.id, position=i, kind="skill", quantity=q))
            for after, status in r["bookings"]:
                s.add(_booking(
                    resource_id=expert.id, project_id=request.project_id, request_id=request.id,
                    borrower_unit_id=request.unit_id, lender_unit_id=lender,
                    created_by=request.created_by, start=t, end=t + timedelta(hours=1),
                    status=status, created_at=asked + timedelta(minutes=after),
                ))  # fmt: skip
                t += timedelta(hours=1)
            made.append({**r, "unit_id": units[r["unit"]], "project_id": projects[r["project"]],
                         "asked_at": asked})  # fmt: skip
        return units, made


def _reference(made: list[dict[str, Any]], unit: uuid.UUID) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    waits: dict[str, list[float]] = defaultdict(list)
    for r in made:
        if r["unit_id"] != unit or not START <= r["asked_at"] < END:
            continue
        row = rows[str(r["project_id"])]
        row["made"] += 1
        if r["status"] in SERVING:
            live = sum(status in LIVE for _, status in r["bookings"])
            row["served" if live >= sum(r["quantities"]) else "partly_served"] += 1
        else:
            row[OUTCOME[r["status"]]] += 1
        if r["bookings"]:
            waits[str(r["project_id"])].append(min(after for after, _ in r["bookings"]))
    out = {}
    for project, row in rows.items():
        w = sorted(waits[project])
        out[project] = {
            **{k: row[k] for k in fulfilment.COLUMNS[4:11]},
            "median_minutes_to_allocation": round(statistics.median(w), 1) if w else None,
            "p90_minutes_to_allocation": w[math.ceil(0.9 * len(w)) - 1] if w else None,
        }
    return out


@settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=st.lists(request_st, max_size=12))
def test_fulfilment_equals_a_recomputation_from_raw_rows(db_url: str, spec: Any) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    try:
        units, made = _build(factory, spec)
        for unit in units:
            filters = ReportFilter(period_from=P_FROM, period_to=P_TO, unit_id=unit)
            with factory() as s:
                rows = fulfilment.report(s, SYSTEM, filters).rows
            got = {r["project_id"]: {k: r[k] for k in fulfilment.COLUMNS[4:]} for r in rows}
            assert all(r["unit_id"] == str(unit) for r in rows)
            assert got == _reference(made, unit)
    finally:
        engine.dispose()


def _world(world: Any) -> dict[str, Any]:
    headers = {
        "admin": world.user("admin", "ADM", Role.ADMIN),
        "auditor": world.user("auditor", "AUD", Role.AUDITOR),
        "asker": world.user("asker", "ASK", Role.REQUESTER),
        "outsider": world.user("outsider", "OUT", Role.UNIT_MANAGER),
    }
    with world.session() as s:
        project = f.project(s, world.units["ASK"], world.users["asker"])
        for status in ("open", "expired", "cancelled"):
            s.add(Request(project_id=project.id, unit_id=world.units["ASK"],
                          created_by=world.users["asker"], title=status, duration_minutes=60,
                          window_start=START, window_end=END, status=status,
                          created_at=START + timedelta(days=2)))  # fmt: skip
    return {**headers, "project": str(project.id)}


PERIOD = {"from": "2027-03-01", "to": "2027-03-31"}


def test_fulfilment_json_and_csv_agree_and_each_unit_sees_its_own(client: Any, world: Any) -> None:
    w = _world(world)
    body = client.get("/reports/fulfilment", params=PERIOD, headers=w["auditor"]).json()
    assert [(r["made"], r["open"], r["expired"], r["withdrawn"]) for r in body["rows"]] == [
        (3, 1, 1, 1)
    ]
    answer = client.get(
        "/reports/fulfilment", params={**PERIOD, "format": "csv"}, headers=w["admin"]
    )
    lines = list(csv.reader(io.StringIO(answer.text)))
    assert lines[0] == body["columns"]
    assert lines[1:] == [["" if r[c] is None else str(r[c]) for c in body["columns"]]
                         for r in body["rows"]]  # fmt: skip
    asker = client.get("/reports/fulfilment", params=PERIOD, headers=w["asker"]).json()
    assert asker["rows"] == body["rows"]
    outsider = client.get("/reports/fulfilment", params=PERIOD, headers=w["outsider"]).json()
    assert outsider["rows"] == []
    hidden = client.get("/reports/fulfilment", params={**PERIOD, "project_id": w["project"]},
                        headers=w["outsider"])  # fmt: skip
    assert hidden.status_code == 404
    bad = client.get("/reports/fulfilment", params={**PERIOD, "to": "2026-01-01"},
                     headers=w["admin"])  # fmt: skip
    assert bad.status_code == 400 and "to" in bad.json()["detail"]
