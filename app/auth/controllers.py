"""HTTP routes for users and API keys."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller
from litestar.params import Parameter
from sqlalchemy.orm import Session

from app.auth import services
from app.auth.actor import Actor
from app.auth.models import Role
from app.auth.schemas import (
    ApiKeyCreate,
    ApiKeyIssued,
    ApiKeyRead,
    UserCreate,
    UserRead,
    UserUpdate,
)
from app.pagination import Limit, Offset, Search, page, page_of
from app.problems import LIST, READ, WRITE
from app.routing import get, patch, post
from app.schemas import Page, Reason
from app.settings import Settings


class UserController(Controller):
    """Users of units and their API keys."""

    path = "/users"
    tags = ["users"]

    @get("/me", responses=READ, summary="The calling user")
    def me(self, actor: Actor, db_session: Session) -> UserRead:
        return UserRead.model_validate(services.get_user(db_session, actor, actor.user_id))

    @get("/", responses=LIST, summary="List users the caller may see")
    def list_users(
        self,
        actor: Actor,
        db_session: Session,
        limit: Limit = 50,
        offset: Offset = 0,
        unit_id: uuid.UUID | None = None,
        role: Role | None = None,
        active: bool | None = None,
        q: Search = None,
    ) -> Page[UserRead]:
        users, total = services.list_users(
            db_session,
            actor,
            limit=limit,
            offset=offset,
            unit_id=unit_id,
            role=role,
            active=active,
            q=q,
        )
        return page(UserRead, users, total, limit, offset)

    @post("/", responses=WRITE, summary="Create a user")
    def create_user(self, actor: Actor, db_session: Session, data: UserCreate) -> UserRead:
        return UserRead.model_validate(services.create_user(db_session, actor, data))

    @get("/{user_id:uuid}", responses=READ, summary="One user")
    def get_user(self, actor: Actor, db_session: Session, user_id: uuid.UUID) -> UserRead:
        return UserRead.model_validate(services.get_user(db_session, actor, user_id))

    @patch("/{user_id:uuid}", responses=WRITE, summary="Change a user's name, roles or status")
    def update_user(
        self, actor: Actor, db_session: Session, user_id: uuid.UUID, data: UserUpdate
    ) -> UserRead:
        return UserRead.model_validate(services.update_user(db_session, actor, user_id, data))

    @get("/{user_id:uuid}/api-keys", responses=READ, summary="A user's API keys (no secrets)")
    def list_keys(
        self,
        actor: Actor,
        db_session: Session,
        user_id: uuid.UUID,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[ApiKeyRead]:
        return page_of(ApiKeyRead, services.list_keys(db_session, actor, user_id), limit, offset)

    @post("/{user_id:uuid}/api-keys", responses=WRITE, summary="Issue an API key (shown once)")
    def issue_key(
        self,
        actor: Actor,
        db_session: Session,
        settings: Settings,
        user_id: uuid.UUID,
        data: ApiKeyCreate,
    ) -> ApiKeyIssued:
        key, token = services.issue_key(
            db_session,
            actor,
            user_id,
            data.name,
            expires_at=data.expires_at,
            max_days=settings.api_key_max_days,
        )
        return ApiKeyIssued(**ApiKeyRead.model_validate(key).model_dump(), token=token)


class ApiKeyController(Controller):
    """Revoking API keys."""

    path = "/api-keys"
    tags = ["users"]

    @post("/{key_id:uuid}/revoke", status_code=200, responses=WRITE, summary="Revoke an API key")
    def revoke(
        self,
        actor: Actor,
        db_session: Session,
        key_id: Annotated[uuid.UUID, Parameter(description="The key's id")],
        data: Reason,
    ) -> ApiKeyRead:
        return ApiKeyRead.model_validate(
            services.revoke_key(db_session, actor, key_id, data.reason)
        )
