"""HTTP routes for joint projects."""

from __future__ import annotations

import uuid

from litestar import Controller
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.pagination import Limit, Offset, Search
from app.problems import LIST, READ, WRITE
from app.projects import invitations, services
from app.projects.models import InvitationStatus
from app.projects.schemas import (
    InvitationRead,
    MemberAdd,
    ProjectCreate,
    ProjectRead,
    ProjectUpdate,
)
from app.routing import delete, get, patch, post
from app.schemas import IsoDate, Page, Reason


class ProjectController(Controller):
    """Joint projects; participating units, admins and auditors see them."""

    path = "/projects"
    tags = ["projects"]

    @get("/", responses=LIST, summary="List projects the caller's unit takes part in")
    def list_projects(
        self,
        actor: Actor,
        db_session: Session,
        limit: Limit = 50,
        offset: Offset = 0,
        unit_id: uuid.UUID | None = None,
        active_on: IsoDate | None = None,
        include_closed: bool = False,
        q: Search = None,
    ) -> Page[ProjectRead]:
        rows, total = services.list_projects(
            db_session,
            actor,
            limit=limit,
            offset=offset,
            unit_id=unit_id,
            active_on=active_on,
            include_closed=include_closed,
            q=q,
        )
        return Page[ProjectRead](
            items=[services.to_read(p) for p in rows], total=total, limit=limit, offset=offset
        )

    @post("/", responses=WRITE, summary="Start a joint project")
    def create_project(self, actor: Actor, db_session: Session, data: ProjectCreate) -> ProjectRead:
        return services.to_read(services.create_project(db_session, actor, data))

    @get("/{project_id:uuid}", responses=READ, summary="One project")
    def get_project(self, actor: Actor, db_session: Session, project_id: uuid.UUID) -> ProjectRead:
        return services.to_read(services.get_project(db_session, actor, project_id))

    @patch("/{project_id:uuid}", responses=WRITE, summary="Change a project")
    def update_project(
        self, actor: Actor, db_session: Session, project_id: uuid.UUID, data: ProjectUpdate
    ) -> ProjectRead:
        return services.to_read(services.update_project(db_session, actor, project_id, data))

    @post("/{project_id:uuid}/members", status_code=200, responses=WRITE, summary="Add a member")
    def add_member(
        self, actor: Actor, db_session: Session, project_id: uuid.UUID, data: MemberAdd
    ) -> ProjectRead:
        return services.to_read(services.add_member(db_session, actor, project_id, data.user_id))

    @delete(
        "/{project_id:uuid}/members/{user_id:uuid}",
        status_code=200,
        responses=WRITE,
        summary="Remove a member",
    )
    def remove_member(
        self, actor: Actor, db_session: Session, project_id: uuid.UUID, user_id: uuid.UUID
    ) -> ProjectRead:
        return services.to_read(services.remove_member(db_session, actor, project_id, user_id))

    @post("/{project_id:uuid}/close", status_code=200, responses=WRITE, summary="Close a project")
    def close_project(
        self, actor: Actor, db_session: Session, project_id: uuid.UUID, data: Reason
    ) -> ProjectRead:
        return services.to_read(services.close_project(db_session, actor, project_id, data.reason))


class ProjectInvitationController(Controller):
    """Invitations to join a project with a cost share or users; the invited unit's
    unit_manager accepts or declines. The invited unit, the lead unit, admins and
    auditors see them."""

    path = "/project-invitations"
    tags = ["projects"]

    @get("/", responses=LIST, summary="Invitations to the caller's unit and from its projects")
    def list_invitations(
        self,
        actor: Actor,
        db_session: Session,
        limit: Limit = 50,
        offset: Offset = 0,
        status: InvitationStatus | None = None,
        project_id: uuid.UUID | None = None,
    ) -> Page[InvitationRead]:
        items, total = invitations.list_invitations(
            db_session, actor, status=status, project_id=project_id, limit=limit, offset=offset
        )
        return Page[InvitationRead](items=items, total=total, limit=limit, offset=offset)

    @get("/{invitation_id:uuid}", responses=READ, summary="One invitation")
    def get_invitation(
        self, actor: Actor, db_session: Session, invitation_id: uuid.UUID
    ) -> InvitationRead:
        return invitations.get_invitation(db_session, actor, invitation_id)

    @post(
        "/{invitation_id:uuid}/accept",
        status_code=200,
        responses=WRITE,
        summary="Accept: the share takes effect, the users become members",
    )
    def accept(self, actor: Actor, db_session: Session, invitation_id: uuid.UUID) -> InvitationRead:
        return invitations.accept(db_session, actor, invitation_id)

    @post(
        "/{invitation_id:uuid}/decline",
        status_code=200,
        responses=WRITE,
        summary="Decline: nothing of the invitation takes effect",
    )
    def decline(
        self, actor: Actor, db_session: Session, invitation_id: uuid.UUID, data: Reason
    ) -> InvitationRead:
        return invitations.decline(db_session, actor, invitation_id, data.reason)
