"""Consent to join a project: another unit's cost share and its users' membership.

A project's lead may propose any split of the cost, but a term that asks more of another
unit than it has agreed to, and the enrolment of another unit's users, take effect only
when that unit's unit_manager accepts (``POST /project-invitations/{id}/accept``).
Until then the proposal waits in a pending ``ProjectInvitation``, the lead unit carries
the proposed share (so the shares in force always sum to 10,000 bp and no cost is split
onto a unit that has not agreed), and the users are not members. A term that asks a unit
for no more than it already carries, and anything proposed by that unit's own
unit_manager (or an admin), is in force at once.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.audit.services import record
from app.auth.actor import Actor
from app.auth.models import Role, User
from app.base import utcnow
from app.errors import Conflict, NotFound, PermissionDenied
from app.projects.models import (
    InvitationStatus,
    Project,
    ProjectInvitation,
    ProjectMember,
    ProjectShare,
)
from app.projects.schemas import InvitationRead, ShareTerm


def consents(actor: Actor, project: Project, unit_id: uuid.UUID) -> bool:
    """Whether the actor's word binds ``unit_id`` (its unit_manager, an admin, or the lead)."""
    return unit_id == project.lead_unit_id or actor.manages_unit(unit_id, Role.UNIT_MANAGER)


def split_terms(
    actor: Actor, project: Project, terms: list[ShareTerm]
) -> tuple[dict[uuid.UUID, int], dict[uuid.UUID, int]]:
    """The shares in force after a proposal, and the terms that wait for consent.

    A unit keeps what it carries now until it accepts more; the lead unit carries the rest.
    """
    current = {s.unit_id: s.share_bp for s in project.shares}
    in_force: dict[uuid.UUID, int] = {}
    proposed: dict[uuid.UUID, int] = {}
    for term in terms:
        unit = term.unit_id
        if unit == project.lead_unit_id:
            continue
        if consents(actor, project, unit) or term.share_bp <= current.get(unit, -1):
            in_force[unit] = term.share_bp
        else:
            proposed[unit] = term.share_bp
            if unit in current:
                in_force[unit] = current[unit]
    in_force[project.lead_unit_id] = 10_000 - sum(in_force.values())
    return in_force, proposed


def set_shares(project: Project, in_force: Mapping[uuid.UUID, int]) -> None:
    """Make ``project.shares`` the terms in force (rows kept where the unit stays)."""
    by_unit = {s.unit_id: s for s in project.shares}
    project.shares = [s for s in project.shares if s.unit_id in in_force]
    for unit, bp in in_force.items():
        if unit in by_unit:
            by_unit[unit].share_bp = bp
        else:
            project.shares.append(ProjectShare(unit_id=unit, share_bp=bp))


def pending(session: Session, project: Project) -> dict[uuid.UUID, ProjectInvitation]:
    """The project's pending invitations, by invited unit."""
    rows = session.scalars(
        select(ProjectInvitation).where(
            ProjectInvitation.project_id == project.id,
            ProjectInvitation.status == InvitationStatus.PENDING,
        )
    )
    return {i.unit_id: i for i in rows}


def invite(
    session: Session,
    actor: Actor,
    project: Project,
    unit_id: uuid.UUID,
    *,
    share_bp: int | None = None,
    member_ids: Iterable[uuid.UUID] = (),
) -> ProjectInvitation:
    """Open (or add to) the pending invitation of ``unit_id`` to ``project``."""
    invitation = pending(session, project).get(unit_id)
    if invitation is None:
        invitation = ProjectInvitation(
            project_id=project.id, unit_id=unit_id, member_ids=[], invited_by=actor.user_id
        )
        session.add(invitation)
    if share_bp is not None:
        invitation.share_bp = share_bp
    invitation.member_ids = sorted({*invitation.member_ids, *(str(u) for u in member_ids)})
    session.flush()
    record(
        session,
        actor,
        "project.invite",
        invitation,
        unit_id=unit_id,
        after=to_read(invitation).model_dump(mode="json"),
    )
    return invitation


def withdraw_stale(
    session: Session, actor: Actor, project: Project, proposed: Mapping[uuid.UUID, int]
) -> None:
    """After new terms: a pending share not proposed again is withdrawn (and the
    invitation with it when it enrols no one, or its unit leaves the project)."""
    units = {s.unit_id for s in project.shares} | set(proposed)
    for unit, invitation in pending(session, project).items():
        if unit not in proposed:
            invitation.share_bp = None
        if unit not in units or (invitation.share_bp is None and not invitation.member_ids):
            invitation.status = InvitationStatus.WITHDRAWN
            invitation.answered_at = utcnow()
            record(session, actor, "project.invitation_withdraw", invitation, unit_id=unit)
    session.flush()


def to_read(invitation: ProjectInvitation) -> InvitationRead:
    """The API view of an invitation."""
    return InvitationRead(
        id=invitation.id,
        project_id=invitation.project_id,
        unit_id=invitation.unit_id,
        share_bp=invitation.share_bp,
        member_ids=[uuid.UUID(u) for u in invitation.member_ids],
        status=InvitationStatus(invitation.status),
        invited_by=invitation.invited_by,
        answered_by=invitation.answered_by,
        answered_at=invitation.answered_at,
        created_at=invitation.created_at,
    )


def _get(session: Session, actor: Actor, invitation_id: uuid.UUID) -> ProjectInvitation:
    """An invitation the actor may see: of its unit, of a project its unit leads, or any
    for admins and auditors; others answer 404."""
    found = session.get(ProjectInvitation, invitation_id)
    if found is not None and not actor.sees_everything and actor.unit_id != found.unit_id:
        project = session.get(Project, found.project_id)
        if project is None or project.lead_unit_id != actor.unit_id:
            found = None
    if found is None:
        raise NotFound("no such invitation")
    return found


def get_invitation(session: Session, actor: Actor, invitation_id: uuid.UUID) -> InvitationRead:
    """One invitation (the invited unit, the lead unit, admins and auditors see it)."""
    return to_read(_get(session, actor, invitation_id))


def list_invitations(
    session: Session,
    actor: Actor,
    *,
    status: InvitationStatus | None,
    project_id: uuid.UUID | None,
    limit: int,
    offset: int,
) -> tuple[list[InvitationRead], int]:
    """Invitations to the actor's unit and from projects it leads (all for admins, auditors)."""
    query = select(ProjectInvitation)
    if not actor.sees_everything:
        led = select(Project.id).where(Project.lead_unit_id == actor.unit_id)
        query = query.where(
            or_(ProjectInvitation.unit_id == actor.unit_id, ProjectInvitation.project_id.in_(led))
        )
    if status is not None:
        query = query.where(ProjectInvitation.status == status)
    if project_id is not None:
        query = query.where(ProjectInvitation.project_id == project_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(ProjectInvitation.created_at.desc(), ProjectInvitation.id)
        .limit(limit)
        .offset(offset)
    )
    return [to_read(i) for i in rows], total


def _answerable(
    session: Session, actor: Actor, invitation_id: uuid.UUID
) -> tuple[ProjectInvitation, Project]:
    """The invitation and its project, locked, if the actor may answer for the unit."""
    from app.projects.services import lock_project, require_open

    invitation = _get(session, actor, invitation_id)
    if not actor.manages_unit(invitation.unit_id, Role.UNIT_MANAGER):
        raise PermissionDenied("only the invited unit's unit_manager answers an invitation")
    project = session.get(Project, invitation.project_id)
    assert project is not None  # the foreign key holds it
    lock_project(session, project)
    session.refresh(invitation)
    if invitation.status != InvitationStatus.PENDING:
        raise Conflict(f"the invitation is {invitation.status}", code="wrong_status")
    require_open(project)
    return invitation, project


def _enrol(session: Session, project: Project, invitation: ProjectInvitation) -> None:
    """Make the invited users members (those still active in the invited unit)."""
    wanted = {uuid.UUID(u) for u in invitation.member_ids}
    have = {m.user_id for m in project.members}
    users = session.scalars(
        select(User).where(User.id.in_(wanted - have), User.unit_id == invitation.unit_id)
    )
    project.members.extend(ProjectMember(user_id=u.id) for u in users if u.active)


def accept(session: Session, actor: Actor, invitation_id: uuid.UUID) -> InvitationRead:
    """The invited unit takes the proposed share (the lead unit's share shrinks by as
    much) and its invited users become members."""
    from app.projects.services import snapshot

    invitation, project = _answerable(session, actor, invitation_id)
    before = snapshot(project)
    if invitation.share_bp is not None:
        in_force = {s.unit_id: s.share_bp for s in project.shares}
        in_force[invitation.unit_id] = invitation.share_bp
        in_force.pop(project.lead_unit_id, None)
        lead = 10_000 - sum(in_force.values())
        if lead < 0:  # cannot happen while proposals go through split_terms; never store it
            raise Conflict("the shares in force leave no room for this share", field="share_bp")
        set_shares(project, {**in_force, project.lead_unit_id: lead})
    _enrol(session, project, invitation)
    invitation.status = InvitationStatus.ACCEPTED
    invitation.answered_by, invitation.answered_at = actor.user_id, utcnow()
    session.flush()
    record(
        session,
        actor,
        "project.invitation_accept",
        project,
        unit_id=invitation.unit_id,
        before=before,
        after={**snapshot(project), "invitation_id": str(invitation.id)},
    )
    return to_read(invitation)


def decline(
    session: Session, actor: Actor, invitation_id: uuid.UUID, reason: str
) -> InvitationRead:
    """The invited unit says no: nothing changes, the lead unit keeps the share."""
    invitation, _ = _answerable(session, actor, invitation_id)
    invitation.status = InvitationStatus.DECLINED
    invitation.answered_by, invitation.answered_at = actor.user_id, utcnow()
    session.flush()
    record(
        session,
        actor,
        "project.invitation_decline",
        invitation,
        unit_id=invitation.unit_id,
        after=to_read(invitation).model_dump(mode="json"),
        reason=reason,
    )
    return to_read(invitation)
