"""Joint projects: who leads, who takes part and at what agreed share of the cost."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.base import Base, DateTimeUTC


class Project(Base):
    """A joint project of several units, with one currency for its ledger."""

    __tablename__ = "projects"
    __table_args__ = (CheckConstraint("end_date >= start_date", name="project_period"),)

    name: Mapped[str] = mapped_column(String(200))
    code: Mapped[str] = mapped_column(String(32), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    lead_unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    lead_user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    start_date: Mapped[date] = mapped_column(Date)
    end_date: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    closed_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)

    shares: Mapped[list[ProjectShare]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="ProjectShare.unit_id"
    )
    members: Mapped[list[ProjectMember]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="ProjectMember.user_id"
    )


class ProjectShare(Base):
    """A participating unit and its agreed share of the cost, in basis points (Σ = 10,000)."""

    __tablename__ = "project_shares"
    __table_args__ = (
        UniqueConstraint("project_id", "unit_id"),
        CheckConstraint("share_bp BETWEEN 0 AND 10000", name="share_range"),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    share_bp: Mapped[int] = mapped_column(Integer)


class ProjectMember(Base):
    """A user who works on the project (may request resources for it and read its ledger)."""

    __tablename__ = "project_members"
    __table_args__ = (UniqueConstraint("project_id", "user_id"),)

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)


class InvitationStatus(StrEnum):
    """Where an invitation stands: pending until the invited unit answers (or the lead
    withdraws it by proposing other terms)."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    WITHDRAWN = "withdrawn"


class ProjectInvitation(Base):
    """A project asks another unit to take a cost share or lets its users join.

    Nothing of it is in force until that unit's unit_manager accepts: meanwhile the lead
    unit carries the proposed share (``project_shares`` hold only what is in force) and the
    users are not members. One pending invitation per project and unit; later proposals
    update it.
    """

    __tablename__ = "project_invitations"
    __table_args__ = (
        CheckConstraint("share_bp IS NULL OR share_bp BETWEEN 0 AND 10000", name="share_range"),
        Index(
            "uq_project_invitations_pending",
            "project_id",
            "unit_id",
            unique=True,
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects.id", ondelete="CASCADE"), index=True
    )
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    share_bp: Mapped[int | None] = mapped_column(Integer, default=None)
    """The proposed cost share in basis points; null when only users are invited."""
    member_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    """Users of the unit to enrol (UUIDs as text)."""
    status: Mapped[str] = mapped_column(String(16), default=InvitationStatus.PENDING)
    invited_by: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"))
    answered_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), default=None)
    answered_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
