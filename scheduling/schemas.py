"""The optimizer's input (`Instance`) and output (`Plan`), as pydantic models.

Time is an integer number of time units from the horizon start; one unit is
`Instance.slot_minutes` minutes (1 by default). Intervals are half-open `[start, end)`.
Money is an integer number of minor units (cents), never a float.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ResourceKind = Literal["expert", "device"]

EMERGENCY_FACTOR = 1000
"""An emergency request weighs this many times its priority in the fulfilment objective."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TimeSpan(_Frozen):
    """A half-open interval `[start, end)` in time units from the horizon start."""

    start: int = Field(ge=0)
    end: int = Field(ge=0)


class CapWindow(_Frozen):
    """A capacity window: at most `limit` time units of the resource's work inside
    `[start, end)` may serve requests of `borrowers` (None: every unit but the home unit).

    The booking engine's calendar-month caps (an expert's lending cap in the expert's zone,
    an agreement's hours per month for one borrower) each become one window per month
    that meets the horizon. `limit` is what is *still* free for the instance's requests:
    the caller has already deducted every booking that stays (pinned ones and those
    outside the horizon), so the library never counts pinned bookings against it. Only
    the part of an assignment inside the window counts (a request crossing a month
    boundary counts in both months, each for its own part).
    """

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    limit: int = Field(ge=0)
    borrowers: list[str] | None = None


class Resource(_Frozen):
    """An expert or a device of the shared pool."""

    id: str
    kind: ResourceKind = "expert"
    home_unit: str
    skills: dict[str, int] = Field(default_factory=dict)
    """Skill name -> level (experts). Levels are integers; higher is better."""
    device_type: str | None = None
    unavailable: list[TimeSpan] = Field(default_factory=list)
    """Leave, off-hours, maintenance: an assignment's own span `[start, end)` may not meet
    these (its set-up and tear-down may: a device is prepared outside staffed hours)."""
    setup: int = Field(default=0, ge=0)
    """Time units the resource is blocked before each assignment (a device's set-up)."""
    teardown: int = Field(default=0, ge=0)
    """Time units the resource is blocked after each assignment (a device's tear-down).
    An assignment blocks `[start - setup, end + teardown)`; blocks of two assignments of
    one resource, and a block and a pinned booking, never overlap."""
    caps: list[CapWindow] = Field(default_factory=list)
    """Capacity windows (calendar-month lending caps and agreement caps); see CapWindow."""
    lending_cap: int | None = Field(default=None, ge=0)
    """Shorthand for one window over the whole horizon for every unit but the home unit,
    counting pinned bookings lent out (benchmark scenarios); the app sends `caps`."""
    cost_rate: int = Field(default=0, ge=0)
    """Price in minor units per time unit, charged to the project's budget, unless the
    request names its own price for this resource (`Request.costs`)."""


class Requirement(_Frozen):
    """One thing a request needs: a skill at a level, a device type, or a named resource."""

    skill: str | None = None
    min_level: int = Field(default=1, ge=0)
    device_type: str | None = None
    resource_id: str | None = None
    quantity: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _exactly_one_target(self) -> Requirement:
        targets = [self.skill, self.device_type, self.resource_id]
        if sum(t is not None for t in targets) != 1:
            raise ValueError("a requirement names exactly one of skill, device_type, resource_id")
        return self

    def describe(self) -> str:
        """A short human-readable label, e.g. `2 x skill gis>=3`."""
        if self.skill is not None:
            what = f"skill {self.skill}>={self.min_level}"
        elif self.device_type is not None:
            what = f"device {self.device_type}"
        else:
            what = f"resource {self.resource_id}"
        return f"{self.quantity} x {what}"


class Request(_Frozen):
    """A unit asks, for a project, for requirements served together for `duration` units."""

    id: str
    project: str
    unit: str
    requirements: list[Requirement]
    """Served together, over the same span. Empty only in benchmark files (time alone)."""
    duration: int = Field(ge=1)
    window_start: int = Field(default=0, ge=0)
    window_end: int | None = Field(default=None, ge=0)
    """Latest end (exclusive bound of the window); None means the horizon end."""
    priority: int = Field(default=1, ge=1)
    emergency: bool = False
    after: list[str] = Field(default_factory=list)
    """Ids of requests (of the same project) that must end before this one starts."""
    arrival: int = 0
    """Arrival order, used by the first-come-first-served baseline (ties: list order)."""
    mandatory: bool = False
    """Must be allocated (benchmark makespan mode); the plan is infeasible otherwise."""
    costs: dict[str, int] = Field(default_factory=dict)
    """Resource id -> price in minor units of serving this whole request with it (the
    ledger's price for this borrower: 0 for the unit's own resources, the agreement's rate
    card for loans). A resource not listed costs `cost_rate x duration`."""

    @property
    def weight(self) -> int:
        """Priority weight in the fulfilment objective."""
        return self.priority * (EMERGENCY_FACTOR if self.emergency else 1)


class PinnedBooking(_Frozen):
    """A live booking the run may not move: the resource is blocked over `[start, end)`
    (the booking's block, set-up and tear-down included)."""

    id: str
    resource_id: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    displaceable: bool = False
    """An emergency run may take its place (the plan lists it in `Plan.displaced`); the
    optimizer displaces as few bookings as it can (counted with the moves, term 3)."""
    unit: str | None = None
    """The borrowing unit; it counts against the resource's lending cap if not its home."""
    request_id: str | None = None
    """Requests may depend on it through `Request.after`."""


class Agreement(_Frozen):
    """Lender unit lets borrower unit use its resources (all, some kinds, or listed ones)."""

    lender: str
    borrower: str
    kinds: list[ResourceKind] | None = None
    resource_ids: list[str] | None = None
    needs_approval: bool = False

    def covers(self, resource: Resource) -> bool:
        """Whether this agreement lets the borrower use `resource`."""
        if resource.home_unit != self.lender:
            return False
        if self.kinds is not None and resource.kind not in self.kinds:
            return False
        return self.resource_ids is None or resource.id in self.resource_ids


class Assignment(_Frozen):
    """A request served by `resource_ids` over `[start, end)`."""

    request_id: str
    resource_ids: list[str]
    start: int
    end: int
    needs_approval: bool = False
    """Some resource is lent under an agreement that needs the lender's approval."""
    cost: int = 0
    """Price in minor units charged to the request's project."""


class Instance(_Frozen):
    """Everything one allocation run needs: a snapshot of pool, calendars and demand."""

    horizon: int = Field(ge=1)
    """Number of time units in the run; every booking ends at or before it."""
    slot_minutes: int = Field(default=1, ge=1)
    resources: list[Resource]
    requests: list[Request]
    pinned: list[PinnedBooking] = Field(default_factory=list)
    published: list[Assignment] = Field(default_factory=list)
    """The previously published plan; the optimizer moves as few of these as it can."""
    budgets: dict[str, int] = Field(default_factory=dict)
    """Project -> available budget in minor units; a project not listed has no limit."""
    reciprocity: dict[str, int] = Field(default_factory=dict)
    """Unit -> reciprocity weight (>= 1; higher = lends more than it borrows); default 1."""
    agreements: list[Agreement] = Field(default_factory=list)
    name: str = ""

    def window_end(self, request: Request) -> int:
        """The effective window end of `request` (its own, or the horizon)."""
        return self.horizon if request.window_end is None else request.window_end


class ReasonCode(StrEnum):
    """Why a request was left out of the plan (machine-readable)."""

    NO_ELIGIBLE_RESOURCE = "no_eligible_resource"
    """No resource in the pool matches requirement `requirement` (skill, level, type, id)."""
    NO_AGREEMENT = "no_agreement"
    """Matching resources exist, but no agreement lets the requesting unit borrow them."""
    WINDOW_TOO_SHORT = "window_too_short"
    """The window (after dependencies and the horizon) is shorter than the duration."""
    OUTSIDE_WORKING_HOURS = "outside_working_hours"
    """Whatever else is planned, no eligible resource (or too few) has a free span of the
    duration in the window: working hours, leave, maintenance leave no room."""
    NO_CAPACITY = "no_capacity"
    """Eligible resources are busy throughout the window; `request_ids` (other requests of
    the plan) and `booking_ids` (pinned bookings) took them."""
    LENDING_CAP = "lending_cap"
    """The only free eligible resources have used up a capacity window; `span` is the
    window, `amount` its limit in time units."""
    BUDGET_SHORT = "budget_short"
    """The project's remaining budget is short of the cheapest feasible booking by `amount`."""
    DEPENDENCY_UNMET = "dependency_unmet"
    """A request it must follow (`request_ids`) is not allocated, or ends too late."""
    NOT_SELECTED = "not_selected"
    """It could fit alone, but only by displacing requests the objective preferred."""


class Reason(_Frozen):
    """One machine-readable reason, with the details its code promises."""

    code: ReasonCode
    message: str
    requirement: int | None = None
    """Index into the request's requirements, when the reason is about one."""
    request_ids: list[str] = Field(default_factory=list)
    resource_ids: list[str] = Field(default_factory=list)
    booking_ids: list[str] = Field(default_factory=list)
    """Pinned bookings that took the capacity (NO_CAPACITY)."""
    units: list[str] = Field(default_factory=list)
    amount: int | None = None
    span: TimeSpan | None = None
    """The window concerned: the capacity window (LENDING_CAP), or the request's window."""


class Unallocated(_Frozen):
    """A request the plan leaves out, and why."""

    request_id: str
    reasons: list[Reason] = Field(min_length=1)


class Objective(_Frozen):
    """The plan's objective, term by term (lexicographic order: fulfilled, fairness, ...)."""

    fulfilled_weight: int = 0
    """(1) Sum of priority weights of allocated requests (maximised)."""
    requested_weight: int = 0
    fairness: int = 0
    """(2) Min over requesting units of their reciprocity-scaled fulfilment share, in 1/1000."""
    moves: int = 0
    """(3) Published assignments not kept as they were (minimised)."""
    completion: int = 0
    """(4a) Sum of end times of allocated requests (minimised with cost)."""
    cost: int = 0
    """(4b) Total price in minor units (minimised with completion)."""
    makespan: int | None = None
    """Benchmark makespan mode only: the latest end (minimised)."""


SolveStatus = Literal["optimal", "feasible", "fallback"]


class Plan(_Frozen):
    """The optimizer's answer: assignments, refusals with reasons, and solve statistics."""

    assignments: list[Assignment]
    unallocated: list[Unallocated]
    displaced: list[str] = Field(default_factory=list)
    """Ids of displaceable pinned bookings the assignments overlap (emergency runs)."""
    objective: Objective
    bound: int | None = None
    """Best proven bound on the primary term (fulfilled weight, or makespan in that mode)."""
    gap: float | None = None
    """Relative gap of the primary term to `bound` (0.0 = proven optimal)."""
    status: SolveStatus
    """optimal: proven; feasible: improved or kept by CP-SAT; fallback: the greedy plan."""
    method: str = ""
    solve_seconds: float = 0.0
    """Seconds from the call to the plan: preparing, solving, explaining and checking."""
    stages: dict[str, float] = Field(default_factory=dict)
    """Seconds per stage: prepare, greedy (warm start), solve (search), explain, check."""
    checked: bool = False
    """check_plan found no violation."""

    def assignment_of(self, request_id: str) -> Assignment | None:
        """The assignment of `request_id`, if allocated."""
        for assignment in self.assignments:
            if assignment.request_id == request_id:
                return assignment
        return None


class Progress(_Frozen):
    """An improving solution, reported to `solve(on_progress=...)`."""

    stage: str
    objective: float
    """The stage's own objective value (fulfilled weight, fairness, moves, … or makespan)."""
    bound: float
    elapsed_s: float
    placed: int | None = None
    """Requests this solution places (None where a stage does not know)."""
    fulfilled_weight: int | None = None
    """This solution's priority-weighted fulfilment, whatever the stage optimises."""
