"""The baselines: first-come-first-served and priority-ordered best-fit greedy."""

import pytest

from scheduling import best_fit_greedy, check_plan, first_come_first_served, solve
from scheduling.scenarios import generate_scenario

from .factories import SOLVE, expert, instance, need, request


def test_first_come_first_served_follows_arrival_not_priority() -> None:
    inst = instance(
        [expert()],
        [
            request("vip", duration=20, priority=5, arrival=2),
            request("early", duration=20, arrival=1),
        ],
    )
    plan = first_come_first_served(inst)
    assert [a.request_id for a in plan.assignments] == ["early"]
    assert plan.checked


def test_best_fit_serves_priority_first_and_keeps_the_versatile_expert_free() -> None:
    generalist = expert("generalist", skills={"py": 5, "gis": 5})
    specialist = expert("specialist", skills={"py": 2})
    inst = instance(
        [generalist, specialist],
        [
            request("py", requirements=[need("py")], duration=20, priority=3),
            request("gis", requirements=[need("gis")], duration=20, priority=1),
        ],
    )
    plan = best_fit_greedy(inst)
    assert plan.assignment_of("py").resource_ids == ["specialist"]  # type: ignore[union-attr]
    assert plan.assignment_of("gis") is not None


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_optimizer_never_below_either_baseline(seed: int) -> None:
    inst = generate_scenario(seed, n_requests=40, n_experts=10, n_devices=3, n_units=3, weeks=1)
    plan = solve(inst, **{**SOLVE, "time_limit_s": 3.0})
    assert check_plan(inst, plan) == []
    for baseline in (first_come_first_served(inst), best_fit_greedy(inst)):
        assert baseline.checked
        assert plan.objective.fulfilled_weight >= baseline.objective.fulfilled_weight
