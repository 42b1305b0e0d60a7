"""The shared catalog: skills, device types, and the resources units lend (experts, devices).

Experts and devices share one ``resources`` table (single-table inheritance) so that
bookings, blackouts, agreement scopes and feeds point at one key, and one exclusion
constraint can keep a resource's bookings apart whatever its kind.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.base import Base, DateTimeUTC


class Skill(Base):
    """A node of the skill taxonomy (``parent_id`` makes the tree)."""

    __tablename__ = "skills"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("skills.id"), default=None)
    description: Mapped[str] = mapped_column(Text, default="")
    retired_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class DeviceType(Base):
    """A kind of device, with the buffers and check-in grace that apply to every such device."""

    __tablename__ = "device_types"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    setup_minutes: Mapped[int] = mapped_column(Integer, default=0)
    teardown_minutes: Mapped[int] = mapped_column(Integer, default=0)
    checkin_grace_minutes: Mapped[int] = mapped_column(Integer, default=15)
    retired_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class ResourceKind(enum.StrEnum):
    """Whether a resource is a person or a piece of equipment."""

    EXPERT = "expert"
    DEVICE = "device"


class Resource(Base):
    """Something a unit lends: an expert or a device.

    Money columns are integer minor units of ``currency`` (BigInteger, never float).
    ``working_hours`` maps weekday (``mon`` … ``sun``) to wall-clock ranges in
    ``time_zone``, e.g. ``{"mon": [["09:00", "12:30"], ["13:30", "17:00"]]}``; a device
    with no working hours is available around the clock except in blackouts.
    """

    __tablename__ = "resources"
    __table_args__ = (
        CheckConstraint("lending_cap_bp BETWEEN 0 AND 10000", name="lending_cap_range"),
        CheckConstraint("hourly_rate >= 0", name="hourly_rate_nonneg"),
        CheckConstraint("daily_rate >= 0", name="daily_rate_nonneg"),
    )

    kind: Mapped[str] = mapped_column(String(16), index=True)
    unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    time_zone: Mapped[str] = mapped_column(String(64))
    working_hours: Mapped[dict[str, list[list[str]]] | None] = mapped_column(JSON, default=None)
    lending_cap_bp: Mapped[int] = mapped_column(Integer, default=10000)
    """Share of working time other units may book, in basis points (10000 = all of it)."""
    hourly_rate: Mapped[int] = mapped_column(BigInteger, default=0)
    """Hourly rate in minor units of ``currency``."""
    daily_rate: Mapped[int] = mapped_column(BigInteger, default=0)
    """Daily rate in minor units of ``currency`` (devices)."""
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    retired_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)

    # expert-only
    email: Mapped[str | None] = mapped_column(String(320), default=None)
    # device-only
    device_type_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("device_types.id"), default=None, index=True
    )
    location: Mapped[str | None] = mapped_column(String(200), default=None)
    operator_skill_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("skills.id"), default=None
    )

    skills: Mapped[list[ExpertSkill]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="ExpertSkill.skill_id"
    )
    device_type: Mapped[DeviceType | None] = relationship(lazy="raise")

    __mapper_args__ = {"polymorphic_on": "kind", "polymorphic_abstract": True}


class Expert(Resource):
    """A person lent for their skills."""

    __mapper_args__ = {"polymorphic_identity": ResourceKind.EXPERT.value}


class Device(Resource):
    """A piece of equipment lent by type."""

    __mapper_args__ = {"polymorphic_identity": ResourceKind.DEVICE.value}


class ExpertSkill(Base):
    """An expert holds a skill at a level from 1 (novice) to 5 (authority)."""

    __tablename__ = "expert_skills"
    __table_args__ = (
        UniqueConstraint("resource_id", "skill_id"),
        CheckConstraint("level BETWEEN 1 AND 5", name="skill_level_range"),
    )

    resource_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), index=True
    )
    skill_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("skills.id"), index=True)
    level: Mapped[int] = mapped_column(SmallInteger)


class UnavailabilityKind(enum.StrEnum):
    """Why a resource is unavailable: an expert's leave, a device's maintenance, an import."""

    LEAVE = "leave"
    MAINTENANCE = "maintenance"
    IMPORTED = "imported"


class Unavailability(Base):
    """A UTC interval ``[start, end)`` in which a resource cannot be booked."""

    __tablename__ = "unavailability"
    __table_args__ = (CheckConstraint('"end" > start', name="unavailability_positive"),)

    resource_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("resources.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    start: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    end: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    note: Mapped[str] = mapped_column(Text, default="")
