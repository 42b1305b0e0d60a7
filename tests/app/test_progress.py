"""Progress people can watch: while a run solves, its row holds the best plan so far (its
fulfilled weight, the bound on it, the gap, requests placed of those asked, seconds), and
GET /allocation-runs/{id} shows it. Every write of the solver child is recorded by a
trigger, so the test sees the progress stored *before* the run ended, not only the last."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

import scheduling
from app.auth.models import Role
from app.settings import Settings
from tests.app.booking_world import build
from tests.scheduling.factories import SOLVE, expert, instance, request

WINDOW = {"window_start": "2027-03-01T08:00:00Z", "window_end": "2027-03-01T16:00:00Z"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Runs solved by the app's in-process worker on both engines."""
    return settings.model_copy(update={"jobs_in_process": True})


SQLITE_LOG = [
    "CREATE TABLE progress_log (n INTEGER PRIMARY KEY AUTOINCREMENT, status TEXT, progress TEXT)",
    "CREATE TRIGGER progress_logged AFTER UPDATE OF progress ON allocation_runs "
    "BEGIN INSERT INTO progress_log (status, progress) VALUES (NEW.status, NEW.progress); END",
]
POSTGRES_LOG = [
    "CREATE TABLE progress_log (n serial PRIMARY KEY, status text, progress json)",
    "CREATE FUNCTION log_progress() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO progress_log (status, progress) VALUES (NEW.status, NEW.progress); "
    "RETURN NEW; END $$",
    "CREATE TRIGGER progress_logged AFTER UPDATE OF progress ON allocation_runs "
    "FOR EACH ROW EXECUTE FUNCTION log_progress()",
]
POSTGRES_UNLOG = [
    "DROP TRIGGER progress_logged ON allocation_runs",
    "DROP FUNCTION log_progress()",
    "DROP TABLE progress_log",
]


@pytest.fixture
def progress_log(app: Any) -> Iterator[Engine]:
    """Every progress write of a run, with the run's status at that moment."""
    engine: Engine = app.state.engine
    postgres = engine.dialect.name == "postgresql"
    with engine.begin() as conn:
        for statement in POSTGRES_LOG if postgres else SQLITE_LOG:
            conn.execute(text(statement))
    yield engine
    if postgres:  # the session database is shared by later tests
        with engine.begin() as conn:
            for statement in POSTGRES_UNLOG:
                conn.execute(text(statement))


def _logged(engine: Engine) -> list[tuple[str, dict[str, Any]]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, progress FROM progress_log ORDER BY n")).all()
    return [(s, p if isinstance(p, dict) else json.loads(p)) for s, p in rows if p]


def _wait(client: Any, run_id: str, headers: dict[str, str]) -> dict[str, Any]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        run: dict[str, Any] = client.get(f"/allocation-runs/{run_id}", headers=headers).json()
        if run["status"] in ("done", "failed"):
            return run
        time.sleep(0.3)
    raise AssertionError(f"run {run_id} did not finish")


def test_progress_is_stored_while_solving_and_agrees_with_the_plan(
    client: Any, world: Any, progress_log: Engine
) -> None:
    w = build(world)
    lead = world.user("planner", "B", Role.PROJECT_LEAD)
    # one expert, 8 working hours: 3 h + 3 h fit, the third 3 h request does not
    for title, priority in (("a", 5), ("b", 3), ("c", 1)):
        body = {"project_id": str(w.project), "title": title, "duration_minutes": 180,
                "priority": priority, **WINDOW,
                "requirements": [{"kind": "skill", "skill_id": str(w.skill), "min_level": 3}]}
        assert client.post("/requests", json=body, headers=w.requester).status_code == 201
    started = client.post("/allocation-runs", json={
        "horizon_start": "2027-03-01T00:00:00Z", "horizon_end": "2027-03-02T00:00:00Z",
        "time_limit_s": 3}, headers=lead)
    assert started.status_code == 202, started.text
    run = _wait(client, started.json()["id"], lead)
    assert run["status"] == "done", run["error"]
    placed = len({a["request_id"] for a in run["result"]["assignments"]})
    assert placed == 2

    final = run["progress"]
    assert final["stage"] == "done"
    assert final["placed"] == placed and final["requests"] == 3
    assert final["bound"] >= final["best_objective"] > 0
    assert final["gap"] == pytest.approx(
        (final["bound"] - final["best_objective"]) / final["bound"], abs=1e-6
    )

    while_running = [p for status, p in _logged(progress_log) if status == "running"]
    solving = [p for p in while_running if p.get("placed") is not None]
    assert solving, while_running  # stored at least once before the run ended
    for p in solving:
        assert p["requests"] == 3 and 0 <= p["placed"] <= p["requests"]
        assert p["best_objective"] <= final["best_objective"]
        if p["bound"] is not None:
            assert p["bound"] >= p["best_objective"]
        assert p["elapsed_s"] >= 0


def test_the_solver_reports_requests_placed_and_fulfilled_weight() -> None:
    # one expert over 8 slots, three 4-slot requests: two fit
    reqs = [request(f"r{i}", priority=p) for i, p in enumerate((5, 3, 1))]
    seen: list[scheduling.Progress] = []
    plan = scheduling.solve(
        instance([expert()], reqs, horizon=8), **SOLVE, on_progress=seen.append
    )
    counted = [p for p in seen if p.placed is not None]
    assert counted
    for p in counted:
        assert p.placed <= 2 and p.fulfilled_weight is not None
        assert p.fulfilled_weight <= plan.objective.fulfilled_weight
    assert counted[-1].placed == len(plan.assignments) == 2
    assert counted[-1].fulfilled_weight == plan.objective.fulfilled_weight
