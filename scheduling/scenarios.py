"""A published, seeded scenario generator for the allocation benchmark and tests.

Units lend experts (skills at levels 1-5) and devices (types) to each other's projects.
Time is in 15-minute slots by default; resources work Monday to Friday, 09:00-17:00
(everything else is unavailability), some take leave, some devices have maintenance.

Demand is concentrated on purpose: request skills and device types follow a Zipf law while
supply of the popular ones is thin, so the busiest pools are asked for well over what they
can give (`pool_pressure` measures it). Same seed, same scenario, on every machine.

The booking engine's whole rule set is in: devices with set-up and tear-down, calendar
months (the horizon starts mid-month) with an expert's lending cap per month and an
agreement's hours per month per resource for its borrower, and per-borrower prices (a
unit's own resources cost it nothing; a loan costs the lender's rate times the rate card
factor of the agreement).
"""

from __future__ import annotations

import random

from scheduling.eligibility import matches
from scheduling.schemas import (
    Agreement,
    CapWindow,
    Instance,
    Request,
    Requirement,
    Resource,
    TimeSpan,
)

DAY_START_H, DAY_END_H = 9, 17


def generate_scenario(
    seed: int = 0,
    *,
    n_requests: int = 2000,
    n_experts: int = 300,
    n_devices: int = 60,
    n_units: int = 12,
    weeks: int = 4,
    slot_minutes: int = 15,
    n_skills: int = 16,
    n_device_types: int = 8,
    n_projects: int = 40,
    emergency_rate: float = 0.0,
    month_day: int = 12,
) -> Instance:
    """A seeded allocation scenario (defaults: the issue's 2,000 x 300 x 60 x 12 x 4 weeks).

    `month_day`: the day (from the horizon start) on which the next calendar month begins.
    """
    rng = random.Random(seed)
    # The rule set (buffers, agreement caps, rate cards) draws from its own generator, so
    # the pool, calendars and demand are those of the same seed without it.
    rules = random.Random(seed + 1_000_003)
    per_hour = 60 // slot_minutes
    per_day = 24 * per_hour
    horizon = weeks * 7 * per_day
    work_lo, work_hi = DAY_START_H * per_hour, DAY_END_H * per_hour
    workdays = [d for d in range(weeks * 7) if d % 7 < 5]
    units = [f"unit{u:02d}" for u in range(n_units)]
    skills = [f"skill{s:02d}" for s in range(n_skills)]
    types = [f"type{t}" for t in range(n_device_types)]

    boundary = min(month_day, weeks * 7) * per_day
    months = [(lo, hi) for lo, hi in ((0, boundary), (boundary, horizon)) if hi > lo]
    off_hours = []
    cursor = 0
    for d in workdays:
        start = d * per_day + work_lo
        if start > cursor:
            off_hours.append(TimeSpan(start=cursor, end=start))
        cursor = d * per_day + work_hi
    if cursor < horizon:
        off_hours.append(TimeSpan(start=cursor, end=horizon))

    def away(days: int) -> list[TimeSpan]:
        """Off-hours plus `days` consecutive days of leave or maintenance."""
        if days == 0:
            return list(off_hours)
        first = rng.choice(workdays)
        leave = TimeSpan(start=first * per_day, end=min(horizon, (first + days) * per_day))
        return _merge([*off_hours, leave])

    # Popular skills (low index) are held by few experts: supply weights rise with the index.
    supply = [0.25 + s for s in range(n_skills)]
    resources: list[Resource] = []
    for e in range(n_experts):
        held: dict[str, int] = {}
        for _ in range(rng.choice([1, 2, 2, 3])):
            skill = rng.choices(skills, weights=supply)[0]
            held[skill] = max(held.get(skill, 0), rng.choice([1, 2, 3, 3, 4, 5]))
        resources.append(
            Resource(
                id=f"expert{e:03d}",
                kind="expert",
                home_unit=rng.choice(units),
                skills=held,
                unavailable=away(rng.choice([0, 0, 0, 0, 2, 5])),
                # A lending cap of 64 hours per calendar month (40 % of working time).
                caps=month_caps(months, 64 * per_hour) if rng.random() < 0.3 else [],
                cost_rate=rng.randrange(1500, 6000, 100),
            )
        )
    type_supply = [0.5 + t for t in range(n_device_types)]
    for v in range(n_devices):
        buffered = rules.random() < 0.5
        resources.append(
            Resource(
                id=f"device{v:03d}",
                kind="device",
                home_unit=rng.choice(units),
                # Two of each type first, so no type is missing entirely.
                device_type=(
                    types[v % n_device_types]
                    if v < 2 * n_device_types
                    else rng.choices(types, weights=type_supply)[0]
                ),
                unavailable=away(rng.choice([0, 0, 0, 1])),
                # Half the devices are set up (15 minutes) and torn down (15-30 minutes).
                setup=buffered * 15 // slot_minutes,
                teardown=buffered * rules.choice([15, 30]) // slot_minutes,
                cost_rate=rng.randrange(200, 2000, 50),
            )
        )

    agreements, factor, monthly = _agreements(units, rng, rules)
    resources = [
        res.model_copy(update={"caps": res.caps + agreement_caps(res, monthly, months, per_hour)})
        for res in resources
    ]

    projects = [f"project{p:02d}" for p in range(n_projects)]
    members = {p: rng.sample(units, k=min(len(units), rng.randint(2, 4))) for p in projects}
    demand = [1.0 / (s + 1) ** 1.2 for s in range(n_skills)]
    type_demand = [1.0 / (t + 1) ** 1.2 for t in range(n_device_types)]
    requests: list[Request] = []
    matching: dict[tuple[object, ...], list[int]] = {}
    by_project: dict[str, list[str]] = {p: [] for p in projects}
    arrivals = list(range(n_requests))
    rng.shuffle(arrivals)
    for q in range(n_requests):
        project = rng.choice(projects)

        def expert(quantity: int = 1) -> Requirement:
            return Requirement(
                skill=rng.choices(skills, weights=demand)[0],
                min_level=rng.choice([1, 1, 2, 2, 3, 4]),
                quantity=quantity,
            )

        def device() -> Requirement:
            return Requirement(device_type=rng.choices(types, weights=type_demand)[0])

        shape = rng.random()
        if shape < 0.55:
            needs = [expert()]
        elif shape < 0.65:
            needs = [expert(2)]
        elif shape < 0.85:
            needs = [expert(), device()]
        elif shape < 0.95:
            needs = [expert(), expert()]
            if needs[0].skill == needs[1].skill:
                needs = [needs[0].model_copy(update={"quantity": 2})]
        else:
            needs = [device()]
        first = rng.randrange(len(workdays))
        last = min(len(workdays) - 1, first + rng.choice([0, 1, 2, 4, 4, 9]))
        after = []
        if by_project[project] and rng.random() < 0.1:
            after = [rng.choice(by_project[project])]
        rid = f"req{q:04d}"
        unit = rng.choice(members[project])
        duration = rng.choice([2, 4, 4, 8, 8, 12, 16, 24, 32]) * per_hour // 4
        requests.append(
            Request(
                id=rid,
                project=project,
                unit=unit,
                requirements=needs,
                duration=duration,
                costs=prices(resources, needs, unit, duration, factor, matching),
                window_start=workdays[first] * per_day,
                window_end=(workdays[last] + 1) * per_day,
                priority=rng.choices([1, 2, 3, 4, 5], weights=[30, 30, 20, 15, 5])[0],
                emergency=rng.random() < emergency_rate,
                after=after,
                arrival=arrivals[q],
            )
        )
        by_project[project].append(rid)

    # Budgets cover about 85% of what each project asks for at the average rate.
    mean_rate = sum(r.cost_rate for r in resources) / len(resources)
    asked: dict[str, float] = {}
    for request in requests:
        size = sum(q.quantity for q in request.requirements)
        asked[request.project] = asked.get(request.project, 0) + size * request.duration * mean_rate
    budgets = {p: int(0.85 * asked.get(p, 0)) for p in projects}
    owned = {u: sum(r.home_unit == u for r in resources) for u in units}
    median = sorted(owned.values())[len(units) // 2]
    reciprocity = {u: 2 if owned[u] > median else 1 for u in units}
    return Instance(
        name=f"scenario-seed{seed}-{n_requests}x{n_experts}",
        horizon=horizon,
        slot_minutes=slot_minutes,
        resources=resources,
        requests=requests,
        budgets=budgets,
        reciprocity=reciprocity,
        agreements=agreements,
    )


def generate_federations(seed: int, federations: int, **sizes: int) -> Instance:
    """`federations` seeded scenarios side by side (seeds seed, seed + 1, ...), each with
    its own units, resources and projects (ids prefixed `f0.`, `f1.`, ...): no request of
    one can compete with another's, so a run has at least that many independent pools.
    `sizes` (generate_scenario's counts) are per federation."""
    parts = [prefixed(generate_scenario(seed + n, **sizes), f"f{n}.") for n in range(federations)]
    first = parts[0]
    return first.model_copy(
        update={
            "name": f"federations-seed{seed}-{federations}x{len(first.requests)}",
            "resources": [res for part in parts for res in part.resources],
            "requests": [q for part in parts for q in part.requests],
            "pinned": [p for part in parts for p in part.pinned],
            "agreements": [a for part in parts for a in part.agreements],
            "budgets": {k: v for part in parts for k, v in part.budgets.items()},
            "reciprocity": {k: v for part in parts for k, v in part.reciprocity.items()},
        }
    )


def prefixed(inst: Instance, tag: str) -> Instance:
    """`inst` with every id, unit and project prefixed by `tag` (a federation of its own)."""

    def t(name: str) -> str:
        return tag + name

    def t_all(names: list[str] | None) -> list[str] | None:
        return None if names is None else [t(n) for n in names]

    resources = [
        r.model_copy(
            update={
                "id": t(r.id),
                "home_unit": t(r.home_unit),
                "caps": [w.model_copy(update={"borrowers": t_all(w.borrowers)}) for w in r.caps],
            }
        )
        for r in inst.resources
    ]
    requests = [
        q.model_copy(
            update={
                "id": t(q.id),
                "unit": t(q.unit),
                "project": t(q.project),
                "after": t_all(q.after),
                "costs": {t(k): v for k, v in q.costs.items()},
                "requirements": [
                    need.model_copy(
                        update={
                            "resource_id": None if need.resource_id is None else t(need.resource_id)
                        }
                    )
                    for need in q.requirements
                ],
            }
        )
        for q in inst.requests
    ]
    pinned = [
        p.model_copy(
            update={
                "id": t(p.id),
                "resource_id": t(p.resource_id),
                "unit": None if p.unit is None else t(p.unit),
                "request_id": None if p.request_id is None else t(p.request_id),
            }
        )
        for p in inst.pinned
    ]
    agreements = [
        a.model_copy(
            update={
                "lender": t(a.lender),
                "borrower": t(a.borrower),
                "resource_ids": t_all(a.resource_ids),
            }
        )
        for a in inst.agreements
    ]
    return inst.model_copy(
        update={
            "resources": resources,
            "requests": requests,
            "pinned": pinned,
            "published": [
                a.model_copy(
                    update={"request_id": t(a.request_id), "resource_ids": t_all(a.resource_ids)}
                )
                for a in inst.published
            ],
            "agreements": agreements,
            "budgets": {t(k): v for k, v in inst.budgets.items()},
            "reciprocity": {t(k): v for k, v in inst.reciprocity.items()},
        }
    )


Pair = tuple[str, str]
"""(lender, borrower)."""


def _agreements(
    units: list[str], rng: random.Random, rules: random.Random
) -> tuple[list[Agreement], dict[Pair, int], dict[Pair, int]]:
    """Agreements between units (80 % of pairs, a fifth needing approval), each with a rate
    card factor in percent; 30 % cap each resource's hours per month for the borrower."""
    agreements = []
    factor: dict[Pair, int] = {}
    monthly: dict[Pair, int] = {}
    for lender in units:
        for borrower in units:
            if lender != borrower and rng.random() < 0.8:
                agreements.append(
                    Agreement(lender=lender, borrower=borrower, needs_approval=rng.random() < 0.2)
                )
                factor[(lender, borrower)] = rules.randrange(70, 140, 5)
                if rules.random() < 0.3:
                    monthly[(lender, borrower)] = rules.choice([24, 40, 60])
    return agreements, factor, monthly


def agreement_caps(
    res: Resource, monthly: dict[Pair, int], months: list[tuple[int, int]], per_hour: int
) -> list[CapWindow]:
    """The monthly windows the resource's home unit's agreements put on it, per borrower."""
    return [
        window
        for (lender, borrower), hours in sorted(monthly.items())
        if lender == res.home_unit
        for window in month_caps(months, hours * per_hour, [borrower])
    ]


def month_caps(
    months: list[tuple[int, int]], limit: int, borrowers: list[str] | None = None
) -> list[CapWindow]:
    """One capacity window of `limit` time units per calendar month meeting the horizon
    (nothing of the month is used outside the horizon in these scenarios)."""
    return [CapWindow(start=lo, end=hi, limit=limit, borrowers=borrowers) for lo, hi in months]


def prices(
    resources: list[Resource],
    needs: list[Requirement],
    unit: str,
    duration: int,
    factor: dict[tuple[str, str], int],
    matching: dict[tuple[object, ...], list[int]] | None = None,
) -> dict[str, int]:
    """The borrower's price for each resource that could serve it: nothing for its own unit's,
    the lender's rate times the agreement's rate card factor for a loan.

    `matching` caches, per requirement, the indices of the resources that match it (the
    same list of resources on every call), so 10,000 requests do not scan the pool each."""
    out = {}
    serving: set[int] = set()
    cache = {} if matching is None else matching
    for need in needs:
        key = (need.skill, need.min_level, need.device_type, need.resource_id)
        if key not in cache:
            cache[key] = [k for k, res in enumerate(resources) if matches(res, need)]
        serving.update(cache[key])
    for k in sorted(serving):
        res = resources[k]
        if res.home_unit == unit:
            out[res.id] = 0
        elif (res.home_unit, unit) in factor:
            out[res.id] = res.cost_rate * duration * factor[(res.home_unit, unit)] // 100
    return out


def pool_pressure(instance: Instance) -> dict[str, float]:
    """Per requirement kind: requested resource-time / working time of resources that match.

    Working time counts the horizon minus unavailability; > 1 means over-asked.
    """
    capacity: dict[str, int] = {}
    asked: dict[str, int] = {}
    for request in instance.requests:
        for requirement in request.requirements:
            label = requirement.skill or requirement.device_type or requirement.resource_id or ""
            label = f"{label}>={requirement.min_level}" if requirement.skill else label
            asked[label] = asked.get(label, 0) + requirement.quantity * request.duration
            if label not in capacity:
                capacity[label] = sum(
                    instance.horizon - sum(s.end - s.start for s in res.unavailable)
                    for res in instance.resources
                    if matches(res, requirement)
                )
    return {k: asked[k] / capacity[k] if capacity[k] else float("inf") for k in asked}


def _merge(spans: list[TimeSpan]) -> list[TimeSpan]:
    spans = sorted(spans, key=lambda s: s.start)
    out: list[TimeSpan] = []
    for span in spans:
        if out and span.start <= out[-1].end:
            if span.end > out[-1].end:
                out[-1] = TimeSpan(start=out[-1].start, end=span.end)
        else:
            out.append(span)
    return out
