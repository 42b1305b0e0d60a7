"""Hypothesis-generated instances: every plan passes check_plan; results repeat when seeded.

Instances carry the whole rule set: set-up and tear-down, capacity windows (some
straddled by requests), per-request prices and displaceable pinned bookings.
"""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduling import (
    Agreement,
    CapWindow,
    Instance,
    PinnedBooking,
    ReasonCode,
    Request,
    Requirement,
    Resource,
    TimeSpan,
    best_fit_greedy,
    check_plan,
    first_come_first_served,
    solve,
)

UNITS = ["u1", "u2", "u3"]
SKILLS = ["a", "b"]
HORIZON = 30


@st.composite
def cap_windows(draw: st.DrawFn) -> CapWindow:
    start = draw(st.integers(0, HORIZON - 1))
    return CapWindow(
        start=start,
        end=draw(st.integers(start + 1, HORIZON)),
        limit=draw(st.integers(0, 10)),
        borrowers=draw(st.none() | st.lists(st.sampled_from(UNITS), max_size=2, unique=True)),
    )


@st.composite
def instances(draw: st.DrawFn) -> Instance:
    n_res = draw(st.integers(1, 4))
    resources = []
    for k in range(n_res):
        is_device = draw(st.booleans()) and k > 0
        start = draw(st.integers(0, HORIZON - 1))
        gaps = (
            [TimeSpan(start=start, end=start + draw(st.integers(1, 6)))]
            if draw(st.booleans())
            else []
        )
        resources.append(
            Resource(
                id=f"x{k}",
                kind="device" if is_device else "expert",
                home_unit=draw(st.sampled_from(UNITS)),
                skills={}
                if is_device
                else {
                    s: draw(st.integers(1, 3))
                    for s in draw(st.sets(st.sampled_from(SKILLS), min_size=1))
                },
                device_type="dev" if is_device else None,
                unavailable=gaps,
                lending_cap=draw(st.none() | st.integers(0, 12)),
                cost_rate=draw(st.integers(0, 3)),
                setup=draw(st.integers(0, 2)),
                teardown=draw(st.integers(0, 2)),
                caps=draw(st.lists(cap_windows(), max_size=2)),
            )
        )
    requests = []
    for q in range(draw(st.integers(1, 7))):
        needs = [
            Requirement(device_type="dev")
            if draw(st.integers(0, 4)) == 0
            else Requirement(
                skill=draw(st.sampled_from(SKILLS)),
                min_level=draw(st.integers(1, 3)),
                quantity=draw(st.integers(1, 2)),
            )
        ]
        lo = draw(st.integers(0, HORIZON - 2))
        after = [f"q{draw(st.integers(0, q - 1))}"] if q and draw(st.integers(0, 3)) == 0 else []
        requests.append(
            Request(
                id=f"q{q}",
                project=draw(st.sampled_from(["p1", "p2"])),
                unit=draw(st.sampled_from(UNITS)),
                requirements=needs,
                duration=draw(st.integers(1, 8)),
                window_start=lo,
                window_end=draw(st.integers(lo + 1, HORIZON)),
                priority=draw(st.integers(1, 4)),
                after=after,
                arrival=draw(st.integers(0, 10)),
                costs=draw(
                    st.dictionaries(
                        st.sampled_from([f"x{k}" for k in range(n_res)]), st.integers(0, 20)
                    )
                ),
            )
        )
    pinned = []
    if draw(st.booleans()):
        s = draw(st.integers(0, HORIZON - 3))
        pinned.append(PinnedBooking(id="pin", resource_id="x0", start=s, end=s + 2, unit="u2"))
    for n in range(draw(st.integers(0, 2))):
        s = draw(st.integers(0, HORIZON - 2))
        pinned.append(
            PinnedBooking(
                id=f"movable{n}",
                resource_id=f"x{draw(st.integers(0, n_res - 1))}",
                start=s,
                end=draw(st.integers(s + 1, HORIZON)),
                displaceable=True,
            )
        )
    agreements = [
        Agreement(lender=a, borrower=b, needs_approval=draw(st.booleans()))
        for a in UNITS
        for b in UNITS
        if a != b and draw(st.booleans())
    ]
    return Instance(
        horizon=HORIZON,
        resources=resources,
        requests=requests,
        pinned=pinned,
        agreements=agreements,
        budgets={"p1": draw(st.integers(0, 60))} if draw(st.booleans()) else {},
        reciprocity={"u1": draw(st.integers(1, 3))},
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_baseline_plans_always_pass_check_plan(inst: Instance) -> None:
    for plan in (first_come_first_served(inst), best_fit_greedy(inst)):
        assert check_plan(inst, plan) == []
        assert len(plan.assignments) + len(plan.unallocated) == len(inst.requests)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_optimized_plans_pass_check_plan_and_beat_both_baselines(inst: Instance) -> None:
    plan = solve(inst, time_limit_s=2.0, num_workers=1, seed=0)
    assert check_plan(inst, plan) == []
    assert plan.checked
    best_baseline = max(
        first_come_first_served(inst).objective.fulfilled_weight,
        best_fit_greedy(inst).objective.fulfilled_weight,
    )
    assert plan.objective.fulfilled_weight >= best_baseline
    for left in plan.unallocated:
        for reason in left.reasons:
            assert "[" not in reason.message and left.request_id not in reason.message
            if reason.code == ReasonCode.NO_CAPACITY:
                assert reason.request_ids or reason.booking_ids
    if plan.status == "optimal":
        assert plan.bound == plan.objective.fulfilled_weight


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_seeded_single_worker_runs_repeat(inst: Instance) -> None:
    first = solve(inst, time_limit_s=2.0, num_workers=1, seed=7)
    again = solve(inst, time_limit_s=2.0, num_workers=1, seed=7)
    assert first.assignments == again.assignments


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_neighbourhood_search_plans_pass_check_plan(inst: Instance) -> None:
    plan = solve(inst, time_limit_s=0.5, num_workers=1, seed=0, strategy="lns")
    assert check_plan(inst, plan) == [] and plan.checked
    assert plan.objective.fulfilled_weight >= best_fit_greedy(inst).objective.fulfilled_weight
