"""Turn a list of assignments into a `Plan`: objective terms, explanations, the check."""

from __future__ import annotations

import time

from scheduling.check import check_plan
from scheduling.eligibility import Prepared, displaced_pins, is_kept
from scheduling.explain import explain
from scheduling.schemas import Assignment, Instance, Objective, Plan, SolveStatus

FAIRNESS_SCALE = 1000


def fairness_of(instance: Instance, fulfilled: dict[str, int]) -> int:
    """Fairness term: min over requesting units of their reciprocity-scaled fulfilment share.

    A unit u with requested weight W_u, fulfilled weight F_u and reciprocity weight rho_u
    (>= 1; a unit that lends more than it borrows gets a larger one) scores
    floor(1000 * rho_max * F_u / (rho_u * W_u)), capped at 1000. The plan maximises the
    smallest score, so a unit's share may trail the best-lending unit's share by at most the
    ratio of their reciprocity weights: lenders are not starved by heavy borrowers.
    """
    requested: dict[str, int] = {}
    for request in instance.requests:
        requested[request.unit] = requested.get(request.unit, 0) + request.weight
    if not requested:
        return FAIRNESS_SCALE
    rho_max = max([instance.reciprocity.get(u, 1) for u in requested] + [1])
    scores = []
    for unit, wanted in requested.items():
        rho = instance.reciprocity.get(unit, 1)
        scores.append(FAIRNESS_SCALE * rho_max * fulfilled.get(unit, 0) // (rho * wanted))
    return min(FAIRNESS_SCALE, *scores)


def objective_of(instance: Instance, assignments: list[Assignment]) -> Objective:
    """Every objective term of a plan, computed from its assignments alone."""
    by_id = {r.id: r for r in instance.requests}
    fulfilled_by_unit: dict[str, int] = {}
    fulfilled = completion = cost = 0
    makespan = 0
    current = {a.request_id: a for a in assignments}
    for a in assignments:
        request = by_id[a.request_id]
        fulfilled += request.weight
        fulfilled_by_unit[request.unit] = fulfilled_by_unit.get(request.unit, 0) + request.weight
        completion += a.end
        cost += a.cost
        makespan = max(makespan, a.end)
    moves = sum(
        1
        for p in instance.published
        if p.request_id in by_id and not is_kept(p, current.get(p.request_id))
    )
    moves += len(displaced_pins(instance, assignments))
    mandatory = all(r.mandatory for r in instance.requests) and bool(instance.requests)
    return Objective(
        fulfilled_weight=fulfilled,
        requested_weight=sum(r.weight for r in instance.requests),
        fairness=fairness_of(instance, fulfilled_by_unit),
        moves=moves,
        completion=completion,
        cost=cost,
        makespan=makespan if mandatory else None,
    )


def with_bound(plan: Plan, bound: int | None) -> Plan:
    """`plan` with a proven bound on fulfilment and its gap to it."""
    if bound is None:
        return plan.model_copy(update={"bound": None, "gap": None})
    gap = max(0.0, (bound - plan.objective.fulfilled_weight) / max(bound, 1))
    return plan.model_copy(update={"bound": bound, "gap": gap})


def build_plan(
    prep: Prepared,
    assignments: list[Assignment],
    *,
    status: SolveStatus,
    method: str,
    bound: int | None = None,
    seconds: float = 0.0,
    stages: dict[str, float] | None = None,
) -> Plan:
    """Assemble a Plan: objective, explanations for the left-out, and `checked`.

    With `stages`, the time spent explaining and checking is added there."""
    instance = prep.instance
    assignments = sorted(assignments, key=lambda a: prep.request_index[a.request_id])
    objective = objective_of(instance, assignments)
    gap: float | None = None
    if bound is not None:
        if objective.makespan is not None:
            gap = (objective.makespan - bound) / max(objective.makespan, 1)
        else:
            gap = (bound - objective.fulfilled_weight) / max(bound, 1)
        gap = max(gap, 0.0)
    began = time.monotonic()
    unallocated = explain(prep, assignments)
    explained = time.monotonic()
    plan = Plan(
        assignments=assignments,
        displaced=displaced_pins(instance, assignments),
        unallocated=unallocated,
        objective=objective,
        bound=bound,
        gap=gap,
        status=status,
        method=method,
        solve_seconds=round(seconds, 3),
    )
    checked = not check_plan(instance, plan)
    if stages is not None:
        stages["explain"] = stages.get("explain", 0.0) + explained - began
        stages["check"] = stages.get("check", 0.0) + time.monotonic() - explained
    return plan.model_copy(update={"checked": checked})
