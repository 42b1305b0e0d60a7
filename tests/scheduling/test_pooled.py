"""Makespan mode pools identical resources (symmetry breaking): it must not cut any optimum."""

import random

import pytest
from ortools.sat.python import cp_model

from scheduling import Instance, check_plan, solve
from scheduling.eligibility import prepare
from scheduling.model import add_makespan, build_model
from scheduling.pooled import resource_classes
from scheduling.solve import full_scope, mandatory

from .factories import SOLVE, expert, instance, need, request


def per_resource_optimum(inst: Instance) -> int:
    """The optimal makespan of the plain per-resource model (no pooling), proven."""
    prep = prepare(mandatory(inst))
    m = build_model(prep, full_scope(prep))
    m.model.minimize(add_makespan(m, inst.horizon))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.max_time_in_seconds = 20
    assert solver.solve(m.model) == cp_model.OPTIMAL
    return round(solver.objective_value)


def random_instance(seed: int) -> Instance:
    """Few requests over interchangeable workers: two or three copies of each skill set."""
    rng = random.Random(seed)
    kinds = [{"a": 1}, {"b": 1}, {"a": 1, "b": 1}, {"c": 1, "a": 1}]
    resources = []
    for n, skills in enumerate(rng.sample(kinds, 3)):
        for copy in range(rng.choice([2, 3])):
            resources.append(expert(f"w{n}{copy}", skills=skills))
    held = {s for r in resources for s in r.skills}
    requests = []
    for q in range(6):
        needs = [
            need(s, quantity=rng.choice([1, 1, 2]))
            for s in rng.sample(sorted(held), rng.choice([1, 2]))
        ]
        after = [f"r{p}" for p in range(q) if rng.random() < 0.2]
        requests.append(
            request(f"r{q}", requirements=needs, duration=rng.randint(1, 5), after=after)
        )
    return instance(resources, requests, horizon=60)


def test_identical_resources_form_one_class_and_capped_ones_stay_alone() -> None:
    inst = instance(
        [
            expert("e1"),
            expert("e2"),
            expert("e3", lending_cap=10),
            expert("e4", skills={"gis": 1}),
            expert("e5", cost_rate=7),
        ],
        [request("r1", requirements=[need()]), request("r2", requirements=[need("gis")])],
    )
    prep = prepare(inst)
    classes = resource_classes(prep, full_scope(prep))
    assert sorted(classes) == [[0, 1], [2], [3], [4]]


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("seed", range(8))
def test_pooling_keeps_the_optimum_of_the_per_resource_model(seed: int, workers: int) -> None:
    inst = random_instance(seed)
    plan = solve(inst, mode="makespan", **{**SOLVE, "num_workers": workers})
    assert check_plan(mandatory(inst), plan) == [] and plan.checked
    assert plan.status == "optimal"
    assert plan.objective.makespan == per_resource_optimum(inst)


def test_a_class_serves_at_most_its_size_at_once() -> None:
    # Two identical experts, three requests needing one each: two in parallel, then one.
    inst = instance(
        [expert("e1"), expert("e2")],
        [request(f"r{q}", duration=4) for q in range(3)],
    )
    plan = solve(inst, mode="makespan", **SOLVE)
    assert plan.checked and plan.objective.makespan == 8
