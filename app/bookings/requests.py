"""Requests: what a unit needs for a project, and "serve it now" (first fit, no optimizer).

A request is visible to the units taking part in its project (and to admins/auditors);
the requesting unit's requesters, project leads and unit managers change it.

Serving pairs every device that needs an operator (``operator_skill_id``) with an expert
holding that skill: the request's ``operator_id`` when given, else the first qualified
expert the unit may book who is free then. The operator's booking carries the request and
the device's requirement, and ``operator_for_id`` naming the device's booking.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import Session, selectinload

from app.audit.services import record, snapshot
from app.auth.actor import Actor
from app.base import utcnow
from app.bookings import rules
from app.bookings.availability import Interval, align, merge
from app.bookings.models import (
    LIVE_STATUSES,
    Booking,
    BookingStatus,
    Request,
    RequestStatus,
    Requirement,
    RequirementKind,
)
from app.bookings.schemas import RequestCreate, RequestPatch
from app.bookings.search import candidates, free_intervals
from app.bookings.services import (
    acts_for_project,
    borrowing_unit,
    change_status,
    check_project_period,
    holds_skill,
    lock_bookings,
    lock_request,
    place_booking,
    reopen_dependents,
    sync_request,
)
from app.catalog.models import DeviceType, Resource, ResourceKind, Skill
from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied, Unprocessable
from app.notifications import events as notify
from app.pagination import matches
from app.projects.models import Project
from app.projects.services import get_project, participates

SERVE_STEP_MINUTES = 5
SERVE_ATTEMPTS = 5


def _visible(actor: Actor) -> ColumnElement[bool]:
    if actor.sees_everything:
        return true()
    return (
        select(Project.id)
        .where(Project.id == Request.project_id, participates(actor.unit_id))
        .exists()
    )


def get_request(session: Session, actor: Actor, request_id: uuid.UUID) -> Request:
    """A request of a project the actor's unit takes part in."""
    request = session.scalar(
        select(Request)
        .options(selectinload(Request.requirements))
        .where(Request.id == request_id, _visible(actor))
    )
    if request is None:
        raise NotFound("no such request")
    return request


def list_requests(
    session: Session,
    actor: Actor,
    *,
    limit: int,
    offset: int,
    project_id: uuid.UUID | None = None,
    status: RequestStatus | None = None,
    unit_id: uuid.UUID | None = None,
    q: str | None = None,
) -> tuple[list[Request], int]:
    """Requests the actor may see, newest first (``q``: text in the title)."""
    query = select(Request).where(_visible(actor), matches(q, Request.title))
    if project_id is not None:
        query = query.where(Request.project_id == project_id)
    if status is not None:
        query = query.where(Request.status == status.value)
    if unit_id is not None:
        query = query.where(Request.unit_id == unit_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.options(selectinload(Request.requirements))
        .order_by(Request.created_at.desc(), Request.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def _check_requirement_targets(session: Session, actor: Actor, data: RequestCreate) -> None:
    for index, req in enumerate(data.requirements):
        field = f"requirements.{index}"
        if req.skill_id is not None:
            skill = session.get(Skill, req.skill_id)
            if skill is None or skill.retired_at is not None:
                raise InvalidInput(
                    f"{field}.skill_id: unknown or retired skill", field=f"{field}.skill_id"
                )
        if req.device_type_id is not None:
            device_type = session.get(DeviceType, req.device_type_id)
            if device_type is None or device_type.retired_at is not None:
                raise InvalidInput(
                    f"{field}.device_type_id: unknown or retired device type",
                    field=f"{field}.device_type_id",
                )
        if req.resource_id is not None and not candidates(
            session, actor, resource_id=req.resource_id
        ):
            raise InvalidInput(
                f"{field}.resource_id: no such resource", field=f"{field}.resource_id"
            )


def _check_operator(session: Session, data: RequestCreate, unit_id: uuid.UUID) -> None:
    """The request's operator is an active expert of the requesting unit; for a named device
    that needs an operator, one holding its operator skill (422 naming ``operator_id``)."""
    if data.operator_id is None:
        return
    operator = session.get(Resource, data.operator_id)
    if (
        operator is None
        or operator.kind != ResourceKind.EXPERT.value
        or operator.unit_id != unit_id
        or operator.retired_at is not None
    ):
        raise Unprocessable(
            "operator_id: not an active expert of the requesting unit",
            field="operator_id",
            code="operator_unqualified",
        )
    for req in data.requirements:
        device = session.get(Resource, req.resource_id) if req.resource_id else None
        if (
            device is not None
            and device.operator_skill_id is not None
            and not holds_skill(session, operator, device.operator_skill_id)
        ):
            raise Unprocessable(
                f"operator_id: {operator.name} cannot operate {device.name}",
                field="operator_id",
                code="operator_unqualified",
            )


def create_request(session: Session, actor: Actor, data: RequestCreate) -> Request:
    """Record a request; it stays open until served, allocated by a run, or withdrawn."""
    project = get_project(session, actor, data.project_id)
    unit_id = borrowing_unit(session, actor, project)
    check_project_period(project, data.window_start, data.window_end)
    _check_requirement_targets(session, actor, data)
    _check_operator(session, data, unit_id)
    if data.depends_on_id is not None:
        other = session.get(Request, data.depends_on_id)
        if other is None or other.project_id != project.id:
            raise InvalidInput(
                "depends_on_id: no such request in this project", field="depends_on_id"
            )
    request = Request(
        project_id=project.id,
        unit_id=unit_id,
        created_by=actor.user_id,
        title=data.title,
        notes=data.notes,
        duration_minutes=data.duration_minutes,
        window_start=data.window_start,
        window_end=data.window_end,
        priority=data.priority,
        emergency=data.emergency,
        depends_on_id=data.depends_on_id,
        operator_id=data.operator_id,
        waitlist=data.waitlist,
        auto_accept=data.auto_accept,
        status=RequestStatus.OPEN.value,
        requirements=[
            Requirement(
                position=i,
                kind=r.kind.value,
                skill_id=r.skill_id,
                min_level=r.min_level,
                device_type_id=r.device_type_id,
                resource_id=r.resource_id,
                quantity=r.quantity,
            )
            for i, r in enumerate(data.requirements)
        ],
    )
    session.add(request)
    session.flush()
    record(session, actor, "request.create", request, unit_id=unit_id, after=snapshot(request))
    return request


def _check_owner(session: Session, actor: Actor, request: Request) -> None:
    if not acts_for_project(session, actor, request.unit_id, request.project_id):
        raise PermissionDenied(
            "only the requesting unit's manager, or its requesters and leads on the project, "
            "change it"
        )


def change_request(
    session: Session, actor: Actor, request_id: uuid.UUID, data: RequestPatch
) -> Request:
    """Change an open request's title, notes, duration, window or priority (409 once it is
    not open), under the rules of a new request; the audit log keeps before and after."""
    request = get_request(session, actor, request_id)
    _check_owner(session, actor, request)
    if lock_request(session, request.id) is None or request.status != RequestStatus.OPEN.value:
        raise Conflict(
            f"the request is {request.status}; only open requests change", code="wrong_status"
        )
    changes = data.model_dump(exclude_none=True)
    if not changes:
        raise InvalidInput("give at least one field to change", field="title")
    window_start = changes.get("window_start", request.window_start)
    window_end = changes.get("window_end", request.window_end)
    duration = changes.get("duration_minutes", request.duration_minutes)
    if window_end <= window_start:
        raise InvalidInput("window_end: must be after window_start", field="window_end")
    if (window_end - window_start).total_seconds() < duration * 60:
        raise InvalidInput(
            "window_end: the window is shorter than duration_minutes", field="window_end"
        )
    project = session.get(Project, request.project_id)
    assert project is not None
    check_project_period(project, window_start, window_end)
    before = snapshot(request)
    for key, value in changes.items():
        setattr(request, key, value)
    session.flush()
    record(
        session,
        actor,
        "request.edit",
        request,
        unit_id=request.unit_id,
        before=before,
        after=snapshot(request),
    )
    return request


def cancel_request(session: Session, actor: Actor, request_id: uuid.UUID, reason: str) -> Request:
    """Withdraw a request and cancel its live bookings (409 ``wrong_status`` once it is over)."""
    request = get_request(session, actor, request_id)
    _check_owner(session, actor, request)
    # Lock the request, then every booking of it (by id), and decide on what they are now.
    lock_request(session, request.id)
    lock_bookings(
        session, session.scalars(select(Booking.id).where(Booking.request_id == request.id))
    )
    if request.status not in (
        RequestStatus.OPEN.value,
        RequestStatus.ALLOCATED.value,
        RequestStatus.PENDING_APPROVAL.value,
        RequestStatus.CONFIRMED.value,
    ):
        raise Conflict(f"the request is {request.status}", code="wrong_status")
    before = snapshot(request)
    live = session.scalars(
        select(Booking)
        .where(
            Booking.request_id == request.id,
            Booking.status.in_([s for s in LIVE_STATUSES if s != "completed"]),
        )
        .order_by(Booking.id)
    ).all()
    for booking in live:
        if booking.status not in LIVE_STATUSES:
            continue  # already cancelled with its pair
        change_status(
            session,
            actor,
            booking,
            BookingStatus.CANCELLED,
            "booking.cancel",
            f"request withdrawn: {reason}",
            cancelled_at=utcnow(),
        )
        notify.booking_cancelled(session, actor, booking, notify.BORROWER, reason)
    request.status = RequestStatus.CANCELLED.value
    request.status_reason = reason
    session.flush()
    record(
        session,
        actor,
        "request.cancel",
        request,
        unit_id=request.unit_id,
        before=before,
        after=snapshot(request),
        reason=reason,
    )
    reopen_dependents(session, actor, request, reason)
    return request


def _candidates_for(session: Session, actor: Actor, requirement: Requirement) -> list[Resource]:
    return candidates(
        session,
        actor,
        skill_id=requirement.skill_id if requirement.kind == RequirementKind.SKILL.value else None,
        min_level=requirement.min_level,
        device_type_id=requirement.device_type_id,
        resource_id=requirement.resource_id,
    )


def _earliest_start(request: Request, session: Session) -> datetime:
    start = request.window_start
    if request.depends_on_id is not None:
        ends = session.scalars(
            select(Booking.end).where(
                Booking.request_id == request.depends_on_id, Booking.status.in_(LIVE_STATUSES)
            )
        ).all()
        if not ends:
            raise Conflict(
                "depends_on_id: the request it depends on has no bookings yet",
                field="depends_on_id",
                code="dependency_unmet",
            )
        start = max(start, max(ends))
    return start


def _free_at(free: list[Interval], start: datetime, end: datetime) -> bool:
    return any(s <= start and end <= e for s, e in merge(free))


Pick = tuple[Requirement, Resource, Resource | None]
"""A requirement, the resource that serves it, and the operator of that resource (if any)."""


def _operators(
    session: Session,
    actor: Actor,
    request: Request,
    pools: list[tuple[Requirement, list[Resource]]],
) -> dict[uuid.UUID, list[Resource]]:
    """Per operator skill the pools' devices need: the experts who may operate them."""
    needed = {r.operator_skill_id for _, pool in pools for r in pool if r.operator_skill_id}
    own = session.get(Resource, request.operator_id) if request.operator_id else None
    out: dict[uuid.UUID, list[Resource]] = {}
    for skill_id in needed:
        if request.operator_id is None:
            out[skill_id] = candidates(session, actor, skill_id=skill_id)
        else:
            fit = own is not None and own.retired_at is None and holds_skill(session, own, skill_id)
            out[skill_id] = [own] if fit and own is not None else []
    return out


def _first_fit(
    request: Request,
    pools: list[tuple[Requirement, list[Resource]]],
    operators: dict[uuid.UUID, list[Resource]],
    free: dict[uuid.UUID, list[Interval]],
    not_before: datetime,
    banned: set[uuid.UUID],
) -> tuple[datetime, list[Pick]] | None:
    """The earliest start at which every requirement gets its quantity of distinct resources,
    each device that needs an operator with a distinct operator free at the same time."""
    need = timedelta(minutes=request.duration_minutes)
    starts = sorted(
        {
            align(max(s, not_before), SERVE_STEP_MINUTES)
            for rs in free.values()
            for s, _ in rs
            if s < request.window_end
        }
        | {align(not_before, SERVE_STEP_MINUTES)}
    )
    for at in starts:
        if at + need > request.window_end:
            break
        taken: set[uuid.UUID] = set(banned)
        chosen: list[Pick] = []
        for requirement, pool in pools:
            picked = 0
            for resource in pool:
                if picked == requirement.quantity:
                    break
                if resource.id in taken or not _free_at(free[resource.id], at, at + need):
                    continue
                operator = None
                if resource.operator_skill_id is not None:
                    operator = next(
                        (
                            o
                            for o in operators[resource.operator_skill_id]
                            if o.id not in taken and _free_at(free[o.id], at, at + need)
                        ),
                        None,
                    )
                    if operator is None:
                        continue
                    taken.add(operator.id)
                taken.add(resource.id)
                chosen.append((requirement, resource, operator))
                picked += 1
            if picked < requirement.quantity:
                break
        else:
            return at, chosen
    return None


def _lock_in_order(
    session: Session, chosen: list[tuple[Requirement, Resource, Resource | None]]
) -> dict[uuid.UUID, Resource]:
    """Lock every resource a fit books, its operators too, in resource id order: the order
    an apply takes them (``app.allocation.apply``), so two serves, or a serve and an apply,
    booking the same resources for requirements listed the other way round never deadlock."""
    ids = sorted({r.id for _, r, _ in chosen} | {o.id for _, _, o in chosen if o is not None})
    return {rid: rules.lock_resource(session, rid) for rid in ids}


def serve_now(
    session: Session, actor: Actor, request_id: uuid.UUID
) -> tuple[Request, list[Booking]]:
    """Book the earliest fit for an open request at once (first fit, no optimizer)."""
    request = get_request(session, actor, request_id)
    _check_owner(session, actor, request)
    if request.status != RequestStatus.OPEN.value:
        raise Conflict(
            f"the request is {request.status}; only open requests are served", code="wrong_status"
        )
    project = get_project(session, actor, request.project_id)
    not_before = _earliest_start(request, session)
    pools = [(r, _candidates_for(session, actor, r)) for r in request.requirements]
    operators = _operators(session, actor, request, pools)
    # A device that needs an operator is eligible only if someone may operate it.
    pools = [
        (req, [r for r in pool if r.operator_skill_id is None or operators[r.operator_skill_id]])
        for req, pool in pools
    ]
    for requirement, pool in pools:
        if not pool:
            raise Conflict(
                f"requirement {requirement.position}: no resource your unit may borrow matches "
                "it (a device that needs an operator counts only with a qualified operator)",
                code="no_eligible_resource",
            )
    everyone = {r.id: r for _, pool in pools for r in pool}
    everyone.update({o.id: o for group in operators.values() for o in group})
    free = free_intervals(session, list(everyone.values()), not_before, request.window_end)
    banned: set[uuid.UUID] = set()
    last_error: Conflict | None = None
    for _ in range(SERVE_ATTEMPTS):
        fit = _first_fit(request, pools, operators, free, not_before, banned)
        if fit is None:
            break
        at, chosen = fit
        end = at + timedelta(minutes=request.duration_minutes)
        try:
            with session.begin_nested():
                locked = _lock_in_order(session, chosen)
                bookings = []
                for requirement, resource, operator in chosen:
                    booking = place_booking(
                        session,
                        actor,
                        resource=locked[resource.id],
                        project=project,
                        borrower_unit_id=request.unit_id,
                        start=at,
                        end=end,
                        title=request.title,
                        request_id=request.id,
                        requirement_id=requirement.id,
                    )
                    bookings.append(booking)
                    if operator is not None:
                        bookings.append(
                            place_booking(
                                session,
                                actor,
                                resource=locked[operator.id],
                                project=project,
                                borrower_unit_id=request.unit_id,
                                start=at,
                                end=end,
                                title=f"{request.title} (operating {resource.name})",
                                request_id=request.id,
                                requirement_id=requirement.id,
                                operator_for_id=booking.id,
                            )
                        )
        except Conflict as exc:
            # A cap (or a booking made since the search) rules this resource out: try others.
            last_error = exc
            culprit = exc.extra.get("resource_id")
            if culprit is None:
                break
            banned.add(uuid.UUID(culprit))
            continue
        # Resources first, then the request (the order every change locks in): a second
        # serve, a run's apply or a withdrawal may have changed it since it was read.
        if lock_request(session, request.id) is None or request.status != RequestStatus.OPEN.value:
            raise Conflict(
                f"the request is {request.status}; only open requests are served",
                code="wrong_status",
            )
        sync_request(session, actor, request.id, "served now (first fit)")
        session.refresh(request)
        return request, bookings
    detail = "no slot in the window fits every requirement at once"
    if last_error is not None:
        detail += f" (last refusal: {last_error.detail})"
    raise Conflict(detail, code="no_capacity")
