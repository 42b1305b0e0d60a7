"""check_plan catches each broken hard rule on hand-made plans (it never trusts the model)."""

import pytest

from scheduling import (
    Agreement,
    Assignment,
    InvalidPlan,
    Objective,
    PinnedBooking,
    Plan,
    Reason,
    ReasonCode,
    TimeSpan,
    Unallocated,
    assert_plan_valid,
    check_plan,
)

from .factories import expert, instance, request


def plan_of(*assignments: Assignment, left: tuple[str, ...] = ()) -> Plan:
    reason = Reason(code=ReasonCode.NOT_SELECTED, message="test")
    return Plan(
        assignments=list(assignments),
        unallocated=[Unallocated(request_id=r, reasons=[reason]) for r in left],
        objective=Objective(),
        status="feasible",
    )


def at(rid: str, start: int, *resources: str, cost: int = 0, approval: bool = False) -> Assignment:
    return Assignment(
        request_id=rid,
        resource_ids=list(resources or ["e1"]),
        start=start,
        end=start + 4,
        cost=cost,
        needs_approval=approval,
    )


def test_a_valid_plan_passes() -> None:
    inst = instance([expert()], [request("r1"), request("r2")])
    assert check_plan(inst, plan_of(at("r1", 0), at("r2", 4))) == []


@pytest.mark.parametrize(
    ("inst", "plan", "words"),
    [
        (
            instance([expert()], [request("r1"), request("r2")]),
            plan_of(at("r1", 0), at("r2", 2)),
            "overlaps",
        ),
        (instance([expert()], [request(window_end=6)]), plan_of(at("r1", 4)), "outside window"),
        (instance([expert(skills={"py": 0})], [request()]), plan_of(at("r1", 0)), "do not cover"),
        (
            instance([expert(unavailable=[TimeSpan(start=3, end=5)])], [request()]),
            plan_of(at("r1", 0)),
            "unavailable",
        ),
        (
            instance(
                [expert()],
                [request()],
                pinned=[PinnedBooking(id="b", resource_id="e1", start=2, end=3)],
            ),
            plan_of(at("r1", 0)),
            "pinned b",
        ),
        (instance([expert(unit="x")], [request()]), plan_of(at("r1", 0)), "may not borrow"),
        (
            instance(
                [expert(unit="x")],
                [request()],
                agreements=[Agreement(lender="x", borrower="u1", needs_approval=True)],
            ),
            plan_of(at("r1", 0)),
            "needs_approval",
        ),
        (
            instance([expert(cost_rate=5)], [request()], budgets={"p1": 10}),
            plan_of(at("r1", 0, cost=20)),
            "over its budget",
        ),
        (
            instance(
                [expert(unit="x", lending_cap=2)],
                [request()],
                agreements=[Agreement(lender="x", borrower="u1")],
            ),
            plan_of(at("r1", 0)),
            "over its cap",
        ),
        (
            instance([expert(), expert("e2")], [request("a"), request("b", after=["a"])]),
            plan_of(at("a", 2), at("b", 0, "e2")),
            "before a ends",
        ),
        (instance([expert()], [request(mandatory=True)]), plan_of(left=("r1",)), "mandatory"),
        (instance([expert()], [request("r1"), request("r2")]), plan_of(at("r1", 0)), "neither"),
        (instance([expert()], [request()]), plan_of(at("r1", 0), left=("r1",)), "both"),
    ],
)
def test_each_broken_rule_is_reported(inst, plan, words) -> None:  # type: ignore[no-untyped-def]
    violations = check_plan(inst, plan)
    assert any(words in v for v in violations), violations
    with pytest.raises(InvalidPlan):
        assert_plan_valid(inst, plan)
