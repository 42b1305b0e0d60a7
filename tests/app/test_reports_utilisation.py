"""Utilisation report: numbers against a plain-Python recomputation, JSON = CSV, visibility,
bad filters. Every test runs on SQLite and PostgreSQL (``db_url``)."""

from __future__ import annotations

import csv
import io
import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.bookings.models import Booking
from app.catalog.models import Unavailability
from app.db import make_engine, make_session_factory
from app.reports import utilisation
from app.reports.scope import Grouping, ReportFilter
from tests.app import factories as f

P_FROM, P_TO = date(2027, 3, 22), date(2027, 4, 4)  # Europe's clocks change on 28 March
START = datetime(2027, 3, 22, tzinfo=UTC)
END = datetime(2027, 4, 5, tzinfo=UTC)
STATUSES = ["tentative", "pending_approval", "confirmed", "completed", "cancelled", "declined"]
LIVE = set(STATUSES[:4])
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ZONES = ["Europe/Berlin", "America/New_York", "UTC"]

hours_st = st.dictionaries(
    st.sampled_from(DAYS),
    st.sampled_from(
        [[["09:00", "17:00"]], [["08:00", "12:00"], ["13:00", "16:30"]], [["22:00", "24:00"]]]
    ),
    max_size=7,
)
booking_st = st.tuples(
    st.integers(0, 48 * 60),  # gap before, minutes
    st.integers(1, 40).map(lambda q: q * 15),  # duration
    st.sampled_from(STATUSES),
)
resource_st = st.fixed_dictionaries(
    {
        "hours": st.one_of(st.none(), hours_st),
        "zone": st.sampled_from(ZONES),
        "leave": st.lists(
            st.tuples(st.integers(-2 * 1440, 14 * 1440), st.integers(30, 3 * 1440)), max_size=2
        ),
        "bookings": st.lists(booking_st, max_size=8),
    }
)


def _bucket_spans(group: Grouping) -> list[tuple[datetime, datetime]]:
    edges = [START]
    while edges[-1] < END:
        d = edges[-1]
        if group is Grouping.WEEK:
            nxt = datetime(d.year, d.month, d.day, tzinfo=UTC) + timedelta(days=7 - d.weekday())
        else:
            nxt = datetime(d.year + (d.month == 12), d.month % 12 + 1, 1, tzinfo=UTC)
        edges.append(min(nxt, END))
    return list(itertools.pairwise(edges))


def _works(hours: dict[str, list[list[str]]] | None, zone: str, minute: datetime) -> bool:
    """Plain reference: is the resource at work in the minute starting at ``minute``?"""
    if hours is None:
        return True
    local = minute.astimezone(ZoneInfo(zone))
    hhmm = f"{local.hour:02d}:{local.minute:02d}"
    return any(s <= hhmm < e for s, e in hours.get(DAYS[local.weekday()], []))


def _reference(
    res: dict[str, Any], spans: list[tuple[datetime, datetime]]
) -> list[tuple[int, int]]:
    out = []
    for s, e in spans:
        booked = sum(
            max(0, int((min(b_end, e) - max(b_start, s)).total_seconds() // 60))
            for b_start, b_end, status in res["booked"]
            if status in LIVE
        )
        available, minute = 0, s
        while minute < e:
            away = any(ls <= minute < le for ls, le in res["away"])
            available += (not away) and _works(res["hours"], res["zone"], minute)
            minute += timedelta(minutes=1)
        out.append((booked, available))
    return out


def _build(factory: Any, spec: list[dict[str, Any]]) -> tuple[uuid.UUID, list[dict[str, Any]]]:
    with factory() as s, s.begin():
        lender, borrower = f.unit(s), f.unit(s)
        lead = f.user(s, borrower.id, Role.PROJECT_LEAD)
        project = f.project(s, borrower.id, lead.id)
        made = []
        kind = f.device_type(s)
        for r in spec:
            if r["hours"] is None:  # a device: around the clock but for its blackouts
                expert: Any = f.device(s, lender.id, kind.id, time_zone=r["zone"])
            else:
                expert = f.expert(s, lender.id, working_hours=r["hours"], time_zone=r["zone"])
            away = [
                (START + timedelta(minutes=o), START + timedelta(minutes=o + d))
                for o, d in r["leave"]
            ]
            for a_start, a_end in away:
                s.add(Unavailability(resource_id=expert.id, kind="leave", start=a_start, end=a_end))
            booked, t = [], START - timedelta(days=1)
            for gap, dur, status in r["bookings"]:
                t += timedelta(minutes=gap)
                booked.append((t, t + timedelta(minutes=dur), status))
                s.add(
                    Booking(
                        resource_id=expert.id,
                        project_id=project.id,
                        borrower_unit_id=borrower.id,
                        lender_unit_id=lender.id,
                        created_by=lead.id,
                        start=t,
                        end=t + timedelta(minutes=dur),
                        block_start=t,
                        block_end=t + timedelta(minutes=dur),
                        status=status,
                    )
                )
                t += timedelta(minutes=dur)
            made.append({"id": expert.id, **r, "away": away, "booked": booked})
        return lender.id, made


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=st.lists(resource_st, min_size=1, max_size=3), group=st.sampled_from(list(Grouping)))
def test_utilisation_equals_a_recomputation_from_raw_rows(
    db_url: str, spec: Any, group: Grouping
) -> None:
    engine = make_engine(db_url)
    factory = make_session_factory(engine)
    try:
        lender, made = _build(factory, spec)
        filters = ReportFilter(period_from=P_FROM, period_to=P_TO, unit_id=lender, group=group)
        with factory() as s:
            rows = utilisation.report(s, SYSTEM, filters, "resource").rows
        spans = _bucket_spans(group)
        got = {
            (r["group_id"], r["bucket_start"]): (r["booked_minutes"], r["available_minutes"])
            for r in rows
        }
        want = {
            (str(res["id"]), span[0].date().isoformat()): ref
            for res in made
            for span, ref in zip(spans, _reference(res, spans), strict=True)
        }
        assert got == want
        with factory() as s:
            by_unit = utilisation.report(s, SYSTEM, filters, "unit").rows
        for row in by_unit:
            same = [v for (gid, b), v in want.items() if b == row["bucket_start"]]
            assert row["booked_minutes"] == sum(v[0] for v in same)
            assert row["available_minutes"] == sum(v[1] for v in same)
    finally:
        engine.dispose()


def _loan_world(world: Any) -> dict[str, Any]:
    admin = world.user("admin", "ADM", Role.ADMIN)
    lender = world.user("lender", "LEN", Role.RESOURCE_MANAGER)
    borrower = world.user("borrower", "BOR", Role.REQUESTER)
    outsider = world.user("outsider", "OUT", Role.UNIT_MANAGER)
    with world.session() as s:
        expert = f.expert(s, world.units["LEN"])
        own = f.expert(s, world.units["OUT"])
        project = f.project(s, world.units["BOR"], world.users["borrower"])
        t = datetime(2027, 3, 23, 9, tzinfo=UTC)
        s.add(
            Booking(
                resource_id=expert.id,
                project_id=project.id,
                borrower_unit_id=world.units["BOR"],
                lender_unit_id=world.units["LEN"],
                created_by=world.users["borrower"],
                start=t,
                end=t + timedelta(hours=3),
                block_start=t,
                block_end=t + timedelta(hours=3),
                status="confirmed",
            )
        )
    return {
        "admin": admin,
        "lender": lender,
        "borrower": borrower,
        "outsider": outsider,
        "expert": expert.id,
        "own": own.id,
        "project": project.id,
    }


PERIOD = {"from": "2027-03-22", "to": "2027-04-04", "group": "week"}


def test_json_and_csv_carry_the_same_columns_and_values(client: Any, world: Any) -> None:
    w = _loan_world(world)
    js = client.get("/reports/utilisation", params=PERIOD, headers=w["admin"])
    assert js.status_code == 200, js.text
    body = js.json()
    assert any(r["booked_minutes"] == 180 for r in body["rows"])
    for how in (
        {"params": {**PERIOD, "format": "csv"}, "headers": w["admin"]},
        {"params": PERIOD, "headers": {**w["admin"], "Accept": "text/csv"}},
    ):
        answer = client.get("/reports/utilisation", **how)
        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/csv")
        lines = list(csv.reader(io.StringIO(answer.text)))
        assert lines[0] == body["columns"]
        assert lines[1:] == [
            ["" if r[c] is None else str(r[c]) for c in body["columns"]] for r in body["rows"]
        ]


def test_a_unit_sees_its_own_resources_and_an_outsider_nothing_of_theirs(
    client: Any, world: Any
) -> None:
    w = _loan_world(world)

    def ids(who: str, **extra: str) -> set[str]:
        answer = client.get("/reports/utilisation", params={**PERIOD, **extra}, headers=w[who])
        assert answer.status_code == 200, answer.text
        return {r["group_id"] for r in answer.json()["rows"]}

    assert ids("admin") >= {str(w["expert"]), str(w["own"])}
    assert ids("lender") == {str(w["expert"])}
    assert ids("outsider") == {str(w["own"])}
    assert ids("borrower") == set()
    other = client.get(
        "/reports/utilisation",
        params={**PERIOD, "unit_id": str(world.units["LEN"])},
        headers=w["outsider"],
    )
    assert other.status_code == 404
    project = client.get(
        "/reports/utilisation",
        params={**PERIOD, "project_id": str(w["project"])},
        headers=w["outsider"],
    )
    assert project.status_code == 404


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"from": "2027-04-04", "to": "2027-03-22"}, "to"),
        ({"from": "2020-01-01", "to": "2027-03-22"}, "to"),
        ({"from": "yesterday", "to": "2027-03-22"}, "from"),
        ({"from": "2027-03-01", "to": "2027-03-22", "group": "year"}, "group"),
        ({"from": "2027-03-01", "to": "2027-03-22", "unit_id": "nope"}, "unit_id"),
        ({"to": "2027-03-22"}, "from"),
        ({"from": "2027-03-01", "to": "9999-12-31"}, "to"),
    ],
)
def test_bad_filters_answer_400_naming_the_field(
    client: Any, world: Any, params: Any, field: str
) -> None:
    headers = world.user("admin", "ADM", Role.ADMIN)
    answer = client.get("/reports/utilisation", params=params, headers=headers)
    assert answer.status_code == 400, answer.text
    assert field in answer.text
