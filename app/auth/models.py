"""Users, their roles, and their API keys (stored hashed, shown once)."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.base import Base, DateTimeUTC
from app.units.models import Unit


class Role(enum.StrEnum):
    """What a user may do; a user holds one or more roles inside their unit."""

    ADMIN = "admin"
    UNIT_MANAGER = "unit_manager"
    RESOURCE_MANAGER = "resource_manager"
    REQUESTER = "requester"
    PROJECT_LEAD = "project_lead"
    AUDITOR = "auditor"


class User(Base):
    """A person who calls the API on behalf of their unit."""

    __tablename__ = "users"

    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320), unique=True)
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    unit: Mapped[Unit] = relationship(lazy="raise")


class ApiKey(Base):
    """A bearer token. Only its SHA-256 is stored; ``prefix`` lets a human tell keys apart."""

    __tablename__ = "api_keys"

    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    prefix: Mapped[str] = mapped_column(String(16))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    expires_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
    """After this instant the key answers 401 like a revoked one (None: never expires)."""

    user: Mapped[User] = relationship(lazy="raise")
