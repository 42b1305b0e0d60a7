"""One test per hard rule and objective term of the model, through solve()."""

from scheduling import (
    Agreement,
    Assignment,
    PinnedBooking,
    Plan,
    Requirement,
    TimeSpan,
    check_plan,
    solve,
)

from .factories import SOLVE, device, expert, instance, need, request


def solved(inst, **params) -> Plan:  # type: ignore[no-untyped-def]
    plan = solve(inst, **{**SOLVE, **params})
    assert check_plan(inst, plan) == []
    assert plan.checked
    return plan


def test_all_requirements_are_served_together_with_their_quantities() -> None:
    inst = instance(
        [expert("e1"), expert("e2"), expert("e3", skills={"gis": 2}), device("d1")],
        [
            request(
                requirements=[
                    need("py", quantity=2),
                    need("gis", 2),
                    Requirement(device_type="scope"),
                ]
            )
        ],
    )
    plan = solved(inst)
    (a,) = plan.assignments
    assert sorted(a.resource_ids) == ["d1", "e1", "e2", "e3"]


def test_skill_level_below_the_minimum_does_not_qualify() -> None:
    inst = instance([expert("junior", skills={"py": 1})], [request(requirements=[need("py", 3)])])
    plan = solved(inst)
    assert plan.assignments == []


def test_a_resource_does_one_thing_at_a_time() -> None:
    inst = instance([expert()], [request(f"r{i}", duration=8) for i in range(4)], horizon=24)
    plan = solved(inst)
    assert len(plan.assignments) == 3  # 3 x 8 units fill the 24-unit horizon


def test_windows_are_respected() -> None:
    inst = instance([expert()], [request(window_start=10, window_end=16, duration=4)])
    (a,) = solved(inst).assignments
    assert a.start >= 10 and a.end <= 16


def test_unavailability_blocks_the_resource() -> None:
    e = expert(unavailable=[TimeSpan(start=0, end=20)])
    (a,) = solved(instance([e], [request()])).assignments
    assert a.start >= 20


def test_pinned_bookings_stay_and_block() -> None:
    pin = PinnedBooking(id="b1", resource_id="e1", start=0, end=22, unit="u1")
    plan = solved(instance([expert()], [request()], pinned=[pin]))
    assert plan.assignments == []


def test_dependencies_come_first_and_are_required() -> None:
    inst = instance(
        [expert("e1"), expert("e2")],
        [request("late", after=["early"]), request("early", window_start=6)],
    )
    plan = solved(inst)
    early, late = plan.assignment_of("early"), plan.assignment_of("late")
    assert early is not None and late is not None and late.start >= early.end


def test_budget_caps_a_projects_spending() -> None:
    e = expert(cost_rate=10)
    inst = instance([e], [request(f"r{i}") for i in range(3)], budgets={"p1": 85})
    plan = solved(inst)
    assert len(plan.assignments) == 2  # each costs 40
    assert plan.objective.cost == 80


def test_lending_cap_limits_time_lent_to_other_units() -> None:
    lender = expert("e1", unit="home", lending_cap=8)
    reqs = [request(f"r{i}", unit="away") for i in range(3)]
    inst = instance([lender], reqs, agreements=[Agreement(lender="home", borrower="away")])
    assert len(solved(inst).assignments) == 2


def test_no_agreement_no_loan_and_approval_is_flagged() -> None:
    inst = instance(
        [expert("e1", unit="a"), expert("e2", unit="b")],
        [request("r1", unit="c", duration=20), request("r2", unit="c", duration=20)],
        agreements=[Agreement(lender="a", borrower="c", needs_approval=True)],
    )
    plan = solved(inst)
    (a,) = plan.assignments
    assert a.resource_ids == ["e1"] and a.needs_approval


def test_higher_priority_wins_a_contested_slot() -> None:
    inst = instance(
        [expert()],
        [request("low", duration=20, priority=1), request("high", duration=20, priority=5)],
    )
    plan = solved(inst)
    assert [a.request_id for a in plan.assignments] == ["high"]
    assert plan.status == "optimal" and plan.gap == 0


def test_fairness_spreads_fulfilment_over_units() -> None:
    # Two units ask for the same expert; equal weight, room for two of the four requests.
    reqs = [request(f"a{i}", unit="a", duration=6) for i in range(2)]
    reqs += [request(f"b{i}", unit="b", duration=6) for i in range(2)]
    inst = instance(
        [expert(unit="a")], reqs, horizon=12, agreements=[Agreement(lender="a", borrower="b")]
    )
    plan = solved(inst)
    units = sorted(a.request_id[0] for a in plan.assignments)
    assert units == ["a", "b"]
    assert plan.objective.fairness == 500


def test_published_assignments_are_not_moved_without_need() -> None:
    published = [Assignment(request_id="r1", resource_ids=["e2"], start=12, end=16)]
    inst = instance([expert("e1"), expert("e2")], [request("r1")], published=published)
    plan = solved(inst)
    assert plan.assignments[0].start == 12 and plan.assignments[0].resource_ids == ["e2"]
    assert plan.objective.moves == 0


def test_earliest_completion_and_lowest_cost_break_ties() -> None:
    inst = instance([expert("dear", cost_rate=9), expert("cheap", cost_rate=1)], [request()])
    (a,) = solved(inst).assignments
    assert a.start == 0 and a.resource_ids == ["cheap"]


def test_progress_callback_reports_improving_solutions() -> None:
    seen = []
    inst = instance([expert()], [request(f"r{i}", duration=3) for i in range(5)])
    solved(inst, on_progress=seen.append)
    assert seen and all(p.elapsed_s >= 0 for p in seen)
    assert {p.stage for p in seen} >= {"greedy", "fulfilment"}
