"""Starting, reading and applying allocation runs.

Who: admins, and a unit's unit_manager or project_lead for projects their unit takes part
in. A run is read by its unit (and admins/auditors) and applied once, by its unit's
managers or leads (or an admin).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import Session, selectinload

from app.allocation.models import AllocationRun, RunStatus
from app.allocation.runner import RunPool, stale_after
from app.allocation.schemas import RunCreate
from app.audit.services import record, snapshot
from app.auth.actor import Actor
from app.auth.models import Role
from app.base import utcnow
from app.bookings import rules
from app.bookings.models import (
    LIVE_STATUSES,
    Booking,
    BookingStatus,
    Request,
    RequestStatus,
    Requirement,
    RequirementKind,
)
from app.bookings.services import change_status, place_booking, sync_request
from app.catalog.models import Resource
from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.projects.models import Project, ProjectShare
from ledger import available_funds_many

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


def get_run(session: Session, actor: Actor, run_id: uuid.UUID) -> AllocationRun:
    """A run of the actor's unit; a run stuck past its time is reported failed."""
    run = session.scalar(select(AllocationRun).where(AllocationRun.id == run_id, _visible(actor)))
    if run is None:
        raise NotFound("no such allocation run")
    if run.status in (
        RunStatus.QUEUED.value,
        RunStatus.RUNNING.value,
    ) and utcnow() - run.created_at > stale_after(run):
        run.status = RunStatus.FAILED.value
        run.error = "the run did not finish in time (its worker may have stopped)"
        run.finished_at = utcnow()
        session.flush()
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


def _match_requirements(
    session: Session, requirements: list[Requirement], resource_ids: list[uuid.UUID]
) -> dict[uuid.UUID, Requirement]:
    """Which requirement each assigned resource serves (quantities respected)."""
    left = {q.id: q.quantity for q in requirements}
    out: dict[uuid.UUID, Requirement] = {}
    resources = {
        r.id: r
        for r in session.scalars(
            select(Resource)
            .options(selectinload(Resource.skills))
            .where(Resource.id.in_(resource_ids))
        )
    }
    for rid in resource_ids:
        resource = resources[rid]
        for q in requirements:
            if not left[q.id]:
                continue
            fits = (
                (q.kind == RequirementKind.RESOURCE.value and q.resource_id == rid)
                or (
                    q.kind == RequirementKind.DEVICE_TYPE.value
                    and q.device_type_id == resource.device_type_id
                )
                or (
                    q.kind == RequirementKind.SKILL.value
                    and any(
                        s.skill_id == q.skill_id and s.level >= q.min_level for s in resource.skills
                    )
                )
            )
            if fits:
                out[rid] = q
                left[q.id] -= 1
                break
    return out


def _displace(
    session: Session,
    actor: Actor,
    request: Request,
    resource: Resource,
    start: datetime,
    end: datetime,
    run: AllocationRun,
) -> list[dict[str, Any]]:
    """Cancel the live bookings in the way of an emergency request; list each one."""
    displaced = []
    blocks = rules.live_blocks(session, [resource.id], start, end).get(resource.id, [])
    for booking in blocks:
        other = session.get(Request, booking.request_id) if booking.request_id else None
        if booking.status == BookingStatus.COMPLETED.value or (other and other.emergency):
            raise Conflict(
                f"{resource.name} is held by a booking an emergency may not displace",
                code="overlap",
                resource_id=str(resource.id),
            )
        change_status(
            session,
            actor,
            booking,
            BookingStatus.CANCELLED,
            "booking.displace",
            f"displaced by emergency request {request.id} (run {run.id})",
            cancelled_at=utcnow(),
        )
        if booking.request_id is not None:
            sync_request(session, actor, booking.request_id, booking.status_reason)
        displaced.append(
            {
                "booking_id": str(booking.id),
                "resource_id": str(resource.id),
                "start": booking.start.isoformat(),
                "end": booking.end.isoformat(),
                "borrower_unit_id": str(booking.borrower_unit_id),
                "request_id": str(booking.request_id) if booking.request_id else None,
            }
        )
    return displaced


def apply_run(session: Session, actor: Actor, run_id: uuid.UUID) -> AllocationRun:
    """Turn the plan into tentative bookings in one transaction; report what could not apply.

    Each assignment is re-checked (conflicts, working hours, caps, budgets that changed
    since the snapshot) and applied whole or not at all. A request's earlier tentative
    bookings are replaced. An emergency run cancels the bookings it displaces.
    """
    run = get_run(session, actor, run_id)
    if not actor.manages_unit(run.unit_id, *RUN_ROLES):
        raise PermissionDenied("applying a run needs unit_manager or project_lead of its unit")
    if run.status != RunStatus.DONE.value or run.result is None:
        raise Conflict(f"the run is {run.status}; only a done run is applied", code="wrong_status")
    if run.applied_at is not None:
        raise Conflict("the run was applied already", code="already_applied")
    assignments = run.result["assignments"]
    projects: dict[uuid.UUID, None] = {}
    for a in assignments:
        request = session.get(Request, uuid.UUID(a["request_id"]))
        if request is not None:
            projects[request.project_id] = None
    funds = {p: m.amount for p, m in available_funds_many(session, list(projects)).items()}
    spent: dict[uuid.UUID, int] = defaultdict(int)
    applied, refused, displaced = [], [], []
    for a in assignments:
        request = session.scalar(
            select(Request)
            .options(selectinload(Request.requirements))
            .where(Request.id == uuid.UUID(a["request_id"]))
        )
        if request is None or request.status not in (
            RequestStatus.OPEN.value,
            RequestStatus.ALLOCATED.value,
        ):
            refused.append(
                {
                    "request_id": a["request_id"],
                    "code": "wrong_status",
                    "reason": f"the request is now {request.status if request else 'gone'}",
                }
            )
            continue
        cost = int(a.get("cost", 0))
        if (
            request.project_id in funds
            and spent[request.project_id] + cost > funds[request.project_id]
        ):
            short = spent[request.project_id] + cost - funds[request.project_id]
            refused.append(
                {
                    "request_id": a["request_id"],
                    "code": "budget_short",
                    "reason": f"the project's available funds are short by {short}",
                }
            )
            continue
        # The plan holds whole slots; the booking lasts exactly the requested duration.
        start = datetime.fromisoformat(a["start"])
        end = start + timedelta(minutes=request.duration_minutes)
        try:
            with session.begin_nested():
                made, moved = _apply_one(session, actor, run, request, a, start, end)
            applied.append({"request_id": a["request_id"], "booking_ids": made})
            displaced.extend(moved)
            spent[request.project_id] += cost
        except Conflict as exc:
            refused.append(
                {
                    "request_id": a["request_id"],
                    "code": exc.extra.get("code", "conflict"),
                    "reason": exc.detail,
                }
            )
    run.applied_at = utcnow()
    run.apply_report = {"applied": applied, "refused": refused, "displaced": displaced}
    session.flush()
    record(
        session,
        actor,
        "allocation_run.apply",
        run,
        unit_id=run.unit_id,
        after={"applied": len(applied), "refused": len(refused), "displaced": len(displaced)},
    )
    return run


def _apply_one(
    session: Session,
    actor: Actor,
    run: AllocationRun,
    request: Request,
    a: dict[str, Any],
    start: datetime,
    end: datetime,
) -> tuple[list[str], list[dict[str, Any]]]:
    project = session.get(Project, request.project_id)
    assert project is not None
    for old in session.scalars(
        select(Booking).where(Booking.request_id == request.id, Booking.status.in_(LIVE_STATUSES))
    ):
        if old.status != BookingStatus.TENTATIVE.value:
            raise Conflict("the request already has bookings beyond tentative", code="wrong_status")
        before = snapshot(old)
        old.status = BookingStatus.CANCELLED.value
        old.status_reason = f"re-planned by run {run.id}"
        old.cancelled_at = utcnow()
        old.sequence += 1
        session.flush()
        record(
            session,
            actor,
            "booking.replan",
            old,
            unit_id=old.lender_unit_id,
            before=before,
            after=snapshot(old),
            reason=old.status_reason,
        )
    ids = [uuid.UUID(r) for r in a["resource_ids"]]
    serves = _match_requirements(session, list(request.requirements), ids)
    made, moved = [], []
    for rid in ids:
        resource = rules.lock_resource(session, rid)
        if run.emergency and request.emergency:
            moved.extend(_displace(session, actor, request, resource, start, end, run))
        booking = place_booking(
            session,
            actor,
            resource=resource,
            project=project,
            borrower_unit_id=request.unit_id,
            start=start,
            end=end,
            title=request.title,
            status=BookingStatus.TENTATIVE,
            request_id=request.id,
            requirement_id=serves[rid].id if rid in serves else None,
        )
        made.append(str(booking.id))
    sync_request(session, actor, request.id, f"allocated by run {run.id}")
    return made, moved
