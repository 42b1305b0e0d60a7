"""`check_plan`: every hard rule, verified from the instance and the plan alone.

It shares no code with the model or the greedy on purpose: a bug there must not hide here.
It stays plain, but never compares everything with everything: assignments, pinned
bookings and agreements are grouped by resource (or lender and borrower) first, and blocks
of one resource are checked by one sweep in start order.
"""

from __future__ import annotations

from bisect import bisect_left

from scheduling.errors import InvalidPlan
from scheduling.schemas import (
    Agreement,
    Instance,
    PinnedBooking,
    Plan,
    Request,
    Requirement,
    Resource,
)

Span = tuple[int, int]
Agreements = dict[tuple[str, str], list[Agreement]]
"""(lender, borrower) -> the agreements between them."""


def check_plan(instance: Instance, plan: Plan) -> list[str]:
    """Every hard rule the plan breaks, in plain words ([] = the plan is valid)."""
    out: list[str] = []
    requests = {r.id: r for r in instance.requests}
    assigned = _check_assignments(instance, plan, out)
    _check_blocks(instance, plan, out)
    _check_dependencies(instance, assigned, out)
    _check_budgets(instance, plan, out)
    _check_caps(instance, plan, out)

    listed = [u.request_id for u in plan.unallocated]
    if len(set(listed)) != len(listed):
        out.append("a request is listed twice as unallocated")
    for rid in listed:
        if rid in assigned:
            out.append(f"{rid} is both allocated and unallocated")
        if rid not in requests:
            out.append(f"unallocated {rid} is not a request")
    missing = set(requests) - set(assigned) - set(listed)
    if missing:
        out.append(f"requests neither allocated nor explained: {sorted(missing)[:5]}")
    return out


def _check_assignments(instance: Instance, plan: Plan, out: list[str]) -> dict[str, Span]:
    """Each assignment alone: request, duration, window, resources, unavailability, approval
    and price. Returns request id -> (start, end) of the first assignment of each request."""
    resources = {r.id: r for r in instance.resources}
    requests = {r.id: r for r in instance.requests}
    agreements: Agreements = {}
    for agreement in instance.agreements:
        agreements.setdefault((agreement.lender, agreement.borrower), []).append(agreement)
    assigned: dict[str, Span] = {}
    for a in plan.assignments:
        where = f"assignment of {a.request_id}"
        request = requests.get(a.request_id)
        if request is None:
            out.append(f"{where}: unknown request")
            continue
        if a.request_id in assigned:
            out.append(f"{where}: request assigned twice")
            continue
        assigned[a.request_id] = (a.start, a.end)
        window_end = min(instance.window_end(request), instance.horizon)
        if a.end - a.start != request.duration:
            out.append(f"{where}: lasts {a.end - a.start}, duration is {request.duration}")
        if a.start < request.window_start or a.end > window_end:
            out.append(f"{where}: [{a.start}, {a.end}) outside window")
        if len(set(a.resource_ids)) != len(a.resource_ids):
            out.append(f"{where}: a resource is listed twice")
        chosen = [resources[k] for k in a.resource_ids if k in resources]
        if len(chosen) != len(a.resource_ids):
            out.append(f"{where}: unknown resource")
            continue
        if not _covers(request, chosen):
            out.append(f"{where}: resources do not cover the requirements")
        approval = False
        for res in chosen:
            allowed, needs = _borrowing(agreements, res, request.unit)
            if not allowed:
                out.append(f"{where}: {request.unit} may not borrow {res.id}")
            approval = approval or needs
            for span in res.unavailable:
                # Only the assignment's own span: set-up and tear-down may meet these.
                if span.start < a.end and a.start < span.end:
                    out.append(f"{where}: {res.id} unavailable in [{span.start}, {span.end})")
        if approval != a.needs_approval:
            out.append(f"{where}: needs_approval should be {approval}")
        cost = sum(_price(request, res) for res in chosen)
        if cost != a.cost:
            out.append(f"{where}: cost {a.cost}, should be {cost}")
    return assigned


def _check_blocks(instance: Instance, plan: Plan, out: list[str]) -> None:
    """Blocks (span plus set-up and tear-down) of one resource never overlap each other or
    a pinned booking, unless that booking is displaceable: then it must be listed as
    displaced, and every listed one must be overlapped."""
    resources = {r.id: r for r in instance.resources}
    blocks: dict[str, list[tuple[int, int, str]]] = {}
    for a in plan.assignments:
        for k in a.resource_ids:
            if k in resources:
                lo, hi = block_of(instance, resources[k], a.start, a.end)
                blocks.setdefault(k, []).append((lo, hi, a.request_id))
    for resource_id, spans in blocks.items():
        spans.sort()
        # In start order, a block overlaps an earlier one iff it starts before the latest
        # end so far: then it overlaps the block that ends there.
        latest = spans[0]
        for span in spans[1:]:
            if span[0] < latest[1]:
                s1, e1, who1 = latest
                s2, e2, who2 = span
                out.append(f"{resource_id}: {who1} [{s1}, {e1}) overlaps {who2} [{s2}, {e2})")
            if span[1] > latest[1]:
                latest = span
    displaced = set()
    longest = {k: max(e - s for s, e, _ in spans) for k, spans in blocks.items()}
    starts = {k: [s for s, _, _ in spans] for k, spans in blocks.items()}
    for pin in instance.pinned:
        spans = blocks.get(pin.resource_id, [])
        # Only blocks starting in [pin.start - longest block, pin.end) can meet the pin.
        first = bisect_left(
            starts.get(pin.resource_id, []), pin.start - longest.get(pin.resource_id, 0)
        )
        for s, e, who in spans[first:]:
            if s >= pin.end:
                break  # sorted by start: the rest start later still
            if pin.start < e:
                if pin.displaceable:
                    displaced.add(pin.id)
                else:
                    out.append(f"{pin.resource_id}: {who} [{s}, {e}) overlaps pinned {pin.id}")
    if len(set(plan.displaced)) != len(plan.displaced):
        out.append("a pinned booking is listed twice as displaced")
    if set(plan.displaced) != displaced:
        out.append(
            f"displaced should be {sorted(displaced)}, the plan lists {sorted(plan.displaced)}"
        )


def _check_dependencies(instance: Instance, assigned: dict[str, Span], out: list[str]) -> None:
    """Mandatory requests are in; a request starts after its dependencies end."""
    requests = {r.id for r in instance.requests}
    pinned_end: dict[str, int] = {}
    for pin in instance.pinned:
        if pin.request_id is not None:
            pinned_end[pin.request_id] = max(pinned_end.get(pin.request_id, 0), pin.end)
    for request in instance.requests:
        if request.id not in assigned:
            if request.mandatory:
                out.append(f"mandatory request {request.id} is not allocated")
            continue
        start = assigned[request.id][0]
        for dep in request.after:
            if dep in requests:
                if dep not in assigned:
                    out.append(f"{request.id} allocated but its dependency {dep} is not")
                elif assigned[dep][1] > start:
                    out.append(f"{request.id} starts at {start} before {dep} ends")
            elif dep in pinned_end and pinned_end[dep] > start:
                out.append(f"{request.id} starts at {start} before pinned {dep} ends")


def _check_budgets(instance: Instance, plan: Plan, out: list[str]) -> None:
    """A project's assignments cost no more than its budget (at the requests' prices)."""
    resources = {r.id: r for r in instance.resources}
    requests = {r.id: r for r in instance.requests}
    spent: dict[str, int] = {}
    for a in plan.assignments:
        request = requests.get(a.request_id)
        if request is None:
            continue
        cost = sum(_price(request, resources[k]) for k in a.resource_ids if k in resources)
        spent[request.project] = spent.get(request.project, 0) + cost
    for project, amount in spent.items():
        budget = instance.budgets.get(project)
        if budget is not None and amount > budget:
            out.append(f"project {project} spends {amount} over its budget {budget}")


def _check_caps(instance: Instance, plan: Plan, out: list[str]) -> None:
    """Capacity windows: the parts of the plan's assignments inside a window serving its
    borrowers stay within its limit; the lending-cap shorthand counts pinned loans too."""
    requests = {r.id: r for r in instance.requests}
    by_resource: dict[str, list[tuple[int, int, str]]] = {}
    for a in plan.assignments:
        if a.request_id in requests:
            for k in a.resource_ids:
                by_resource.setdefault(k, []).append((a.start, a.end, requests[a.request_id].unit))
    pinned: dict[str, list[PinnedBooking]] = {}
    for p in instance.pinned:
        pinned.setdefault(p.resource_id, []).append(p)
    for res in instance.resources:
        served = by_resource.get(res.id, [])
        for w in res.caps:
            used = sum(
                max(0, min(e, w.end) - max(s, w.start))
                for s, e, unit in served
                if (unit != res.home_unit if w.borrowers is None else unit in w.borrowers)
            )
            if used > w.limit:
                out.append(f"{res.id} serves {used} in [{w.start}, {w.end}) over its cap {w.limit}")
        if res.lending_cap is None:
            continue
        lent_by_plan = sum(e - s for s, e, unit in served if unit != res.home_unit)
        lent = lent_by_plan + sum(
            p.end - p.start
            for p in pinned.get(res.id, [])
            if p.unit is not None and p.unit != res.home_unit
        )
        # Pinned loans alone may exceed the cap (it was lowered); the plan may not add any.
        if lent_by_plan and lent > res.lending_cap:
            out.append(f"{res.id} lent {lent} over its cap {res.lending_cap}")


def block_of(instance: Instance, res: Resource, start: int, end: int) -> Span:
    """What an assignment [start, end) of `res` blocks: set-up before, tear-down after,
    clipped to the horizon."""
    return max(0, start - res.setup), min(instance.horizon, end + res.teardown)


def _price(request: Request, res: Resource) -> int:
    """The request's own price for the resource, else rate x duration."""
    return request.costs.get(res.id, res.cost_rate * request.duration)


def assert_plan_valid(instance: Instance, plan: Plan) -> None:
    """Raise `InvalidPlan` if `check_plan` finds anything."""
    violations = check_plan(instance, plan)
    if violations:
        raise InvalidPlan(violations)


def _fits(res: Resource, requirement: Requirement) -> bool:
    if requirement.resource_id is not None:
        return res.id == requirement.resource_id
    if requirement.device_type is not None:
        return res.kind == "device" and res.device_type == requirement.device_type
    assert requirement.skill is not None
    return res.skills.get(requirement.skill, -1) >= requirement.min_level


def _borrowing(agreements: Agreements, res: Resource, unit: str) -> tuple[bool, bool]:
    """(allowed, needs approval): allowed at home or under some agreement; approval only
    when every agreement that allows it asks for approval."""
    if res.home_unit == unit:
        return True, False
    covering = [
        a
        for a in agreements.get((res.home_unit, unit), [])
        if (a.kinds is None or res.kind in a.kinds)
        and (a.resource_ids is None or res.id in a.resource_ids)
    ]
    return bool(covering), bool(covering) and all(a.needs_approval for a in covering)


def _covers(request: Request, chosen: list[Resource]) -> bool:
    """Whether each resource can take one role so every requirement gets its quantity."""
    roles = [req for req in request.requirements for _ in range(req.quantity)]
    if len(roles) != len(chosen):
        return False
    match: dict[int, int] = {}  # role -> resource position

    def try_place(pos: int, seen: set[int]) -> bool:
        for role, requirement in enumerate(roles):
            if role in seen or not _fits(chosen[pos], requirement):
                continue
            seen.add(role)
            if role not in match or try_place(match[role], seen):
                match[role] = pos
                return True
        return False

    return all(try_place(pos, set()) for pos in range(len(chosen)))
