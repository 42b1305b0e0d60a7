"""The booking engine's rule set, one test per rule: per-request prices, set-up and
tear-down buffers, capacity windows, displaceable pinned bookings."""

from scheduling import (
    Agreement,
    Assignment,
    CapWindow,
    PinnedBooking,
    Plan,
    ReasonCode,
    Requirement,
    TimeSpan,
    best_fit_greedy,
    check_plan,
    first_come_first_served,
    solve,
)

from .factories import SOLVE, device, expert, instance, request


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


# ---- set-up and tear-down buffers -------------------------------------------------------


def test_two_assignments_of_a_device_are_never_closer_than_its_buffers() -> None:
    scope = device("d1", setup=2, teardown=3)
    reqs = [request(f"r{i}", requirements=[Requirement(device_type="scope")]) for i in range(2)]
    inst = instance([scope], reqs, horizon=24)
    for plan in every_plan(inst):
        first, second = sorted(plan.assignments, key=lambda a: a.start)
        assert second.start - first.end >= 3 + 2  # tear-down of one, set-up of the next


def test_set_up_may_happen_while_the_device_is_unavailable() -> None:
    # Unavailable until 10; a set-up of 3 fits in [7, 10), so the use itself starts at 10.
    scope = device("d1", setup=3, teardown=1, unavailable=[TimeSpan(start=0, end=10)])
    inst = instance([scope], [request(requirements=[Requirement(device_type="scope")])])
    for plan in every_plan(inst):
        (a,) = plan.assignments
        assert a.start == 10


def test_a_block_may_not_meet_a_pinned_booking() -> None:
    # Pinned [10, 14). Without buffers [5, 9) would fit; with a tear-down of 2 it does not.
    pin = PinnedBooking(id="b1", resource_id="d1", start=10, end=14)
    scope = device("d1", setup=2, teardown=2)
    needs = [Requirement(device_type="scope")]
    fits = request("fits", requirements=needs, window_start=4, window_end=14)
    late = request("late", requirements=needs, window_start=5, window_end=14)
    for req, start in ((fits, 4), (late, None)):
        for plan in every_plan(instance([scope], [req], pinned=[pin])):
            assert [a.start for a in plan.assignments] == ([] if start is None else [start])


def test_check_plan_measures_blocks_not_spans() -> None:
    inst = instance([device("d1", setup=1, teardown=1)], [request("a"), request("b")])
    close = [
        Assignment(request_id="a", resource_ids=["d1"], start=0, end=4),
        Assignment(request_id="b", resource_ids=["d1"], start=5, end=9),
    ]
    plan = solved(instance([expert()], [])).model_copy(update={"assignments": close})
    assert any("a [0, 5) overlaps b [4, 10)" in v for v in check_plan(inst, plan))


# ---- capacity windows -------------------------------------------------------------------

LOAN = [Agreement(lender="home", borrower="b"), Agreement(lender="home", borrower="c")]


def test_a_capacity_window_limits_loans_inside_it_not_home_use() -> None:
    cap = CapWindow(start=0, end=12, limit=4)
    reqs = [request(f"b{i}", unit="b", window_end=12) for i in range(2)]
    reqs.append(request("own", unit="home", window_end=12))
    inst = instance([expert("e1", unit="home", caps=[cap])], reqs, agreements=LOAN)
    for plan in every_plan(inst):
        served = sorted(a.request_id for a in plan.assignments)
        assert served in (["b0", "own"], ["b1", "own"])


def test_only_the_part_inside_a_window_counts_when_a_request_straddles_it() -> None:
    # Two months of 10 units with 2 units left in each: a 4-unit loan fits only across the
    # boundary, 2 units in each month (start 8).
    caps = [CapWindow(start=0, end=10, limit=2), CapWindow(start=10, end=20, limit=2)]
    inst = instance(
        [expert("e1", unit="home", caps=caps)],
        [request("r1", unit="b", window_end=20)],
        agreements=LOAN,
    )
    for plan in every_plan(inst):
        assert [(a.start, a.end) for a in plan.assignments] == [(8, 12)]


def test_an_agreement_window_counts_only_its_borrower() -> None:
    cap = CapWindow(start=0, end=24, limit=0, borrowers=["b"])
    inst = instance(
        [expert("e1", unit="home", caps=[cap])],
        [request("by_b", unit="b"), request("by_c", unit="c")],
        agreements=LOAN,
    )
    for plan in every_plan(inst):
        assert [a.request_id for a in plan.assignments] == ["by_c"]


def test_pinned_loans_count_against_lending_cap_but_not_against_windows() -> None:
    pin = PinnedBooking(id="p", resource_id="e1", start=0, end=4, unit="b")
    windowed = expert("e1", unit="home", caps=[CapWindow(start=0, end=24, limit=4)])
    shorthand = expert("e1", unit="home", lending_cap=4)
    reqs = [request("r1", unit="b")]
    assert solved(instance([windowed], reqs, pinned=[pin], agreements=LOAN)).assignments
    assert not solved(instance([shorthand], reqs, pinned=[pin], agreements=LOAN)).assignments


def test_check_plan_counts_the_part_inside_each_window() -> None:
    caps = [CapWindow(start=0, end=10, limit=2)]
    inst = instance([expert("e1", unit="home", caps=caps)], [request(unit="b")], agreements=LOAN)
    at_7 = Assignment(request_id="r1", resource_ids=["e1"], start=7, end=11)
    plan = solved(inst).model_copy(update={"assignments": [at_7]})
    assert any("serves 3 in [0, 10) over its cap 2" in v for v in check_plan(inst, plan))


# ---- displaceable pinned bookings -------------------------------------------------------


def movable(id: str, start: int, end: int, resource: str = "e1") -> PinnedBooking:
    return PinnedBooking(id=id, resource_id=resource, start=start, end=end, displaceable=True)


def test_a_free_resource_is_preferred_over_displacing_a_booking() -> None:
    inst = instance([expert("e1"), expert("e2")], [request()], pinned=[movable("b1", 0, 24)])
    for plan in every_plan(inst):
        (a,) = plan.assignments
        assert a.resource_ids == ["e2"] and plan.displaced == []


def test_a_booking_is_displaced_when_nothing_else_fits_and_counts_as_a_move() -> None:
    inst = instance([expert("e1")], [request()], pinned=[movable("b1", 0, 24)])
    for plan in every_plan(inst):
        assert [a.request_id for a in plan.assignments] == ["r1"]
        assert plan.displaced == ["b1"] and plan.objective.moves == 1


def test_the_optimizer_displaces_as_few_bookings_as_it_can() -> None:
    # [2, 6) would displace b1 and b2; [4, 8) only b2 (the tear-down meets nothing: b3 is
    # not displaceable and starts at 9).
    pins = [movable("b1", 0, 4), movable("b2", 4, 8)]
    pins.append(PinnedBooking(id="b3", resource_id="e1", start=9, end=24))
    e1 = expert("e1", teardown=1)
    for plan in every_plan(instance([e1], [request(window_start=2, window_end=8)], pinned=pins)):
        assert [(a.start, a.end) for a in plan.assignments] == [(4, 8)]
        assert plan.displaced == ["b2"] and plan.objective.moves == 1


def test_check_plan_wants_the_exact_displaced_list_and_keeps_fixed_pins() -> None:
    pins = [movable("b1", 0, 2), PinnedBooking(id="b2", resource_id="e1", start=20, end=22)]
    inst = instance([expert("e1")], [request("r1"), request("r2")], pinned=pins)
    over_b1 = Assignment(request_id="r1", resource_ids=["e1"], start=0, end=4)
    over_b2 = Assignment(request_id="r2", resource_ids=["e1"], start=18, end=22)
    plan = solved(inst).model_copy(update={"assignments": [over_b1, over_b2], "displaced": []})
    violations = check_plan(inst, plan)
    assert any("displaced should be ['b1']" in v for v in violations)
    assert any("overlaps pinned b2" in v for v in violations)


def test_makespan_mode_keeps_buffers_and_windows() -> None:
    # Pooling keeps buffered and capped resources alone: the schedule still honours them.
    scope = Requirement(device_type="scope")
    devices = [device(f"d{i}", setup=1, teardown=2) for i in range(2)]
    lender = expert("e1", unit="home", caps=[CapWindow(start=0, end=12, limit=4)])
    reqs = [request(f"s{i}", requirements=[scope], duration=3) for i in range(4)]
    reqs += [request(f"b{i}", unit="b", duration=4) for i in range(2)]
    inst = instance([*devices, lender], reqs, horizon=40, agreements=LOAN)
    plan = solved(inst, mode="makespan")
    assert len(plan.assignments) == 6
    loans = sorted(a.start for a in plan.assignments if a.request_id.startswith("b"))
    assert loans[1] >= 12  # two loans starting before 12 put at least 5 units inside
