"""API shapes of users and API keys."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import EmailStr, Field

from app.auth.models import Role
from app.schemas import Name, Schema, UtcDatetime


class UserCreate(Schema):
    """A new user of a unit."""

    unit_id: uuid.UUID
    name: Name
    email: EmailStr
    roles: list[Role] = Field(min_length=1, max_length=6)


class UserUpdate(Schema):
    """Fields of a user that can change; absent fields stay as they are."""

    name: Name | None = None
    roles: list[Role] | None = Field(default=None, min_length=1, max_length=6)
    active: bool | None = None


class UserRead(Schema):
    """A user as the API shows it."""

    id: uuid.UUID
    unit_id: uuid.UUID
    name: str
    email: str
    roles: list[Role]
    active: bool
    created_at: datetime


class ApiKeyCreate(Schema):
    """A label for a new key (e.g. the machine it goes on) and, optionally, when it expires."""

    name: str = Field(default="", max_length=200)
    expires_at: UtcDatetime | None = Field(
        default=None,
        description="After this instant the key is refused (401). Required, and at most "
        "COPOOL_API_KEY_MAX_DAYS ahead, when the deployment sets a maximum lifetime.",
    )


class ApiKeyRead(Schema):
    """An API key without its secret."""

    id: uuid.UUID
    user_id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    expires_at: datetime | None


class ApiKeyIssued(ApiKeyRead):
    """A newly issued key: ``token`` is shown this once and never again."""

    token: str
