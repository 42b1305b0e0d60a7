"""Every left-out request gets machine-readable reasons naming what blocked it."""

from scheduling import (
    Agreement,
    CapWindow,
    PinnedBooking,
    ReasonCode,
    Requirement,
    TimeSpan,
    solve,
)

from .factories import SOLVE, expert, instance, need, request


def reasons(inst, request_id: str):  # type: ignore[no-untyped-def]
    plan = solve(inst, **SOLVE)
    assert plan.checked
    (left,) = [u for u in plan.unallocated if u.request_id == request_id]
    return left.reasons


def test_no_eligible_resource_names_the_requirement() -> None:
    inst = instance([expert()], [request(requirements=[need("py"), need("cobol")])])
    (reason,) = reasons(inst, "r1")
    assert reason.code == ReasonCode.NO_ELIGIBLE_RESOURCE and reason.requirement == 1


def test_no_agreement_names_the_holders() -> None:
    inst = instance([expert(unit="elsewhere")], [request(unit="u1")])
    (reason,) = reasons(inst, "r1")
    assert reason.code == ReasonCode.NO_AGREEMENT and reason.units == ["elsewhere"]


def test_window_shorter_than_duration() -> None:
    inst = instance([expert()], [request(window_start=2, window_end=5, duration=4)])
    (reason,) = reasons(inst, "r1")
    assert reason.code == ReasonCode.WINDOW_TOO_SHORT and reason.amount == 3


def test_no_capacity_names_the_requests_and_bookings_that_took_it() -> None:
    pin = PinnedBooking(id="b1", resource_id="e1", start=0, end=4)
    inst = instance(
        [expert()],
        [
            request("big", duration=6, priority=5, window_end=12),
            request("small", duration=6, window_end=10),
        ],
        pinned=[pin],
    )
    (reason,) = reasons(inst, "small")
    assert reason.code == ReasonCode.NO_CAPACITY
    assert reason.request_ids == ["big"] and reason.booking_ids == ["b1"]


def test_budget_short_by_an_amount() -> None:
    inst = instance([expert(cost_rate=10)], [request()], budgets={"p1": 25})
    (reason,) = reasons(inst, "r1")
    assert reason.code == ReasonCode.BUDGET_SHORT and reason.amount == 15


def test_dependency_unmet_names_the_dependency() -> None:
    inst = instance(
        [expert()],
        [
            request("first", requirements=[Requirement(device_type="laser")]),
            request("second", after=["first"]),
        ],
    )
    codes = {r.code: r for r in reasons(inst, "second")}
    assert codes[ReasonCode.DEPENDENCY_UNMET].request_ids == ["first"]


def test_lending_cap_reached() -> None:
    inst = instance(
        [expert(unit="home", lending_cap=4)],
        [request("r1", unit="away", priority=2), request("r2", unit="away")],
        agreements=[Agreement(lender="home", borrower="away")],
    )
    codes = {r.code for r in reasons(inst, "r2")}
    assert ReasonCode.LENDING_CAP in codes


def test_every_unallocated_request_has_a_reason() -> None:
    reqs = [request(f"r{i}", duration=5, priority=1 + i % 3) for i in range(8)]
    plan = solve(instance([expert("e1"), expert("e2")], reqs), **SOLVE)
    assert len(plan.assignments) + len(plan.unallocated) == 8
    assert all(u.reasons for u in plan.unallocated)


def no_ids_in(reasons, *ids: str) -> bool:  # type: ignore[no-untyped-def]
    """Messages name no ids and no time slots (those are in the fields)."""
    return all("[" not in r.message and not any(i in r.message for i in ids) for r in reasons)


def test_outside_working_hours_when_the_calendar_alone_leaves_no_room() -> None:
    # Available only in [20, 24): 4 units, the request needs 6; nothing else is booked.
    inst = instance([expert(unavailable=[TimeSpan(start=0, end=20)])], [request(duration=6)])
    (reason,) = reasons(inst, "r1")
    assert reason.code == ReasonCode.OUTSIDE_WORKING_HOURS
    assert reason.requirement == 0 and reason.resource_ids == ["e1"]
    assert no_ids_in([reason], "e1", "r1")


def test_outside_working_hours_when_requirements_never_work_at_the_same_time() -> None:
    inst = instance(
        [
            expert("am", unavailable=[TimeSpan(start=12, end=24)]),
            expert("pm", skills={"gis": 1}, unavailable=[TimeSpan(start=0, end=12)]),
        ],
        [request(requirements=[need("py"), need("gis")])],
    )
    (reason,) = reasons(inst, "r1")
    assert reason.code == ReasonCode.OUTSIDE_WORKING_HOURS and reason.requirement is None
    assert reason.resource_ids == ["am", "pm"]


def test_no_capacity_not_working_hours_when_a_booking_took_the_working_time() -> None:
    pin = PinnedBooking(id="b1", resource_id="e1", start=12, end=24)
    inst = instance(
        [expert(unavailable=[TimeSpan(start=0, end=12)])], [request(duration=6)], pinned=[pin]
    )
    (reason,) = reasons(inst, "r1")
    assert reason.code == ReasonCode.NO_CAPACITY
    assert reason.booking_ids == ["b1"] and reason.request_ids == []
    assert no_ids_in([reason], "e1", "b1", "r1")


def test_window_too_short_only_for_the_window_itself() -> None:
    # The calendar leaves no room either, but the window is what rules it out.
    e = expert(unavailable=[TimeSpan(start=0, end=24)])
    inst = instance([e], [request(window_start=2, window_end=5, duration=4)])
    (reason,) = reasons(inst, "r1")
    assert reason.code == ReasonCode.WINDOW_TOO_SHORT
    assert reason.span == TimeSpan(start=2, end=5) and no_ids_in([reason])


def test_lending_cap_names_the_window_and_its_limit() -> None:
    cap = CapWindow(start=0, end=12, limit=4)
    inst = instance(
        [expert(unit="home", caps=[cap])],
        [
            request("r1", unit="away", priority=2, window_end=12),
            request("r2", unit="away", window_end=12),
        ],
        agreements=[Agreement(lender="home", borrower="away")],
    )
    (reason,) = reasons(inst, "r2")
    assert reason.code == ReasonCode.LENDING_CAP
    assert reason.span == TimeSpan(start=0, end=12) and reason.amount == 4
    assert reason.resource_ids == ["e1"] and no_ids_in([reason], "e1", "home", "away")
