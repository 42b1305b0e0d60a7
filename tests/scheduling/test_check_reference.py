"""check_plan against a brute-force reference that looks at every time unit alone.

Random plans over random small instances (whole rule set): the resources always cover the
requirements under an agreement at the right price, so what varies is time (windows,
unavailability, buffers, pins, capacity windows, dependencies), budgets and the
displaced list. check_plan and the reference must agree on whether the plan is valid.
"""

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduling import (
    Assignment,
    Instance,
    Objective,
    Plan,
    Reason,
    ReasonCode,
    Unallocated,
    check_plan,
)
from scheduling.eligibility import may_borrow, prepare, resource_price

from .test_properties import instances


def reference_violations(inst: Instance, plan: Plan) -> set[tuple[str, str]]:
    """Every broken rule as (rule, resource, request or project), unit of time by unit."""
    out = set()
    requests = {r.id: r for r in inst.requests}
    assigned = {a.request_id: a for a in plan.assignments}
    displaced = set()
    for res in inst.resources:
        mine = [a for a in plan.assignments if res.id in a.resource_ids]
        for t in range(inst.horizon):
            cores = [a for a in mine if a.start <= t < a.end]
            blocks = [a for a in mine if a.start - res.setup <= t < a.end + res.teardown]
            if len(blocks) > 1:
                out.add(("blocks", res.id))
            if cores and any(s.start <= t < s.end for s in res.unavailable):
                out.add(("unavailable", res.id))
            for pin in inst.pinned:
                if pin.resource_id == res.id and pin.start <= t < pin.end and blocks:
                    if pin.displaceable:
                        displaced.add(pin.id)
                    else:
                        out.add(("pinned", res.id))
        for w in res.caps:
            counted = [
                a
                for a in mine
                if (
                    requests[a.request_id].unit != res.home_unit
                    if w.borrowers is None
                    else requests[a.request_id].unit in w.borrowers
                )
            ]
            used = sum(a.start <= t < a.end for t in range(w.start, w.end) for a in counted)
            if used > w.limit:
                out.add(("window cap", res.id))
        loans = [a for a in mine if requests[a.request_id].unit != res.home_unit]
        pinned_loans = sum(
            p.end - p.start
            for p in inst.pinned
            if p.resource_id == res.id and p.unit not in (None, res.home_unit)
        )
        lent = sum(a.end - a.start for a in loans)
        if res.lending_cap is not None and lent and lent + pinned_loans > res.lending_cap:
            out.add(("lending cap", res.id))
    if set(plan.displaced) != displaced:
        out.add(("displaced", ""))
    spent: dict[str, int] = {}
    for a in plan.assignments:
        request = requests[a.request_id]
        end = min(inst.window_end(request), inst.horizon)
        if a.start < request.window_start or a.end > end:
            out.add(("window", a.request_id))
        for dep in request.after:
            if dep not in assigned or assigned[dep].end > a.start:
                out.add(("dependency", a.request_id))
        spent[request.project] = spent.get(request.project, 0) + a.cost
    for project, amount in spent.items():
        if amount > inst.budgets.get(project, amount):
            out.add(("budget", project))
    return out


@st.composite
def plans(draw: st.DrawFn, inst: Instance) -> Plan:
    """A plan whose resources cover each request (agreements, price, approval right) at
    random times; the displaced list is mostly right, sometimes not."""
    prep = prepare(inst)
    assignments = []
    for r, request in enumerate(inst.requests):
        chosen: list[int] = []
        for group, requirement in zip(prep.eligible[r], request.requirements, strict=True):
            free = [k for k in group if k not in chosen]
            chosen += free[: requirement.quantity]
            if len(free) < requirement.quantity:
                break
        else:
            if draw(st.booleans()):
                continue
            start = draw(st.integers(0, inst.horizon - request.duration))
            resources = [inst.resources[k] for k in chosen]
            assignments.append(
                Assignment(
                    request_id=request.id,
                    resource_ids=[res.id for res in resources],
                    start=start,
                    end=start + request.duration,
                    cost=sum(resource_price(request, res) for res in resources),
                    needs_approval=any(may_borrow(inst, res, request.unit)[1] for res in resources),
                )
            )
    plan = Plan(assignments=assignments, unallocated=[], objective=Objective(), status="feasible")
    if draw(st.integers(0, 5)):
        displaced = sorted(reference_displaced(inst, plan))
    else:
        displaced = sorted(draw(st.sets(st.sampled_from([p.id for p in inst.pinned] or ["x"]))))
    listed = {a.request_id for a in assignments}
    left = [
        Unallocated(
            request_id=r.id, reasons=[Reason(code=ReasonCode.NOT_SELECTED, message="random")]
        )
        for r in inst.requests
        if r.id not in listed
    ]
    return plan.model_copy(update={"displaced": displaced, "unallocated": left})


def reference_displaced(inst: Instance, plan: Plan) -> set[str]:
    """Displaceable pins some block meets, unit by unit."""
    out = set()
    by_id = {r.id: r for r in inst.resources}
    for a in plan.assignments:
        for k in a.resource_ids:
            res = by_id[k]
            for t in range(max(0, a.start - res.setup), min(inst.horizon, a.end + res.teardown)):
                for pin in inst.pinned:
                    if pin.displaceable and pin.resource_id == k and pin.start <= t < pin.end:
                        out.add(pin.id)
    return out


RULES = [
    (r"^(\S+): \S+ \[\d+, \d+\) overlaps pinned", "pinned"),
    (r"^(\S+): \S+ \[\d+, \d+\) overlaps", "blocks"),
    (r"^assignment of \S+: (\S+) unavailable", "unavailable"),
    (r"^(\S+) serves \d+ in", "window cap"),
    (r"^(\S+) lent \d+ over its cap", "lending cap"),
    (r"^displaced should be()", "displaced"),
    (r"^assignment of (\S+): \[\d+, \d+\) outside window", "window"),
    (r"^(\S+) starts at \d+ before", "dependency"),
    (r"^(\S+) allocated but its dependency", "dependency"),
    (r"^project (\S+) spends", "budget"),
]


def rule_of(violation: str) -> tuple[str, str]:
    """check_plan's message as (rule, subject), to compare with the reference."""
    for pattern, rule in RULES:
        found = re.match(pattern, violation)
        if found:
            return rule, found.group(1)
    raise AssertionError(f"unexpected violation: {violation}")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_check_plan_agrees_with_a_unit_by_unit_reference(data: st.DataObject) -> None:
    inst = data.draw(instances())
    plan = data.draw(plans(inst))
    expected = reference_violations(inst, plan)
    found = check_plan(inst, plan)
    assert {rule_of(v) for v in found} == expected, (found, expected)
