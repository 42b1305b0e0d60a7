"""A time limit covers the whole run: preparing, the warm start, solving, explaining, checking.

Timing itself belongs to the benchmarks; these tests check the structure that keeps the
promise: every CP-SAT call is given at most the time left before the run's limit, the
warm start's extra candidates are skipped once their share of the limit is gone, and the
plan reports its stages, which add up to no more than the run.
"""

import importlib
import time

import pytest
from ortools.sat.python import cp_model

from scheduling import check_plan, solve
from scheduling.eligibility import prepare
from scheduling.scenarios import generate_scenario
from scheduling.solve import SolveOptions, warm_start

solve_module = importlib.import_module("scheduling.solve")  # the package re-exports solve()
LIMIT = 2.0
SLACK = 0.25
"""What may pass between reading the time left and starting the solver (generous)."""


@pytest.fixture(scope="module")
def large():  # type: ignore[no-untyped-def]
    """The benchmark's 2,000-request scenario: large enough for the neighbourhood search."""
    return generate_scenario(0)


def test_every_solver_call_ends_before_the_limit(large, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    calls: list[tuple[float, float]] = []
    original = cp_model.CpSolver.solve

    def spy(self, model, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append((time.monotonic(), self.parameters.max_time_in_seconds))
        return original(self, model, *args, **kwargs)

    monkeypatch.setattr(cp_model.CpSolver, "solve", spy)
    started = time.monotonic()
    plan = solve(large, time_limit_s=LIMIT, num_workers=1, seed=0)
    assert plan.checked and check_plan(large, plan) == []
    # On a busy machine the greedy plan may take the whole limit: then no search runs.
    assert bool(calls) == ("solve" in plan.stages)
    for at, allowed in calls:
        assert at - started + allowed <= LIMIT + SLACK
    assert set(plan.stages) >= {"prepare", "greedy", "explain", "check"}
    assert sum(plan.stages.values()) <= plan.solve_seconds + 0.01


def test_the_warm_start_skips_extra_candidates_when_the_limit_is_spent(large, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    runs: list[str] = []
    fcfs = solve_module.first_come_first_served_occupancy
    monkeypatch.setattr(
        solve_module,
        "first_come_first_served_occupancy",
        lambda prep: runs.append("fcfs") or fcfs(prep),
    )
    prep = prepare(large)
    spent = SolveOptions(0.0, 0.0, 1, 0, None)  # a run whose time is already up
    warm = warm_start(prep, 1, spent)
    assert runs == [] and warm.placed, "best-fit alone, and it placed requests"
    warm_start(prep, 1, SolveOptions(600.0, 0.0, 1, 0, None))
    assert runs == ["fcfs"]


def test_a_run_out_of_time_still_returns_the_checked_greedy_plan(large) -> None:  # type: ignore[no-untyped-def]
    plan = solve(large, time_limit_s=0.01, num_workers=1, seed=0)
    assert plan.checked and plan.status == "fallback" and plan.assignments
    assert "solve" not in plan.stages
