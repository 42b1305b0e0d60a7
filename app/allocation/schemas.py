"""API shapes of allocation runs."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from app.allocation.models import RunStatus
from app.errors import InvalidInput
from app.schemas import Schema, UtcDatetime, end_after_start


class RunCreate(Schema):
    """Scope and limits of a run. No projects and no units: every project of your unit."""

    horizon_start: UtcDatetime
    horizon_end: UtcDatetime
    project_ids: list[uuid.UUID] = Field(default_factory=list, max_length=200)
    unit_ids: list[uuid.UUID] = Field(default_factory=list, max_length=200)
    time_limit_s: int = Field(default=10, ge=1, le=600)
    slot_minutes: int = Field(default=15, ge=5, le=240)
    emergency: bool = False

    _ordered = field_validator("horizon_end")(end_after_start)

    @field_validator("horizon_end")
    @classmethod
    def _bounded(cls, value: datetime, info: Any) -> datetime:
        start = info.data.get("horizon_start")
        if start is not None and (value - start).days > 92:
            raise ValueError("a run covers at most 92 days")
        if value <= datetime.now(UTC):
            raise ValueError("the horizon has passed: a run plans time still to come")
        return value

    @model_validator(mode="after")
    def _holds_a_slot(self) -> RunCreate:
        if self.horizon_end - self.horizon_start < timedelta(minutes=self.slot_minutes):
            raise InvalidInput(
                "horizon_end: the horizon is shorter than one slot", field="horizon_end"
            )
        return self


class RunProgress(Schema):
    """How a run's solve stands, stored as it improves (the last write wins)."""

    model_config = ConfigDict(extra="ignore", from_attributes=True)

    stage: str = ""
    """starting, greedy, fulfilment, fairness, lns, … (``pool i/n …`` per unit of work), done;
    queued when a worker handed the run back."""
    best_objective: float | None = None
    """The best plan's priority-weighted fulfilment so far."""
    bound: float | None = None
    """A proven upper bound on it (null until one is known)."""
    gap: float | None = None
    """(bound - best) / bound: 0 is proven optimal."""
    placed: int | None = None
    """Requests the best plan so far places."""
    requests: int | None = None
    """Requests the run plans for."""
    elapsed_s: float | None = None
    """Seconds since the solve began."""
    note: str | None = None
    """Why the run went back to the queue, when it did."""


class RunRead(Schema):
    """A run: its status, live progress, and (when done) the plan with explanations."""

    id: uuid.UUID
    unit_id: uuid.UUID
    created_by: uuid.UUID
    status: RunStatus
    horizon_start: datetime
    horizon_end: datetime
    slot_minutes: int
    time_limit_s: int
    project_ids: list[str]
    unit_ids: list[str]
    emergency: bool
    progress: RunProgress | None
    result: dict[str, Any] | None
    error: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    applied_at: datetime | None
    apply_report: dict[str, Any] | None
