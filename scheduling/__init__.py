"""copool's optimizer: allocate shared experts and devices to requests, and explain refusals.

Pure library: pydantic in (`Instance`), pydantic out (`Plan`), OR-Tools CP-SAT inside.

    from scheduling import Instance, solve, check_plan
    plan = solve(instance, time_limit_s=10, num_workers=2, seed=0, on_progress=print)
    assert check_plan(instance, plan) == []
"""

from scheduling.baselines import best_fit_greedy, first_come_first_served
from scheduling.check import assert_plan_valid, check_plan
from scheduling.errors import (
    InstanceFormatError,
    InvalidInstance,
    InvalidPlan,
    NoFeasiblePlan,
    SchedulingError,
)
from scheduling.loaders import BestKnown, load_best_known, load_def, load_dzn, load_instance
from scheduling.report import fairness_of, objective_of
from scheduling.schemas import (
    EMERGENCY_FACTOR,
    Agreement,
    Assignment,
    CapWindow,
    Instance,
    Objective,
    PinnedBooking,
    Plan,
    Progress,
    Reason,
    ReasonCode,
    Request,
    Requirement,
    Resource,
    TimeSpan,
    Unallocated,
)
from scheduling.solve import lexicographic_key, solve
from scheduling.validate import instance_problems, validate_instance

__all__ = [
    "EMERGENCY_FACTOR",
    "Agreement",
    "Assignment",
    "BestKnown",
    "CapWindow",
    "Instance",
    "InstanceFormatError",
    "InvalidInstance",
    "InvalidPlan",
    "NoFeasiblePlan",
    "Objective",
    "PinnedBooking",
    "Plan",
    "Progress",
    "Reason",
    "ReasonCode",
    "Request",
    "Requirement",
    "Resource",
    "SchedulingError",
    "TimeSpan",
    "Unallocated",
    "assert_plan_valid",
    "best_fit_greedy",
    "check_plan",
    "fairness_of",
    "first_come_first_served",
    "instance_problems",
    "lexicographic_key",
    "load_best_known",
    "load_def",
    "load_dzn",
    "load_instance",
    "objective_of",
    "solve",
    "validate_instance",
]
