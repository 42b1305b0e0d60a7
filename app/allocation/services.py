"""Starting, reading and applying allocation runs.

Who: admins, and a unit's unit_manager or project_lead for projects their unit takes part
in. A run is read by its unit (and admins/auditors) and applied once, by its unit's
managers or leads (or an admin).
"""

from __future__ import annotations

import uuid

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import Session

from app.allocation.apply import apply_plan
from app.allocation.models import AllocationRun, RunStatus
from app.allocation.runner import RunPool, stale_after
from app.allocation.schemas import RunCreate
from app.audit.services import record, snapshot
from app.auth.actor import Actor
from app.auth.models import Role
from app.base import utcnow
from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.projects.models import ProjectShare

RUN_ROLES = (Role.UNIT_MANAGER, Role.PROJECT_LEAD)
MAX_ACTIVE_RUNS = 4


def _visible(actor: Actor) -> ColumnElement[bool]:
    return true() if actor.sees_everything else AllocationRun.unit_id == actor.unit_id


def start_run(session: Session, actor: Actor, data: RunCreate) -> AllocationRun:
    """Record a queued run (the caller submits it to the pool after commit)."""
    if not actor.has(*RUN_ROLES):
        raise PermissionDenied("starting a run needs unit_manager or project_lead")
    projects = [str(p) for p in data.project_ids]
    if not actor.is_admin:
        mine = set(
            session.scalars(
                select(ProjectShare.project_id).where(ProjectShare.unit_id == actor.unit_id)
            )
        )
        if not data.project_ids and not data.unit_ids:
            projects = sorted(str(p) for p in mine)
        elif any(p not in mine for p in data.project_ids) or data.unit_ids:
            raise PermissionDenied(
                "project_ids: you may plan only projects your unit takes part in; unit_ids "
                "is for admins"
            )
        if not projects:
            raise InvalidInput(
                "project_ids: your unit takes part in no project", field="project_ids"
            )
    _fail_stale(session, actor.unit_id)
    active = (
        session.scalar(
            select(func.count()).where(
                AllocationRun.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]),
                AllocationRun.unit_id == actor.unit_id,
            )
        )
        or 0
    )
    if active >= MAX_ACTIVE_RUNS:
        raise Conflict(
            f"your unit has {active} runs queued or running; wait for one to end",
            code="too_many_runs",
        )
    run = AllocationRun(
        created_by=actor.user_id,
        unit_id=actor.unit_id,
        status=RunStatus.QUEUED.value,
        horizon_start=data.horizon_start,
        horizon_end=data.horizon_end,
        slot_minutes=data.slot_minutes,
        time_limit_s=data.time_limit_s,
        project_ids=projects,
        unit_ids=[str(u) for u in data.unit_ids],
        emergency=data.emergency,
    )
    session.add(run)
    session.flush()
    record(session, actor, "allocation_run.start", run, unit_id=run.unit_id, after=snapshot(run))
    return run


def _fail_stale(session: Session, unit_id: uuid.UUID) -> None:
    """Mark the unit's runs stuck past their time failed, so they stop counting as active."""
    now = utcnow()
    for run in session.scalars(
        select(AllocationRun).where(
            AllocationRun.unit_id == unit_id,
            AllocationRun.status.in_([RunStatus.QUEUED.value, RunStatus.RUNNING.value]),
        )
    ):
        if now - run.created_at > stale_after(run):
            run.status = RunStatus.FAILED.value
            run.error = "the run did not finish in time (its worker may have stopped)"
            run.finished_at = now
    session.flush()


def get_run(session: Session, actor: Actor, run_id: uuid.UUID) -> AllocationRun:
    """A run of the actor's unit; a run stuck past its time is reported failed.

    Only reported: reading writes nothing (GETs run in read-only transactions), so the
    stale run is detached from the session before its status is changed for the answer.
    """
    run = session.scalar(select(AllocationRun).where(AllocationRun.id == run_id, _visible(actor)))
    if run is None:
        raise NotFound("no such allocation run")
    if run.status in (
        RunStatus.QUEUED.value,
        RunStatus.RUNNING.value,
    ) and utcnow() - run.created_at > stale_after(run):
        session.expunge(run)
        run.status = RunStatus.FAILED.value
        run.error = "the run did not finish in time (its worker may have stopped)"
        run.finished_at = utcnow()
    return run


def list_runs(
    session: Session, actor: Actor, *, limit: int, offset: int, status: RunStatus | None = None
) -> tuple[list[AllocationRun], int]:
    """Runs of the actor's unit, newest first."""
    query = select(AllocationRun).where(_visible(actor))
    if status is not None:
        query = query.where(AllocationRun.status == status.value)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(AllocationRun.created_at.desc()).limit(limit).offset(offset)
    ).all()
    return list(rows), total


def submit(pool: RunPool, run: AllocationRun) -> None:
    """Hand a committed run to the worker pool."""
    pool.submit(run.id)


def apply_run(session: Session, actor: Actor, run_id: uuid.UUID) -> AllocationRun:
    """Turn the plan into tentative bookings in one transaction; report what could not apply.

    Each assignment is re-checked (conflicts, working hours, caps, budgets that changed
    since the snapshot) and applied whole or not at all; unchanged bookings are kept and
    moved ones keep their ids (``app.allocation.apply``). An emergency run reopens the
    requests it displaces.
    """
    run = get_run(session, actor, run_id)
    if not actor.manages_unit(run.unit_id, *RUN_ROLES):
        raise PermissionDenied("applying a run needs unit_manager or project_lead of its unit")
    if run.status != RunStatus.DONE.value or run.result is None:
        raise Conflict(f"the run is {run.status}; only a done run is applied", code="wrong_status")
    if run.applied_at is not None:
        raise Conflict("the run was applied already", code="already_applied")
    report = apply_plan(session, actor, run)
    run.applied_at = utcnow()
    run.apply_report = report.as_json()
    session.flush()
    record(
        session,
        actor,
        "allocation_run.apply",
        run,
        unit_id=run.unit_id,
        after={key: len(value) for key, value in report.as_json().items()},
    )
    return run
