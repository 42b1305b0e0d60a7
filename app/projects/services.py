"""Joint projects: participants see them; the lead (user or unit manager) runs them.

Another unit's cost share and its users' membership need that unit's consent: see
``app.projects.invitations`` (until it accepts, the lead unit carries the share).

A change locks the project's row and reads it again before it decides (``lock_project``),
so two changes at once are served one after the other. Closing a closed project, or
changing one, answers 409 ``wrong_status``.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import ColumnElement, exists, func, select, true
from sqlalchemy.orm import Session, joinedload, selectinload

import ledger
from app.audit.services import record
from app.auth.actor import Actor
from app.auth.models import Role, User
from app.base import utcnow
from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.pagination import matches
from app.projects import invitations
from app.projects.models import Project, ProjectMember, ProjectShare
from app.projects.schemas import ProjectCreate, ProjectRead, ProjectUpdate, ShareTerm
from app.units.models import Unit


def participates(unit_id: uuid.UUID) -> ColumnElement[bool]:
    """SQL: ``unit_id`` takes part in the project (holds a cost-share term)."""
    return exists().where(ProjectShare.project_id == Project.id, ProjectShare.unit_id == unit_id)


def _visible(actor: Actor) -> ColumnElement[bool]:
    return true() if actor.sees_everything else participates(actor.unit_id)


def to_read(project: Project) -> ProjectRead:
    """The API view of a project."""
    return ProjectRead(
        id=project.id,
        name=project.name,
        code=project.code,
        description=project.description,
        lead_unit_id=project.lead_unit_id,
        lead_user_id=project.lead_user_id,
        start_date=project.start_date,
        end_date=project.end_date,
        currency=project.currency,
        # sorted as the relationships load them, so a fresh object reads like a loaded one
        shares=[
            ShareTerm(unit_id=s.unit_id, share_bp=s.share_bp)
            for s in sorted(project.shares, key=lambda s: s.unit_id)
        ],
        member_ids=sorted(m.user_id for m in project.members),
        closed_at=project.closed_at,
    )


def get_project(session: Session, actor: Actor, project_id: uuid.UUID) -> Project:
    """A project the actor's unit takes part in (any, for admins and auditors)."""
    # One statement with both collections joined (every booking starts here): its rows are
    # shares x members, a handful of units times the project's members, which costs less
    # than two more round trips of selectinload.
    project = (
        session.scalars(
            select(Project)
            .options(joinedload(Project.shares), joinedload(Project.members))
            .where(Project.id == project_id, _visible(actor))
        )
        .unique()
        .first()
    )
    if project is None:
        raise NotFound("no such project")
    return project


def list_projects(
    session: Session,
    actor: Actor,
    *,
    limit: int,
    offset: int,
    unit_id: uuid.UUID | None = None,
    active_on: date | None = None,
    include_closed: bool = False,
    q: str | None = None,
) -> tuple[list[Project], int]:
    """Projects the actor may see, filtered by participant, date and text (name, code)."""
    query = select(Project).where(_visible(actor), matches(q, Project.name, Project.code))
    if unit_id is not None:
        query = query.where(participates(unit_id))
    if active_on is not None:
        query = query.where(Project.start_date <= active_on, Project.end_date >= active_on)
    if not include_closed:
        query = query.where(Project.closed_at.is_(None))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.options(selectinload(Project.shares), selectinload(Project.members))
        .order_by(Project.start_date.desc(), Project.code)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def _check_units(session: Session, shares: list[ShareTerm]) -> set[uuid.UUID]:
    ids = {s.unit_id for s in shares}
    found = session.scalar(select(func.count()).where(Unit.id.in_(ids), Unit.retired_at.is_(None)))
    if found != len(ids):
        raise InvalidInput("shares: every unit must exist and be active", field="shares")
    return ids


def _check_users(
    session: Session, user_ids: list[uuid.UUID], units: set[uuid.UUID], field: str
) -> None:
    if not user_ids:
        return
    users = session.scalars(select(User).where(User.id.in_(set(user_ids)))).all()
    if len(users) != len(set(user_ids)) or any(
        not u.active or u.unit_id not in units for u in users
    ):
        raise InvalidInput(
            f"{field}: every user must be active and belong to a participating unit", field=field
        )


def _check_lead(actor: Actor, project: Project) -> None:
    if not (
        actor.user_id == project.lead_user_id
        or actor.manages_unit(project.lead_unit_id, Role.UNIT_MANAGER)
    ):
        raise PermissionDenied("only the project lead or the lead unit's manager may change it")


def snapshot(project: Project) -> dict[str, object]:
    """The project as the audit log keeps it."""
    return to_read(project).model_dump(mode="json")


def create_project(session: Session, actor: Actor, data: ProjectCreate) -> Project:
    """Start a joint project led by a unit (its unit manager, project lead, or an admin)."""
    if not actor.manages_unit(data.lead_unit_id, Role.UNIT_MANAGER, Role.PROJECT_LEAD):
        raise PermissionDenied(
            "creating a project needs unit_manager or project_lead in the lead unit"
        )
    if session.scalar(select(func.count()).where(Project.code == data.code)):
        raise Conflict("code: a project with this code exists", field="code")
    units = _check_units(session, data.shares)
    if data.lead_unit_id not in units:
        raise InvalidInput("shares: the lead unit must hold a cost-share term", field="shares")
    _check_users(session, [data.lead_user_id], {data.lead_unit_id}, "lead_user_id")
    _check_users(session, data.member_ids, units, "member_ids")
    project = Project(
        name=data.name,
        code=data.code,
        description=data.description,
        lead_unit_id=data.lead_unit_id,
        lead_user_id=data.lead_user_id,
        start_date=data.start_date,
        end_date=data.end_date,
        currency=data.currency,
        shares=[],
        members=[ProjectMember(user_id=data.lead_user_id)],
    )
    in_force, proposed = invitations.split_terms(actor, project, data.shares)
    invitations.set_shares(project, in_force)
    session.add(project)
    session.flush()
    ledger.open_ledger(session, project.id, project.currency)
    record(
        session,
        actor,
        "project.create",
        project,
        unit_id=project.lead_unit_id,
        after=snapshot(project),
    )
    _propose(session, actor, project, proposed, data.member_ids)
    return project


def _propose(
    session: Session,
    actor: Actor,
    project: Project,
    proposed: dict[uuid.UUID, int],
    member_ids: list[uuid.UUID],
) -> None:
    """Enrol the users the actor may enrol; invite the rest and the proposed shares."""
    found = session.execute(select(User.id, User.unit_id).where(User.id.in_(member_ids)))
    units = dict(found.tuples().all())
    by_unit: dict[uuid.UUID, list[uuid.UUID]] = {}
    have = {m.user_id for m in project.members}
    for user_id in dict.fromkeys(member_ids):
        unit = units[user_id]
        if unit in proposed or not invitations.consents(actor, project, unit):
            by_unit.setdefault(unit, []).append(user_id)
        elif user_id not in have:
            project.members.append(ProjectMember(user_id=user_id))
    session.flush()
    for unit in sorted({*proposed, *by_unit}, key=str):
        invitations.invite(
            session,
            actor,
            project,
            unit,
            share_bp=proposed.get(unit),
            member_ids=by_unit.get(unit, ()),
        )


def lock_project(session: Session, project: Project) -> Project:
    """Lock ``project``'s row and re-read it with its shares and members.

    ``FOR NO KEY UPDATE``: bookings and ledger rows that merely reference the project are
    not held up by it (PostgreSQL; SQLite serialises whole transactions).
    """
    session.flush()  # re-reading must not drop this transaction's unflushed changes
    session.scalar(  # fetching the row is what re-reads it into ``project``
        select(Project)
        .options(selectinload(Project.shares), selectinload(Project.members))
        .where(Project.id == project.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return project


def require_open(project: Project) -> None:
    """Refuse a change of a closed project (409 ``wrong_status``)."""
    if project.closed_at is not None:
        raise Conflict(
            f"the project is closed (since {project.closed_at.isoformat()})", code="wrong_status"
        )


def update_project(
    session: Session, actor: Actor, project_id: uuid.UUID, data: ProjectUpdate
) -> Project:
    """Change a project's description, period, lead user or cost-share terms."""
    project = lock_project(session, get_project(session, actor, project_id))
    _check_lead(actor, project)
    require_open(project)
    before = snapshot(project)
    start = data.start_date or project.start_date
    end = data.end_date or project.end_date
    if end < start:
        raise InvalidInput("end_date: must not be before start_date", field="end_date")
    if data.shares is not None:
        units = _check_units(session, data.shares)
        if project.lead_unit_id not in units:
            raise InvalidInput("shares: the lead unit must hold a cost-share term", field="shares")
        members = {m.user_id for m in project.members}
        _check_users(session, list(members), units, "shares")
        in_force, proposed = invitations.split_terms(actor, project, data.shares)
        invitations.set_shares(project, in_force)
        session.flush()
        invitations.withdraw_stale(session, actor, project, proposed)
        for unit, bp in proposed.items():
            invitations.invite(session, actor, project, unit, share_bp=bp)
    if data.lead_user_id is not None:
        _check_users(session, [data.lead_user_id], {project.lead_unit_id}, "lead_user_id")
        project.lead_user_id = data.lead_user_id
        if all(m.user_id != data.lead_user_id for m in project.members):
            project.members.append(ProjectMember(user_id=data.lead_user_id))
    for key in ("name", "description", "start_date", "end_date"):
        value = getattr(data, key)
        if value is not None:
            setattr(project, key, value)
    session.flush()
    record(
        session,
        actor,
        "project.update",
        project,
        unit_id=project.lead_unit_id,
        before=before,
        after=snapshot(project),
    )
    return project


def add_member(
    session: Session, actor: Actor, project_id: uuid.UUID, user_id: uuid.UUID
) -> Project:
    """Add a user of a participating unit to the project (another unit's user is invited:
    a member once that unit's unit_manager accepts)."""
    project = lock_project(session, get_project(session, actor, project_id))
    _check_lead(actor, project)
    invited = invitations.pending(session, project)
    _check_users(session, [user_id], {s.unit_id for s in project.shares} | set(invited), "user_id")
    unit_id = session.scalar(select(User.unit_id).where(User.id == user_id))
    assert unit_id is not None  # _check_users found the user
    if all(m.user_id != user_id for m in project.members) and (
        unit_id in invited or not invitations.consents(actor, project, unit_id)
    ):
        invitations.invite(session, actor, project, unit_id, member_ids=[user_id])
    elif all(m.user_id != user_id for m in project.members):
        before = snapshot(project)
        project.members.append(ProjectMember(user_id=user_id))
        session.flush()
        record(
            session,
            actor,
            "project.member_add",
            project,
            unit_id=project.lead_unit_id,
            before=before,
            after=snapshot(project),
        )
    return project


def remove_member(
    session: Session, actor: Actor, project_id: uuid.UUID, user_id: uuid.UUID
) -> Project:
    """Remove a user from the project (not the lead)."""
    project = lock_project(session, get_project(session, actor, project_id))
    _check_lead(actor, project)
    if user_id == project.lead_user_id:
        raise Conflict("user_id: the project lead cannot be removed", field="user_id")
    if not any(m.user_id == user_id for m in project.members):
        raise NotFound("no such member")
    before = snapshot(project)
    project.members = [m for m in project.members if m.user_id != user_id]
    session.flush()
    record(
        session,
        actor,
        "project.member_remove",
        project,
        unit_id=project.lead_unit_id,
        before=before,
        after=snapshot(project),
    )
    return project


def close_project(session: Session, actor: Actor, project_id: uuid.UUID, reason: str) -> Project:
    """Close a project: it stays for history and its ledger, but takes no new requests."""
    project = lock_project(session, get_project(session, actor, project_id))
    _check_lead(actor, project)
    require_open(project)
    before = snapshot(project)
    project.closed_at = utcnow()
    session.flush()
    record(
        session,
        actor,
        "project.close",
        project,
        unit_id=project.lead_unit_id,
        before=before,
        after=snapshot(project),
        reason=reason,
    )
    return project
