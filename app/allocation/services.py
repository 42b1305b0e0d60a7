"""Starting, reading and applying allocation runs.

Who: admins, and a unit's unit_manager or project_lead for projects their unit takes part
in. A run is read by its unit (and admins/auditors) and applied once, by its unit's
managers or leads (or an admin).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select, true, update
from sqlalchemy.orm import Session

from app.allocation.apply import apply_plan
from app.allocation.models import ACTIVE_STATUSES, AllocationRun, RunStatus
from app.allocation.schemas import RunCreate
from app.audit.services import record, snapshot
from app.auth.actor import Actor
from app.auth.models import Role
from app.base import utcnow
from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.jobs.identity import is_dead
from app.projects.models import ProjectShare

RUN_ROLES = (Role.UNIT_MANAGER, Role.PROJECT_LEAD)
MAX_ACTIVE_RUNS = 4


@dataclass(frozen=True)
class Recovery:
    """When a running run's worker counts as dead, and how many workers a run may lose."""

    stale: timedelta = timedelta(seconds=30)
    max_attempts: int = 3


def _visible(actor: Actor) -> ColumnElement[bool]:
    return true() if actor.sees_everything else AllocationRun.unit_id == actor.unit_id


def start_run(
    session: Session,
    actor: Actor,
    data: RunCreate,
    recovery: Recovery | None = None,
    max_active: int = MAX_ACTIVE_RUNS,
) -> AllocationRun:
    """Record a queued run (the caller enqueues it after commit).

    The unit's runs whose worker died are first taken back (``recover_runs``), so the quota
    (``max_active`` queued or running runs per unit) counts what lists show: queued and
    running runs of live workers."""
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
    recover_runs(session, recovery or Recovery(), unit_id=actor.unit_id)
    active = (
        session.scalar(
            select(func.count()).where(
                AllocationRun.status.in_(ACTIVE_STATUSES),
                AllocationRun.unit_id == actor.unit_id,
            )
        )
        or 0
    )
    if active >= max_active:
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


def recover_runs(
    session: Session, recovery: Recovery, *, unit_id: uuid.UUID | None = None
) -> list[uuid.UUID]:
    """Take back running runs whose worker died (stale heartbeat, or its process gone):
    queued again, or failed with the reason once they used their attempts. Returns the
    runs queued again (the caller enqueues them after commit)."""
    now = utcnow()
    query = select(AllocationRun).where(AllocationRun.status == RunStatus.RUNNING.value)
    if unit_id is not None:
        query = query.where(AllocationRun.unit_id == unit_id)
    requeued = []
    for run in session.scalars(query.with_for_update(skip_locked=True)):
        if not is_dead(run.owner, run.heartbeat_at, now, recovery.stale):
            continue
        last = f"worker {run.owner or '?'} stopped answering (last heartbeat {run.heartbeat_at})"
        if run.attempts >= recovery.max_attempts:
            run.status = RunStatus.FAILED.value
            run.error = f"gave up after {run.attempts} attempts: {last}"
            run.finished_at = now
        else:
            run.status = RunStatus.QUEUED.value
            run.progress = {"stage": "queued", "note": f"retrying: {last}"}
            requeued.append(run.id)
        run.owner = ""
        run.heartbeat_at = None
    session.flush()
    return requeued


def queued_run_ids(session: Session) -> list[uuid.UUID]:
    """Every queued run, oldest first (what a worker should be asked to solve)."""
    return list(
        session.scalars(
            select(AllocationRun.id)
            .where(AllocationRun.status == RunStatus.QUEUED.value)
            .order_by(AllocationRun.created_at)
        )
    )


def claim_run(session: Session, run_id: uuid.UUID, owner: str, now: datetime) -> bool:
    """Take a queued run for ``owner`` (queued → running); whether this worker got it."""
    done = session.execute(
        update(AllocationRun)
        .where(AllocationRun.id == run_id, AllocationRun.status == RunStatus.QUEUED.value)
        .values(
            status=RunStatus.RUNNING.value,
            owner=owner,
            heartbeat_at=now,
            started_at=now,
            attempts=AllocationRun.attempts + 1,
            progress={"stage": "starting"},
            error="",
        )
    )
    return bool(getattr(done, "rowcount", 0))


def cancel_run(session: Session, actor: Actor, run_id: uuid.UUID) -> AllocationRun:
    """Cancel a queued or running run: it stops counting at once, and its worker kills the
    solve when it next looks (``runner.POLL_S``)."""
    run = session.scalar(
        select(AllocationRun).where(AllocationRun.id == run_id, _visible(actor)).with_for_update()
    )
    if run is None:
        raise NotFound("no such allocation run")
    if not actor.manages_unit(run.unit_id, *RUN_ROLES):
        raise PermissionDenied("cancelling a run needs unit_manager or project_lead of its unit")
    if run.status not in ACTIVE_STATUSES:
        raise Conflict(
            f"the run is {run.status}; only a queued or running run is cancelled",
            code="wrong_status",
        )
    before = snapshot(run)
    run.status = RunStatus.CANCELLED.value
    run.error = "cancelled by its unit"
    run.finished_at = utcnow()
    run.owner = ""
    run.heartbeat_at = None
    session.flush()
    record(
        session,
        actor,
        "allocation_run.cancel",
        run,
        unit_id=run.unit_id,
        before=before,
        after=snapshot(run),
    )
    return run


def get_run(session: Session, actor: Actor, run_id: uuid.UUID) -> AllocationRun:
    """A run of the actor's unit, as stored (workers keep the status true: ``recover_runs``)."""
    run = session.scalar(select(AllocationRun).where(AllocationRun.id == run_id, _visible(actor)))
    if run is None:
        raise NotFound("no such allocation run")
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
