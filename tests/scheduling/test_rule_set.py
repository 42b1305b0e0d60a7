"""The booking engine's rule set, one test per rule: per-request prices, set-up and
tear-down buffers, capacity windows, displaceable pinned bookings."""

from scheduling import (
    Assignment,
    Plan,
    ReasonCode,
    best_fit_greedy,
    check_plan,
    first_come_first_served,
    solve,
)

from .factories import SOLVE, expert, instance, request


def solved(inst, **params) -> Plan:  # type: ignore[no-untyped-def]
    plan = solve(inst, **{**SOLVE, **params})
    assert check_plan(inst, plan) == []
    assert plan.checked
    return plan


def every_plan(inst) -> list[Plan]:  # type: ignore[no-untyped-def]
    """The optimizer's plan and both baselines' (each checked)."""
    plans = [solved(inst), first_come_first_served(inst), best_fit_greedy(inst)]
    for plan in plans[1:]:
        assert check_plan(inst, plan) == []
    return plans


# ---- per-request prices -----------------------------------------------------------------


def test_a_requests_own_price_overrides_the_rate_in_choice_and_cost() -> None:
    # By rate "dear" costs 36 and "cheap" 4; for this borrower the prices are the other way.
    inst = instance(
        [expert("dear", cost_rate=9), expert("cheap", cost_rate=1)],
        [request(costs={"dear": 0, "cheap": 100})],
    )
    (a,) = solved(inst).assignments
    assert a.resource_ids == ["dear"] and a.cost == 0


def test_per_request_prices_drive_budgets_and_the_shortfall() -> None:
    # Rate 0 would make both free; the requests' own prices (30 each) exceed a budget of 50.
    reqs = [request("r1", costs={"e1": 30}, priority=2), request("r2", costs={"e1": 30})]
    inst = instance([expert("e1")], reqs, budgets={"p1": 50})
    for plan in every_plan(inst):
        assert [(a.request_id, a.cost) for a in plan.assignments] == [("r1", 30)]
        (left,) = plan.unallocated
        (reason,) = left.reasons
        assert reason.code == ReasonCode.BUDGET_SHORT and reason.amount == 10


def test_check_plan_prices_an_assignment_at_the_requests_own_price() -> None:
    inst = instance([expert("e1", cost_rate=5)], [request(costs={"e1": 7})])
    at_rate = Assignment(request_id="r1", resource_ids=["e1"], start=0, end=4, cost=20)
    plan = solved(inst).model_copy(update={"assignments": [at_rate]})
    assert any("cost 20, should be 7" in v for v in check_plan(inst, plan))
