"""The request path's cost, in statements: a realistic booking stays within its budget.

A keyed ``POST /bookings`` of a lent, priced expert under an agreement with an hours cap
and a lending cap, for a funded project (so a hold is posted), is counted statement by
statement on the app's engine (``before_cursor_execute``), on both databases. The budget
is what the path needs today; a change that adds a read or a savepoint fails here.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event

from tests.app.booking_world import build

BUDGET = {"sqlite": 14, "postgresql": 15}
"""Statements of one realistic booking, BEGIN not counted (31 before issue 10's cuts, 23
before the hold became one read and three inserts, 17 before the project, its shares and
its members came in one statement, 15 before the unavailability came with the live
bookings in one read; PostgreSQL reads the ledger's replay check after the lock, one
statement more; the test settings touch the key's ``last_used_at`` on every request,
which costs two)."""


def _book(client: Any, w: Any, day: int) -> Any:
    return client.post(
        "/bookings",
        headers={**w.requester, "Idempotency-Key": str(uuid.uuid4())},
        json={"resource_id": str(w.expert), "project_id": str(w.project),
              "start": f"2030-03-{day:02d}T09:00:00Z", "end": f"2030-03-{day:02d}T10:00:00Z"},
    )


def test_a_realistic_booking_stays_within_its_statement_budget(client: Any, world: Any,
                                                                 app: Any) -> None:
    w = build(world, hours_cap=150, lending_cap_bp=7_000)
    assert _book(client, w, 4).status_code == 201  # warm: keys cached, ledger opened
    statements: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(app.state.engine, "before_cursor_execute", count)
    try:
        answer = _book(client, w, 5)
    finally:
        event.remove(app.state.engine, "before_cursor_execute", count)
    assert answer.status_code == 201, answer.text
    held = client.get(f"/projects/{w.project}/funds/statement", headers=w.requester)
    assert held.status_code == 200 and held.json()["held"] == 2 * 9_000, held.text
    work = [s for s in statements if not s.lstrip().upper().startswith(("BEGIN", "PRAGMA"))]
    budget = BUDGET[app.state.engine.dialect.name]
    assert len(work) <= budget, "\n".join(s.splitlines()[0][:120] for s in work)
    # neither the booking's insert (the resource's row lock orders it) nor the hold (every
    # check runs before its first insert) needs a savepoint
    savepoints = [s for s in work if s.lstrip().upper().startswith("SAVEPOINT")]
    assert savepoints == [], savepoints
