"""The pool-capacity relaxation bounds every plan, as a linear and as an integer programme."""

from hypothesis import HealthCheck, assume, given, settings

from scheduling import Instance, solve
from scheduling.bound import ip_bound, lp_bound, relaxation
from scheduling.eligibility import prepare
from scheduling.lns import capacity_bound, chained_windows, placeable
from scheduling.solve import SolveOptions

from .factories import SOLVE, expert, instance, request
from .test_properties import instances


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_the_relaxation_bounds_the_optimal_plan(inst: Instance) -> None:
    plan = solve(inst, strategy="monolithic", **SOLVE)
    assume(plan.status == "optimal")
    prep = prepare(inst)
    options = SolveOptions(5, 0, 1, 0, None)
    windows = chained_windows(prep)
    rs = [r for r in placeable(prep) if windows[r][1] - windows[r][0] >= inst.requests[r].duration]
    rel = relaxation(prep, windows, rs)
    lp, _ = lp_bound(rel)
    ip, _ = ip_bound(rel, options, 2.0, set())
    assert lp >= plan.objective.fulfilled_weight
    assert ip is not None and ip >= plan.objective.fulfilled_weight
    combined = capacity_bound(prep, options, 2.0)[0]
    assert plan.objective.fulfilled_weight <= combined <= lp


def test_the_linear_bound_counts_a_pool_s_free_time() -> None:
    # One expert free 10 units; three requests of 4 each, weights 3, 2, 1: the LP takes
    # the first two and half of the third (10 units), 3 + 2 + 0.5 -> 5.
    inst = instance(
        [expert()],
        [
            request("a", duration=4, priority=3),
            request("b", duration=4, priority=2),
            request("c", duration=4, priority=1),
        ],
        horizon=10,
    )
    prep = prepare(inst)
    rel = relaxation(prep, chained_windows(prep), placeable(prep))
    assert lp_bound(rel)[0] == 5
    assert ip_bound(rel, SolveOptions(5, 0, 1, 0, None), 2.0, set())[0] == 5
