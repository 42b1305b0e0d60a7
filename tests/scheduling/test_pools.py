"""Decomposition into independent pools changes nothing the plan promises.

Random instances are two random federations side by side (their own units, resources,
projects) so there are always several pools, and within each federation the finder may
split further. The pooled solve must give a plan that is valid for the whole instance,
and, when every pool and the whole are solved to optimality, the same proven bound.
"""

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from scheduling import Instance, check_plan, pools, solve
from scheduling.eligibility import prepare
from scheduling.pools import independent_pools, sub_instance, work_units
from scheduling.scenarios import generate_federations, prefixed

from .factories import SOLVE, expert, instance, need, request
from .test_properties import instances


@st.composite
def federations(draw: st.DrawFn) -> Instance:
    a = prefixed(draw(instances()), "A")
    b = prefixed(draw(instances()), "B")
    return a.model_copy(
        update={
            "resources": a.resources + b.resources,
            "requests": a.requests + b.requests,
            "pinned": a.pinned + b.pinned,
            "agreements": a.agreements + b.agreements,
            "budgets": {**a.budgets, **b.budgets},
            "reciprocity": {**a.reciprocity, **b.reciprocity},
        }
    )


def test_federations_are_as_many_pools_at_least() -> None:
    inst = instance([expert("x0", unit="u1")], [request("q0", unit="u1", project="p1")])
    assert prefixed(inst, "A").requests[0].id == "Aq0"
    assert prefixed(inst, "A").resources[0].home_unit == "Au1"
    three = generate_federations(0, 3, n_requests=40, n_experts=12, n_devices=4, n_units=3)
    assert len(independent_pools(prepare(three))) >= 3


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(federations())
def test_pools_share_no_resource_and_cover_every_request(inst: Instance) -> None:
    prep = prepare(inst)
    pools = independent_pools(prep)
    assert len(pools) >= 2
    assert sorted(r for pool in pools for r in pool) == list(range(len(inst.requests)))
    owner: dict[int, int] = {}
    for n, pool in enumerate(pools):
        for r in pool:
            for k in prep.candidates(r):
                assert owner.setdefault(k, n) == n, "a resource is eligible in two pools"
            for dep in inst.requests[r].after:
                d = prep.request_index.get(dep)
                assert d is None or d in pool
    for unit in work_units(prep):
        part = sub_instance(inst, prep, unit)
        assert Instance.model_validate_json(part.model_dump_json()) == part  # serialisable


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(federations())
def test_merged_plan_is_valid_and_its_bound_is_the_monolithic_bound(inst: Instance) -> None:
    stages: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pools, "UNIT_PAIRS", 0)  # every pool a unit of work of its own
        pooled = solve(inst, on_progress=lambda p: stages.append(p.stage), **SOLVE)
    assert any(stage.startswith("pool 2/") for stage in stages)
    whole = solve(inst, strategy="monolithic", **SOLVE)
    assert check_plan(inst, pooled) == [] and pooled.checked
    assume(pooled.status == "optimal" and whole.status == "optimal")
    assert pooled.objective.fulfilled_weight == whole.objective.fulfilled_weight
    assert pooled.bound == whole.bound


def test_a_run_over_two_federations_solves_them_as_two_pools() -> None:
    left = [expert("x1", unit="u1"), expert("x2", unit="u1")]
    right = [expert("y1", unit="v1", skills={"go": 2})]
    asks = [
        request("a", unit="u1", project="p1"),
        request("b", unit="u1", project="p1"),
        request("c", unit="v1", project="p2", requirements=[need("go")]),
    ]
    inst = instance(left + right, asks, budgets={"p1": 0, "p2": 100})
    prep = prepare(inst)
    assert independent_pools(prep) == [[0, 1], [2]]
    stages: list[str] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pools, "UNIT_PAIRS", 0)
        plan = solve(inst, on_progress=lambda p: stages.append(p.stage), **SOLVE)
    assert {s.split()[1] for s in stages if s.startswith("pool")} == {"1/2", "2/2"}
    assert plan.checked and plan.status == "optimal"
    assert {a.request_id for a in plan.assignments} == {"a", "b", "c"}
    assert plan.bound == 3
