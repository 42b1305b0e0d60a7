"""Small factories for app tests: each writes through the services as the system actor.

Every factory takes an open session and keyword overrides, and returns the ORM object.
Names, codes and emails are unique by default, so factories can be called freely.
"""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.agreements.models import AgreementScope, SharingAgreement
from app.agreements.schemas import AgreementCreate
from app.agreements.services import create_agreement
from app.auth import services as auth
from app.auth.actor import SYSTEM
from app.auth.models import ApiKey, Role, User
from app.auth.schemas import UserCreate
from app.catalog import services as catalog
from app.catalog.models import Device, DeviceType, Expert, Skill, Unavailability
from app.catalog.schemas import (
    DeviceCreate,
    DeviceTypeCreate,
    ExpertCreate,
    SkillCreate,
    SkillLevel,
    UnavailabilityCreate,
)
from app.projects.models import Project
from app.projects.schemas import ProjectCreate, ShareTerm
from app.projects.services import create_project
from app.units.models import Unit
from app.units.schemas import UnitCreate
from app.units.services import create_unit

_seq = itertools.count(1)

HOURS = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
TODAY = datetime.now(UTC).date()


def n() -> int:
    """A number not handed out before in this process."""
    return next(_seq)


def unit(s: Session, code: str | None = None, **kw: Any) -> Unit:
    """A unit."""
    code = code or f"U{n()}"
    return create_unit(s, SYSTEM, UnitCreate(name=kw.pop("name", f"Unit {code}"), code=code, **kw))


def user(s: Session, unit_id: uuid.UUID, *roles: Role, **kw: Any) -> User:
    """A user of ``unit_id`` with ``roles`` (requester when none are given)."""
    i = n()
    return auth.create_user(
        s,
        SYSTEM,
        UserCreate(
            unit_id=unit_id,
            name=kw.pop("name", f"User {i}"),
            email=kw.pop("email", f"user{i}@example.org"),
            roles=list(roles) or [Role.REQUESTER],
            **kw,
        ),
    )


def key(s: Session, user_id: uuid.UUID, name: str = "") -> tuple[ApiKey, str]:
    """An API key of a user and its token."""
    return auth.issue_key(s, SYSTEM, user_id, name)


def skill(s: Session, **kw: Any) -> Skill:
    """A skill of the taxonomy."""
    return catalog.create_skill(s, SYSTEM, SkillCreate(name=kw.pop("name", f"Skill {n()}"), **kw))


def device_type(s: Session, **kw: Any) -> DeviceType:
    """A device type."""
    return catalog.create_device_type(
        s, SYSTEM, DeviceTypeCreate(name=kw.pop("name", f"Device type {n()}"), **kw)
    )


def expert(
    s: Session, unit_id: uuid.UUID, skills: dict[uuid.UUID, int] | None = None, **kw: Any
) -> Expert:
    """An expert of ``unit_id`` holding ``skills`` (skill id → level)."""
    data: dict[str, Any] = {
        "unit_id": unit_id,
        "name": f"Expert {n()}",
        "time_zone": "Europe/Berlin",
        "working_hours": HOURS,
        "skills": [SkillLevel(skill_id=k, level=v) for k, v in (skills or {}).items()],
        "hourly_rate": 9000,
    }
    data.update(kw)
    return catalog.create_expert(s, SYSTEM, ExpertCreate(**data))


def device(s: Session, unit_id: uuid.UUID, device_type_id: uuid.UUID, **kw: Any) -> Device:
    """A device of ``unit_id`` of a type."""
    data: dict[str, Any] = {
        "unit_id": unit_id,
        "name": f"Device {n()}",
        "device_type_id": device_type_id,
        "location": "Depot 1",
        "time_zone": "America/New_York",
        "hourly_rate": 2500,
        "daily_rate": 20000,
    }
    data.update(kw)
    return catalog.create_device(s, SYSTEM, DeviceCreate(**data))


def period(s: Session, resource: Expert | Device, days_ahead: int = 10) -> Unavailability:
    """A leave period (experts) or blackout (devices) of two days."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=days_ahead)
    return catalog.add_unavailability(
        s,
        SYSTEM,
        type(resource),
        resource.id,
        UnavailabilityCreate(start=start, end=start + timedelta(days=2), note="private note"),
    )


def agreement(
    s: Session,
    lender: uuid.UUID,
    borrower: uuid.UUID,
    scope: AgreementScope = AgreementScope.ALL,
    **kw: Any,
) -> SharingAgreement:
    """An agreement lender → borrower, valid from a month ago for a year."""
    data: dict[str, Any] = {
        "lender_unit_id": lender,
        "borrower_unit_id": borrower,
        "scope": scope,
        "valid_from": TODAY - timedelta(days=30),
        "valid_until": TODAY + timedelta(days=365),
    }
    data.update(kw)
    return create_agreement(s, SYSTEM, AgreementCreate(**data))


def project(
    s: Session,
    lead_unit: uuid.UUID,
    lead_user: uuid.UUID,
    shares: dict[uuid.UUID, int] | None = None,
    **kw: Any,
) -> Project:
    """A joint project led by ``lead_unit`` (all cost on the lead unit unless ``shares``)."""
    data: dict[str, Any] = {
        "name": f"Project {n()}",
        "code": f"P-{n()}",
        "lead_unit_id": lead_unit,
        "lead_user_id": lead_user,
        "start_date": TODAY,
        "end_date": TODAY + timedelta(days=200),
        "currency": "EUR",
        "shares": [
            ShareTerm(unit_id=u, share_bp=bp) for u, bp in (shares or {lead_unit: 10_000}).items()
        ],
    }
    data.update(kw)
    return create_project(s, SYSTEM, ProjectCreate(**data))


def iso(d: date | datetime) -> str:
    """ISO 8601 text of a date or an aware datetime."""
    return d.isoformat()
