"""Input checks that do not need the solver."""

import pytest

from scheduling import InvalidInstance, PinnedBooking, instance_problems, solve, validate_instance

from .factories import expert, instance, request


def test_duplicate_ids_are_reported_with_their_location() -> None:
    inst = instance([expert("e1"), expert("e1")], [request("r1"), request("r1")])
    places = [where for where, _ in instance_problems(inst)]
    assert "resources[1]" in places
    assert "requests[1]" in places


def test_unknown_dependency_is_an_error() -> None:
    inst = instance([expert()], [request("r1", after=["ghost"])])
    with pytest.raises(InvalidInstance, match="ghost"):
        validate_instance(inst)


def test_dependency_cycle_is_an_error_and_solve_refuses_it() -> None:
    inst = instance([expert()], [request("a", after=["b"]), request("b", after=["a"])])
    with pytest.raises(InvalidInstance, match="cycle"):
        solve(inst, time_limit_s=1)


def test_pinned_booking_on_unknown_resource_is_an_error() -> None:
    pin = PinnedBooking(id="b1", resource_id="nobody", start=0, end=2)
    inst = instance([expert()], [request()], pinned=[pin])
    with pytest.raises(InvalidInstance, match="nobody"):
        validate_instance(inst)


def test_a_short_window_is_not_an_input_error() -> None:
    inst = instance([expert()], [request(window_start=0, window_end=2, duration=4)])
    assert instance_problems(inst) == []
