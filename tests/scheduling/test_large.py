"""The large-instance path: neighbourhood search over the greedy plan, bound, re-planning."""

import pytest

from scheduling import best_fit_greedy, check_plan, first_come_first_served, solve
from scheduling.scenarios import generate_scenario, pool_pressure


def small_scenario(seed: int = 0):  # type: ignore[no-untyped-def]
    return generate_scenario(seed, n_requests=150, n_experts=25, n_devices=6, n_units=4, weeks=1)


def test_scenarios_are_seeded_and_concentrated() -> None:
    assert generate_scenario(3, n_requests=50) == generate_scenario(3, n_requests=50)
    assert max(pool_pressure(generate_scenario(0)).values()) >= 1.5


@pytest.mark.slow
def test_neighbourhood_search_plan_is_checked_and_never_below_the_baselines() -> None:
    inst = small_scenario()
    plan = solve(inst, strategy="lns", time_limit_s=4.0, num_workers=1, seed=0)
    assert check_plan(inst, plan) == [] and plan.checked
    assert plan.method in {"lns", "best_fit"}
    for baseline in (first_come_first_served(inst), best_fit_greedy(inst)):
        assert plan.objective.fulfilled_weight >= baseline.objective.fulfilled_weight
    assert plan.bound is not None and plan.bound >= plan.objective.fulfilled_weight


@pytest.mark.slow
def test_replanning_after_a_cancellation_keeps_the_published_plan() -> None:
    inst = small_scenario(1)
    plan = solve(inst, strategy="lns", time_limit_s=3.0, num_workers=1, seed=0)
    cancelled = plan.assignments[0].request_id
    again = inst.model_copy(
        update={
            "requests": [r for r in inst.requests if r.id != cancelled],
            "published": [a for a in plan.assignments if a.request_id != cancelled],
        }
    )
    replan = solve(again, strategy="lns", time_limit_s=3.0, num_workers=1, seed=0)
    assert replan.checked
    lost = next(r.weight for r in inst.requests if r.id == cancelled)
    assert replan.objective.fulfilled_weight >= plan.objective.fulfilled_weight - lost
    assert replan.objective.moves <= len(again.published) // 20  # at most 5% moved


def test_chained_windows_start_after_the_earliest_end_of_each_dependency() -> None:
    from scheduling.eligibility import prepare
    from scheduling.lns import chained_windows

    from .factories import expert, instance, request

    inst = instance(
        [expert()],
        [
            request("a", duration=4, window_start=2),
            request("b", duration=6, after=["a"]),
            request("c", duration=3, after=["b"], window_end=10),
        ],
    )
    assert chained_windows(prepare(inst)) == [(2, 24), (6, 24), (12, 10)]


def test_a_request_whose_chain_cannot_fit_is_out_of_the_bound() -> None:
    from scheduling.eligibility import prepare
    from scheduling.lns import capacity_bound
    from scheduling.solve import SolveOptions

    from .factories import expert, instance, request

    inst = instance(
        [expert()],
        [request("a", duration=10), request("b", duration=4, after=["a"], window_end=12)],
    )
    bound, chosen = capacity_bound(prepare(inst), SolveOptions(5, 0, 1, 0, None), 2.0)
    assert bound == 1 and chosen == {0}


def test_working_blocks_are_the_spans_when_someone_is_available() -> None:
    from scheduling import TimeSpan
    from scheduling.eligibility import prepare
    from scheduling.lns import working_blocks

    from .factories import expert, instance, request

    inst = instance(
        [
            expert("e1", unavailable=[TimeSpan(start=0, end=4), TimeSpan(start=8, end=24)]),
            expert("e2", unavailable=[TimeSpan(start=0, end=6), TimeSpan(start=10, end=16)]),
        ],
        [request()],
    )
    assert working_blocks(prepare(inst)) == [(4, 10), (16, 24)]


@pytest.mark.slow
def test_bound_stays_above_the_plan_on_a_scenario_with_dependencies() -> None:
    inst = small_scenario(2)
    plan = solve(inst, strategy="lns", time_limit_s=3.0, num_workers=1, seed=0)
    assert plan.checked and plan.bound is not None
    assert plan.bound >= plan.objective.fulfilled_weight
