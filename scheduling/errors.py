"""Exceptions raised by the scheduling package.

```
SchedulingError
├── InvalidInstance      the instance breaks an input rule (validate.py); `.problems` lists them
├── InvalidPlan          check_plan found violations (`.violations`); a bug if solve() returned it
├── NoFeasiblePlan       mandatory requests cannot all be allocated (benchmark makespan mode)
└── InstanceFormatError  a .dzn / .def benchmark file cannot be parsed
```
"""

from __future__ import annotations


class SchedulingError(Exception):
    """Base class of every error the scheduling package raises."""


class InvalidInstance(SchedulingError):
    """The instance breaks input rules; `problems` holds `(location, message)` pairs."""

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        self.problems = problems
        shown = "; ".join(f"{where}: {what}" for where, what in problems[:5])
        more = f" (+{len(problems) - 5} more)" if len(problems) > 5 else ""
        super().__init__(f"invalid instance: {shown}{more}")


class InvalidPlan(SchedulingError):
    """A plan breaks hard rules; `violations` lists them in plain words."""

    def __init__(self, violations: list[str]) -> None:
        self.violations = violations
        super().__init__("invalid plan: " + "; ".join(violations[:5]))


class NoFeasiblePlan(SchedulingError):
    """Mandatory requests cannot all be allocated within the horizon."""


class InstanceFormatError(SchedulingError):
    """A benchmark instance file cannot be parsed."""
