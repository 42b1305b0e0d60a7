"""Input checks on an `Instance`, independent of the solver.

Only structural mistakes are errors here (duplicate ids, unknown references, cycles,
empty spans). Things a requester can legitimately ask for but not get — a window shorter
than the duration, a skill nobody has — are not errors: the plan explains them.
"""

from __future__ import annotations

from scheduling.errors import InvalidInstance
from scheduling.schemas import Instance


def instance_problems(instance: Instance) -> list[tuple[str, str]]:
    """Every input rule the instance breaks, as `(location, message)` pairs."""
    problems: list[tuple[str, str]] = []

    def duplicates(kind: str, ids: list[str]) -> None:
        seen: set[str] = set()
        for i, ident in enumerate(ids):
            if ident in seen:
                problems.append((f"{kind}[{i}]", f"duplicate id {ident!r}"))
            seen.add(ident)

    duplicates("resources", [r.id for r in instance.resources])
    duplicates("requests", [r.id for r in instance.requests])
    duplicates("pinned", [p.id for p in instance.pinned])

    resource_ids = {r.id for r in instance.resources}
    for i, resource in enumerate(instance.resources):
        for j, span in enumerate(resource.unavailable):
            if span.end <= span.start:
                problems.append((f"resources[{i}].unavailable[{j}]", "end must be after start"))
        for j, window in enumerate(resource.caps):
            if window.end < window.start:
                problems.append((f"resources[{i}].caps[{j}]", "end must not be before start"))
        for skill, level in resource.skills.items():
            if level < 0:
                problems.append((f"resources[{i}].skills[{skill}]", "level must be >= 0"))

    pinned_requests = {p.request_id for p in instance.pinned if p.request_id is not None}
    request_ids = {r.id for r in instance.requests}
    for i, pin in enumerate(instance.pinned):
        if pin.resource_id not in resource_ids:
            problems.append((f"pinned[{i}].resource_id", f"unknown resource {pin.resource_id!r}"))
        if pin.end <= pin.start:
            problems.append((f"pinned[{i}]", "end must be after start"))
        if pin.request_id is not None and pin.request_id in request_ids:
            problems.append(
                (f"pinned[{i}].request_id", f"{pin.request_id!r} is also an open request")
            )

    for i, request in enumerate(instance.requests):
        if request.window_end is not None and request.window_end < request.window_start:
            problems.append((f"requests[{i}].window_end", "window ends before it starts"))
        for resource_id, price in request.costs.items():
            if price < 0:
                problems.append((f"requests[{i}].costs[{resource_id}]", "price must be >= 0"))
        for dep in request.after:
            if dep == request.id:
                problems.append((f"requests[{i}].after", "a request cannot follow itself"))
            elif dep not in request_ids and dep not in pinned_requests:
                problems.append((f"requests[{i}].after", f"unknown request {dep!r}"))

    for unit, weight in instance.reciprocity.items():
        if weight < 1:
            problems.append((f"reciprocity[{unit}]", "weight must be >= 1"))

    cycle = _dependency_cycle(instance)
    if cycle:
        problems.append(("requests", "dependency cycle: " + " -> ".join(cycle)))
    return problems


def validate_instance(instance: Instance) -> None:
    """Raise `InvalidInstance` listing every problem, or return quietly."""
    problems = instance_problems(instance)
    if problems:
        raise InvalidInstance(problems)


def _dependency_cycle(instance: Instance) -> list[str]:
    """One dependency cycle among open requests, or [] if there is none."""
    after = {r.id: [d for d in r.after if d != r.id] for r in instance.requests}
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for root in after:
        if root in state:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = [root]
        state[root] = 1
        while stack:
            node, k = stack[-1]
            deps = after.get(node, [])
            if k < len(deps):
                stack[-1] = (node, k + 1)
                nxt = deps[k]
                if nxt not in after:
                    continue
                if state.get(nxt) == 1:
                    return [*path[path.index(nxt) :], nxt]
                if nxt not in state:
                    state[nxt] = 1
                    stack.append((nxt, 0))
                    path.append(nxt)
            else:
                state[node] = 2
                stack.pop()
                path.pop()
    return []
