"""Free-slot search looks ahead in growing horizons; it must still find the earliest slot."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import event

from tests.app.booking_world import build


def test_search_finds_the_earliest_slot_days_ahead(client: Any, world: Any) -> None:
    w = build(world)
    # leave Monday to Wednesday: the first free hour is Thursday 09:00 Berlin (08:00 UTC)
    leave = client.post(f"/experts/{w.expert}/leave", headers=w.manager, json={
        "start": "2027-03-01T00:00:00+01:00", "end": "2027-03-04T00:00:00+01:00"})
    assert leave.status_code == 201, leave.text
    booked = client.post("/bookings", headers=w.requester, json={
        "resource_id": str(w.expert), "project_id": str(w.project),
        "start": "2027-03-04T09:00:00+01:00", "end": "2027-03-04T11:00:00+01:00"})
    assert booked.status_code == 201, booked.text
    week = {"start": "2027-03-01T00:00:00Z", "end": "2027-03-15T00:00:00Z"}

    def search(minutes: int, **range_: str) -> Any:
        answer = client.get("/availability/slots", headers=w.requester, params={
            "skill_id": str(w.skill), "duration_minutes": minutes, **week, **range_})
        assert answer.status_code == 200, answer.text
        return answer.json()

    assert [(s["start"], s["end"]) for s in search(60)] == [
        ("2027-03-04T10:00:00Z", "2027-03-04T11:00:00Z")]
    # six hours fit only from 11:00 to 17:00 on Thursday
    assert search(360)[0]["start"] == "2027-03-04T10:00:00Z"
    # seven do not fit on Thursday any more: Friday 09:00
    assert search(420)[0]["start"] == "2027-03-05T08:00:00Z"
    free = client.get(f"/availability/resources/{w.expert}", headers=w.requester,
                      params=week).json()["free"]
    assert free[0][0] == "2027-03-04T10:00:00Z"
    # nothing in a range that holds only the leave
    assert search(60, end="2027-03-04T08:00:00Z") == []


def _reads_of_live_bookings(client: Any, app: Any, w: Any) -> list[tuple[str, Any]]:
    """The statements (and parameters) a slot search and a booking send that read live
    bookings (the partial index's condition)."""
    sent: list[tuple[str, Any]] = []

    def keep(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
        if "FROM bookings" in statement and "bookings.status IN" in statement:
            sent.append((statement, params))

    event.listen(app.state.engine, "before_cursor_execute", keep)
    try:
        found = client.get("/availability/slots", headers=w.requester, params={
            "skill_id": str(w.skill), "duration_minutes": 60,
            "start": "2030-03-04T00:00:00Z", "end": "2030-03-18T00:00:00Z"})
        assert found.status_code == 200, found.text
        booked = client.post("/bookings", headers=w.requester, json={
            "resource_id": str(w.expert), "project_id": str(w.project),
            "start": "2030-03-05T09:00:00Z", "end": "2030-03-05T10:00:00Z"})
        assert booked.status_code == 201, booked.text
    finally:
        event.remove(app.state.engine, "before_cursor_execute", keep)
    return sent


def _generic_plan(app: Any, statement: str, params: dict[str, Any]) -> str:
    """PostgreSQL's generic plan of a statement as psycopg sends it once it is prepared
    (planned once for any parameter values: ``plan_cache_mode``), with the exclusion
    constraint's partial index the only one left on a booking's resource (the others
    dropped inside the transaction, which rolls back) and sequential scans off: whether
    that index can serve the statement decides."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        names.append(match.group(1))
        return f"${len(names)}"

    sql = re.sub(r"%\((\w+)\)s", number, statement)
    values = ", ".join("'" + str(params[n]).replace("'", "''") + "'" for n in names)
    with app.state.engine.connect() as conn:
        conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
        conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        conn.exec_driver_sql("DROP INDEX ix_bookings_resource_block, ix_bookings_resource_id")
        conn.exec_driver_sql(f"PREPARE live_read AS {sql}")
        plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN EXECUTE live_read({values})"))
        conn.exec_driver_sql("DEALLOCATE live_read")
        conn.rollback()
    return plan


def test_reads_of_live_bookings_can_use_the_partial_index_when_prepared(
    client: Any, world: Any, app: Any
) -> None:
    """The live statuses are written into the SQL: as bound parameters, PostgreSQL's generic
    plan of the prepared statement could not use the exclusion constraint's partial index
    and scanned every booking (search p99 2 s at 1M bookings)."""
    w = build(world, hours_cap=150, lending_cap_bp=7_000)
    sent = _reads_of_live_bookings(client, app, w)
    assert len(sent) >= 2, [s for s, _ in sent]  # the search's read and the booking's
    for statement, params in sent:
        assert "'confirmed'" in statement, statement
        values = params.values() if isinstance(params, dict) else params
        assert "confirmed" not in {str(v) for v in values}, params
    if app.state.engine.dialect.name != "postgresql":
        return
    for statement, params in sent:
        plan = _generic_plan(app, statement, params)
        assert "bookings_no_overlap" in plan, plan
