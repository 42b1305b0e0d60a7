"""Who may serve what, and when resources are free: shared by the model, greedy and explanations.

Calendars are Python integers used as bit sets: bit t is set when the resource is busy
during time unit t. "Can start at t for d units" is then a few shifts and ands, which keeps
the greedy fast on 4-week horizons at minute resolution.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from scheduling.catalog import CatalogIndex
from scheduling.schemas import Assignment, Instance, Request, Requirement, Resource


def matches(resource: Resource, requirement: Requirement) -> bool:
    """Whether `resource` has what `requirement` asks for (agreements aside)."""
    if requirement.resource_id is not None:
        return resource.id == requirement.resource_id
    if requirement.device_type is not None:
        return resource.kind == "device" and resource.device_type == requirement.device_type
    level = resource.skills.get(requirement.skill or "")
    return level is not None and level >= requirement.min_level


def span_mask(start: int, end: int) -> int:
    """Bits `start .. end-1` set."""
    if end <= start:
        return 0
    return ((1 << (end - start)) - 1) << start


def run_starts(free: int, length: int) -> int:
    """Bits t such that bits t .. t+length-1 of `free` are all set."""
    if length <= 0:
        return free
    result = free
    have = 1
    # Double the run length covered until it reaches `length` (O(log length) shifts).
    while have * 2 <= length:
        result &= result >> have
        have *= 2
    if have < length:
        result &= result >> (length - have)
    return result


@dataclass(frozen=True)
class Cap:
    """A capacity window of one resource, ready for counting (see `CapWindow`)."""

    start: int
    end: int
    limit: int
    borrowers: frozenset[str] | None
    """Units it counts; None: every unit but the resource's home unit."""

    def overlap(self, start: int, end: int) -> int:
        """Time units of [start, end) inside the window."""
        return max(0, min(end, self.end) - max(start, self.start))

    def forbidden_starts(self, duration: int, room: int) -> int:
        """Starts t (bit set) at which [t, t + duration) would put more than `room` units
        inside the window: those whose overlap, rising then falling with t, exceeds it."""
        if room < 0:
            return ~0
        if room >= min(duration, self.end - self.start):
            return 0
        return span_mask(max(0, self.start - duration + room + 1), self.end - room)


@dataclass
class Prepared:
    """Per-instance lookups: indices, eligibility, fixed calendars, windows."""

    instance: Instance
    resource_index: dict[str, int]
    request_index: dict[str, int]
    fixed_busy: list[int]
    """Per resource: where an assignment's own span may not be: unavailability and pinned
    bookings (displaceable ones aside), as a bit set."""
    unavailable: list[int]
    """Per resource: unavailability alone (what set-up and tear-down may meet)."""
    pinned_busy: list[int]
    """Per resource: pinned bookings that may not be displaced (what a block may not meet)."""
    buffers: list[tuple[int, int]]
    """Per resource: (set-up, tear-down) in time units."""
    displaceable: list[list[int]]
    """Per resource: indices (into `instance.pinned`) of its displaceable pinned bookings."""
    caps: list[list[Cap]]
    """Per resource: its capacity windows, the lending-cap shorthand as one over the
    horizon whose limit is what pinned loans left."""
    pinned_end: dict[str, int]
    """Pinned request id -> latest end of its pinned bookings."""
    matching: list[list[list[int]]]
    """[request][requirement] -> resources that match, agreements aside."""
    eligible: list[list[list[int]]]
    """[request][requirement] -> matching resources the requesting unit may borrow."""
    approval: set[tuple[int, int]] = field(default_factory=set)
    """(request, resource) pairs lent under an agreement that needs approval."""
    windows: list[tuple[int, int]] = field(default_factory=list)
    """Per request: (earliest start, latest end), after the horizon and pinned dependencies."""
    prices: list[dict[int, int]] = field(default_factory=list)
    """Per request: eligible resource -> price of serving the whole request with it."""
    _caps_of: dict[tuple[str, int], list[int]] = field(default_factory=dict, repr=False)
    """(borrowing unit, resource) -> `caps_of`'s answer (it depends on nothing else)."""

    @property
    def horizon_mask(self) -> int:
        """Bits of every time unit of the horizon."""
        return span_mask(0, self.instance.horizon)

    def borrowed(self, request: int, resource: int) -> bool:
        """Whether serving `request` with `resource` lends it out of its home unit."""
        inst = self.instance
        return inst.resources[resource].home_unit != inst.requests[request].unit

    def pin_mask(self, pin: int) -> int:
        """The span of pinned booking `pin` (an index into `instance.pinned`), as a bit set."""
        booking = self.instance.pinned[pin]
        horizon = self.instance.horizon
        return span_mask(min(booking.start, horizon), min(booking.end, horizon))

    def caps_of(self, request: int, resource: int) -> list[int]:
        """Indices of `resource`'s capacity windows that count `request`'s use of it."""
        caps = self.caps[resource]
        if not caps:
            return []
        unit = self.instance.requests[request].unit
        key = (unit, resource)
        found = self._caps_of.get(key)
        if found is None:
            home = self.instance.resources[resource].home_unit
            found = self._caps_of[key] = [
                w
                for w, cap in enumerate(caps)
                if (unit != home if cap.borrowers is None else unit in cap.borrowers)
            ]
        return found

    def buffered(self, resource: int) -> bool:
        """Whether assignments of `resource` block more than their own span."""
        return self.buffers[resource] != (0, 0)

    def block(self, resource: int, start: int, end: int) -> tuple[int, int]:
        """The span an assignment [start, end) of `resource` blocks, clipped to the horizon."""
        setup, teardown = self.buffers[resource]
        return max(0, start - setup), min(self.instance.horizon, end + teardown)

    def starts(self, resource: int, duration: int, busy: int, blocks: int) -> int:
        """Starts t at which `resource` can take [t, t + duration): the span misses `busy`
        and, for a buffered resource, the block misses `blocks` (both bit sets)."""
        horizon = self.instance.horizon
        result = run_starts(~busy & span_mask(0, horizon), duration)
        if self.buffered(resource):
            setup, teardown = self.buffers[resource]
            # Bit j of `free` is time j - setup; outside the horizon counts as free (clipped).
            free = (~blocks & span_mask(0, horizon)) << setup
            free |= span_mask(0, setup) | span_mask(horizon + setup, horizon + setup + teardown)
            result &= run_starts(free, setup + duration + teardown)
        return result & span_mask(0, horizon - duration + 1)

    def price(self, request: int, resource: int) -> int:
        """Price in minor units of serving `request` with `resource` (its own or the rate's)."""
        known = self.prices[request].get(resource)
        if known is not None:
            return known
        return resource_price(self.instance.requests[request], self.instance.resources[resource])

    def candidates(self, request: int) -> list[int]:
        """Every eligible resource of `request`, over all its requirements, sorted."""
        return sorted({res for group in self.eligible[request] for res in group})


def may_borrow(instance: Instance, resource: Resource, unit: str) -> tuple[bool, bool]:
    """(allowed, needs approval) for `unit` using `resource`; the home unit needs no agreement."""
    if resource.home_unit == unit:
        return True, False
    allowed = False
    approval = True
    for agreement in instance.agreements:
        if agreement.borrower == unit and agreement.covers(resource):
            allowed = True
            approval = approval and agreement.needs_approval
    return allowed, allowed and approval


def prepare(instance: Instance) -> Prepared:
    """Compute the lookups every part of the optimizer shares.

    Eligibility comes from `CatalogIndex` (resources by skill, type and id, agreements by
    pair, answers memoised), so it costs what the answers hold, not requests x resources.
    """
    resource_index = {r.id: i for i, r in enumerate(instance.resources)}
    request_index = {r.id: i for i, r in enumerate(instance.requests)}
    horizon = instance.horizon
    unavailable = []
    for resource in instance.resources:
        mask = 0
        for span in resource.unavailable:
            mask |= span_mask(min(span.start, horizon), min(span.end, horizon))
        unavailable.append(mask)
    pins = _pins(instance, resource_index)
    index = CatalogIndex(instance)
    matching: list[list[list[int]]] = []
    eligible: list[list[list[int]]] = []
    approval: set[tuple[int, int]] = set()
    windows: list[tuple[int, int]] = []
    prices: list[dict[int, int]] = []
    for r, request in enumerate(instance.requests):
        answers = [index.eligible(q, request.unit) for q in request.requirements]
        matching.append([a.matching for a in answers])
        eligible.append([a.eligible for a in answers])
        approval.update((r, k) for a in answers for k in a.approval)
        earliest = request.window_start
        for dep in request.after:
            if dep in pins.end and dep not in request_index:
                earliest = max(earliest, pins.end[dep])
        windows.append((earliest, min(instance.window_end(request), horizon)))
        prices.append(
            {k: resource_price(request, instance.resources[k]) for a in answers for k in a.eligible}
        )
    return Prepared(
        instance=instance,
        resource_index=resource_index,
        request_index=request_index,
        fixed_busy=[u | p for u, p in zip(unavailable, pins.busy, strict=True)],
        unavailable=unavailable,
        pinned_busy=pins.busy,
        buffers=[(res.setup, res.teardown) for res in instance.resources],
        displaceable=pins.displaceable,
        caps=cap_windows(instance, pins.lent),
        pinned_end=pins.end,
        matching=matching,
        eligible=eligible,
        approval=approval,
        windows=windows,
        prices=prices,
    )


@dataclass
class _Pins:
    """Pinned bookings per resource, as `prepare` needs them."""

    busy: list[int]
    """Spans of the bookings that may not be displaced (bit set)."""
    lent: list[int]
    """Time units lent to other units (the lending-cap shorthand counts them)."""
    end: dict[str, int]
    """Pinned request id -> latest end of its bookings."""
    displaceable: list[list[int]]
    """Indices of the displaceable bookings."""


def _pins(instance: Instance, resource_index: dict[str, int]) -> _Pins:
    horizon = instance.horizon
    pins = _Pins(
        busy=[0] * len(instance.resources),
        lent=[0] * len(instance.resources),
        end={},
        displaceable=[[] for _ in instance.resources],
    )
    for p, pin in enumerate(instance.pinned):
        k = resource_index[pin.resource_id]
        if pin.displaceable:
            pins.displaceable[k].append(p)
        else:
            pins.busy[k] |= span_mask(min(pin.start, horizon), min(pin.end, horizon))
        if pin.unit is not None and pin.unit != instance.resources[k].home_unit:
            pins.lent[k] += pin.end - pin.start
        if pin.request_id is not None:
            pins.end[pin.request_id] = max(pins.end.get(pin.request_id, 0), pin.end)
    return pins


def cap_windows(instance: Instance, pinned_lent: list[int]) -> list[list[Cap]]:
    """Per resource: its capacity windows; `lending_cap` becomes one over the horizon for
    every unit but the home unit, less what pinned bookings already lent (`pinned_lent`)."""
    out = []
    for k, res in enumerate(instance.resources):
        caps = [
            Cap(
                w.start,
                w.end,
                w.limit,
                None if w.borrowers is None else frozenset(w.borrowers),
            )
            for w in res.caps
        ]
        if res.lending_cap is not None:
            caps.append(Cap(0, instance.horizon, max(0, res.lending_cap - pinned_lent[k]), None))
        out.append(caps)
    return out


def resource_price(request: Request, resource: Resource) -> int:
    """Price in minor units of serving `request` with `resource`: the request's own price
    for it if it names one (the ledger's price for its unit), else rate x duration."""
    own = request.costs.get(resource.id)
    return own if own is not None else resource.cost_rate * request.duration


def assignment_cost(instance: Instance, request: Request, resource_ids: list[str]) -> int:
    """Price in minor units of serving `request` with `resource_ids`."""
    by_id = {r.id: r for r in instance.resources}
    return sum(resource_price(request, by_id[k]) for k in resource_ids)


def budget_of(instance: Instance, request: Request) -> int | None:
    """The available budget of the request's project, or None if unlimited."""
    return instance.budgets.get(request.project)


def displaced_pins(instance: Instance, assignments: list[Assignment]) -> list[str]:
    """Ids of the displaceable pinned bookings some assignment's block overlaps, sorted."""
    pins: dict[str, list[tuple[int, int, str]]] = {}
    for pin in instance.pinned:
        if pin.displaceable:
            pins.setdefault(pin.resource_id, []).append((pin.start, pin.end, pin.id))
    if not pins:
        return []
    buffers = {r.id: (r.setup, r.teardown) for r in instance.resources if r.id in pins}
    out: set[str] = set()
    for a in assignments:
        for resource_id in a.resource_ids:
            if resource_id not in pins:
                continue
            setup, teardown = buffers[resource_id]
            lo, hi = max(0, a.start - setup), min(instance.horizon, a.end + teardown)
            out.update(ident for start, end, ident in pins[resource_id] if start < hi and lo < end)
    return sorted(out)


def is_kept(published: Assignment, current: Assignment | None) -> bool:
    """Whether `current` keeps a published assignment as it was (same start and resources)."""
    return (
        current is not None
        and current.start == published.start
        and current.end == published.end
        and sorted(current.resource_ids) == sorted(published.resource_ids)
    )
