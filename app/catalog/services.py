"""The catalog: taxonomy (skills, device types) and the resources units lend.

Reading: a unit sees its own resources and those an active agreement shows it
(``app.agreements.services.visible_resources``); admins and auditors see all. Anything
else answers 404, so a borrower cannot even learn that a hidden resource exists.
Writing: the resource's own unit's ``unit_manager`` or ``resource_manager``, or an admin.
Taxonomy (skills, device types) is readable by everyone and written by admins.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session, selectinload

from app.agreements.services import visible_resources
from app.audit.services import record, snapshot
from app.auth.actor import Actor
from app.auth.models import Role
from app.base import utcnow
from app.catalog.models import (
    Device,
    DeviceType,
    Expert,
    ExpertSkill,
    Resource,
    ResourceKind,
    Skill,
    Unavailability,
    UnavailabilityKind,
)
from app.catalog.schemas import (
    DeviceCreate,
    DeviceTypeCreate,
    DeviceTypeUpdate,
    DeviceUpdate,
    ExpertCreate,
    ExpertUpdate,
    SkillCreate,
    SkillLevel,
    SkillUpdate,
    UnavailabilityCreate,
)
from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.units.models import Unit

R = TypeVar("R", bound=Resource)
Taxon = TypeVar("Taxon", Skill, DeviceType)

CATALOG_WRITERS = (Role.UNIT_MANAGER, Role.RESOURCE_MANAGER)


# --- taxonomy -------------------------------------------------------------------------


def _unique_name(
    session: Session, model: type[Any], name: str, exclude: uuid.UUID | None = None
) -> None:
    query = select(func.count()).where(func.lower(model.name) == name.lower())
    if exclude is not None:
        query = query.where(model.id != exclude)
    if session.scalar(query):
        raise Conflict(f"name: {name!r} exists already", field="name")


def get_taxon(session: Session, model: type[Taxon], taxon_id: uuid.UUID) -> Taxon:
    """A skill or device type by id."""
    taxon = session.get(model, taxon_id)
    if taxon is None:
        raise NotFound(f"no such {model.__tablename__[:-1].replace('_', ' ')}")
    return taxon


def list_taxa(
    session: Session,
    model: type[Taxon],
    *,
    limit: int,
    offset: int,
    q: str | None = None,
    include_retired: bool = False,
    parent_id: uuid.UUID | None = None,
) -> tuple[list[Taxon], int]:
    """Skills or device types by name."""
    query = select(model)
    if not include_retired:
        query = query.where(model.retired_at.is_(None))
    if q:
        query = query.where(func.lower(model.name).like(f"%{q.lower()}%"))
    if parent_id is not None and model is Skill:
        query = query.where(Skill.parent_id == parent_id)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(model.name).limit(limit).offset(offset)).all()
    return list(rows), total


def create_skill(session: Session, actor: Actor, data: SkillCreate) -> Skill:
    """Add a skill to the taxonomy (admins)."""
    actor.require(action="changing the skill taxonomy")
    _unique_name(session, Skill, data.name)
    if data.parent_id is not None and session.get(Skill, data.parent_id) is None:
        raise InvalidInput("parent_id: no such skill", field="parent_id")
    skill = Skill(name=data.name, parent_id=data.parent_id, description=data.description)
    session.add(skill)
    session.flush()
    record(session, actor, "skill.create", skill, unit_id=None, after=snapshot(skill))
    return skill


def create_device_type(session: Session, actor: Actor, data: DeviceTypeCreate) -> DeviceType:
    """Add a device type (admins)."""
    actor.require(action="changing the device types")
    _unique_name(session, DeviceType, data.name)
    device_type = DeviceType(**data.model_dump())
    session.add(device_type)
    session.flush()
    record(
        session, actor, "device_type.create", device_type, unit_id=None, after=snapshot(device_type)
    )
    return device_type


def update_taxon(
    session: Session,
    actor: Actor,
    model: type[Taxon],
    taxon_id: uuid.UUID,
    data: SkillUpdate | DeviceTypeUpdate,
) -> Taxon:
    """Rename or re-describe a skill or device type (admins)."""
    actor.require(action="changing the taxonomy")
    taxon = get_taxon(session, model, taxon_id)
    before = snapshot(taxon)
    changes = data.model_dump(exclude_unset=True, exclude_none=True)
    if "name" in changes:
        _unique_name(session, model, changes["name"], exclude=taxon.id)
    for key, value in changes.items():
        setattr(taxon, key, value)
    session.flush()
    record(
        session,
        actor,
        f"{model.__tablename__[:-1]}.update",
        taxon,
        unit_id=None,
        before=before,
        after=snapshot(taxon),
    )
    return taxon


def retire_taxon(
    session: Session, actor: Actor, model: type[Taxon], taxon_id: uuid.UUID, reason: str
) -> Taxon:
    """Retire a skill or device type: kept for history, offered for nothing new (admins)."""
    actor.require(action="changing the taxonomy")
    taxon = get_taxon(session, model, taxon_id)
    if taxon.retired_at is None:
        before = snapshot(taxon)
        taxon.retired_at = utcnow()
        session.flush()
        record(
            session,
            actor,
            f"{model.__tablename__[:-1]}.retire",
            taxon,
            unit_id=None,
            before=before,
            after=snapshot(taxon),
            reason=reason,
        )
    return taxon


# --- resources ------------------------------------------------------------------------


def _resource_snapshot(resource: Resource) -> dict[str, Any]:
    return snapshot(
        resource,
        skills=[{"skill_id": str(s.skill_id), "level": s.level} for s in resource.skills],
    )


def get_resource(session: Session, actor: Actor, model: type[R], resource_id: uuid.UUID) -> R:
    """An expert or device the actor may see; 404 otherwise (existence is not leaked)."""
    resource = session.scalar(
        select(model)
        .options(selectinload(model.skills))
        .where(model.id == resource_id, visible_resources(actor))
    )
    if resource is None:
        raise NotFound(f"no such {model.__name__.lower()}")
    return resource


def list_resources(
    session: Session,
    actor: Actor,
    model: type[R],
    *,
    limit: int,
    offset: int,
    unit_id: uuid.UUID | None = None,
    skill_id: uuid.UUID | None = None,
    min_level: int = 1,
    device_type_id: uuid.UUID | None = None,
    q: str | None = None,
    include_retired: bool = False,
) -> tuple[list[R], int]:
    """Experts or devices the actor may see, filtered, by name."""
    query = select(model).where(visible_resources(actor))
    if not include_retired:
        query = query.where(model.retired_at.is_(None))
    if unit_id is not None:
        query = query.where(model.unit_id == unit_id)
    if skill_id is not None:
        query = query.where(
            select(ExpertSkill.id)
            .where(
                ExpertSkill.resource_id == model.id,
                ExpertSkill.skill_id == skill_id,
                ExpertSkill.level >= min_level,
            )
            .exists()
        )
    if device_type_id is not None:
        query = query.where(model.device_type_id == device_type_id)
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(
            or_(
                func.lower(model.name).like(pattern),
                func.lower(func.coalesce(model.location, "")).like(pattern),
            )
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.options(selectinload(model.skills))
        .order_by(model.name, model.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def _check_writer(actor: Actor, unit_id: uuid.UUID) -> None:
    if not actor.manages_unit(unit_id, *CATALOG_WRITERS):
        raise PermissionDenied(
            "changing a unit's catalog needs unit_manager or resource_manager of that unit"
        )


def _check_unit(session: Session, unit_id: uuid.UUID) -> None:
    unit = session.get(Unit, unit_id)
    if unit is None or unit.retired_at is not None:
        raise InvalidInput("unit_id: no such active unit", field="unit_id")


def _check_skills(session: Session, skills: list[SkillLevel], field: str = "skills") -> None:
    ids = {s.skill_id for s in skills}
    if ids:
        found = session.scalar(
            select(func.count()).where(Skill.id.in_(ids), Skill.retired_at.is_(None))
        )
        if found != len(ids):
            raise InvalidInput(f"{field}: unknown or retired skill", field=field)


def _set_skills(resource: Resource, skills: list[SkillLevel]) -> None:
    current = {s.skill_id: s for s in resource.skills}
    wanted = {s.skill_id: s.level for s in skills}
    resource.skills = [s for s in resource.skills if s.skill_id in wanted]
    for skill_id, level in wanted.items():
        if skill_id in current:
            current[skill_id].level = level
        else:
            resource.skills.append(ExpertSkill(skill_id=skill_id, level=level))


def create_expert(session: Session, actor: Actor, data: ExpertCreate) -> Expert:
    """Add an expert to a unit's catalog."""
    _check_writer(actor, data.unit_id)
    _check_unit(session, data.unit_id)
    _check_skills(session, data.skills)
    expert = Expert(
        kind=ResourceKind.EXPERT.value,
        unit_id=data.unit_id,
        name=data.name,
        email=data.email,
        time_zone=data.time_zone,
        working_hours=data.working_hours,
        lending_cap_bp=data.lending_cap_bp,
        hourly_rate=data.hourly_rate,
        currency=data.currency,
        skills=[ExpertSkill(skill_id=s.skill_id, level=s.level) for s in data.skills],
    )
    session.add(expert)
    session.flush()
    record(
        session,
        actor,
        "expert.create",
        expert,
        unit_id=expert.unit_id,
        after=_resource_snapshot(expert),
        object_type="experts",
    )
    return expert


def _check_device_refs(
    session: Session, device_type_id: uuid.UUID | None, operator_skill_id: uuid.UUID | None
) -> None:
    if device_type_id is not None:
        device_type = session.get(DeviceType, device_type_id)
        if device_type is None or device_type.retired_at is not None:
            raise InvalidInput(
                "device_type_id: unknown or retired device type", field="device_type_id"
            )
    if operator_skill_id is not None and session.get(Skill, operator_skill_id) is None:
        raise InvalidInput("operator_skill_id: no such skill", field="operator_skill_id")


def create_device(session: Session, actor: Actor, data: DeviceCreate) -> Device:
    """Add a device to a unit's catalog."""
    _check_writer(actor, data.unit_id)
    _check_unit(session, data.unit_id)
    _check_device_refs(session, data.device_type_id, data.operator_skill_id)
    device = Device(kind=ResourceKind.DEVICE.value, skills=[], **data.model_dump())
    session.add(device)
    session.flush()
    record(
        session,
        actor,
        "device.create",
        device,
        unit_id=device.unit_id,
        after=_resource_snapshot(device),
        object_type="devices",
    )
    return device


def update_resource(
    session: Session,
    actor: Actor,
    model: type[R],
    resource_id: uuid.UUID,
    data: ExpertUpdate | DeviceUpdate,
) -> R:
    """Change an expert or device (its own unit's catalog writers, or an admin)."""
    resource = get_resource(session, actor, model, resource_id)
    _check_writer(actor, resource.unit_id)
    if resource.retired_at is not None:
        raise Conflict("the resource is retired")
    before = _resource_snapshot(resource)
    changes = data.model_dump(exclude_unset=True)
    never_null = ("name", "time_zone", "skills", "lending_cap_bp", "hourly_rate", "daily_rate")
    for key in (*never_null, "currency"):
        if key in changes and changes[key] is None:
            raise InvalidInput(f"{key}: may not be null", field=key)
    if isinstance(data, ExpertUpdate) and data.skills is not None:
        _check_skills(session, data.skills)
        _set_skills(resource, data.skills)
        changes.pop("skills")
    if isinstance(data, DeviceUpdate) and "operator_skill_id" in changes:
        _check_device_refs(session, None, changes["operator_skill_id"])
    if isinstance(data, ExpertUpdate) and changes.get("working_hours", 0) is None:
        raise InvalidInput("working_hours: an expert needs working hours", field="working_hours")
    for key, value in changes.items():
        setattr(resource, key, value)
    session.flush()
    record(
        session,
        actor,
        f"{model.__name__.lower()}.update",
        resource,
        unit_id=resource.unit_id,
        before=before,
        after=_resource_snapshot(resource),
        object_type=f"{model.__name__.lower()}s",
    )
    return resource


def retire_resource(
    session: Session, actor: Actor, model: type[R], resource_id: uuid.UUID, reason: str
) -> R:
    """Retire an expert or device: history keeps it; it can no longer be booked."""
    resource = get_resource(session, actor, model, resource_id)
    _check_writer(actor, resource.unit_id)
    if resource.retired_at is None:
        before = _resource_snapshot(resource)
        resource.retired_at = utcnow()
        session.flush()
        record(
            session,
            actor,
            f"{model.__name__.lower()}.retire",
            resource,
            unit_id=resource.unit_id,
            before=before,
            after=_resource_snapshot(resource),
            reason=reason,
            object_type=f"{model.__name__.lower()}s",
        )
    return resource


# --- unavailability -------------------------------------------------------------------


def list_unavailability(
    session: Session,
    actor: Actor,
    model: type[R],
    resource_id: uuid.UUID,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
) -> list[Unavailability]:
    """A resource's leave or blackouts. Borrowers see the periods (not the notes)."""
    resource = get_resource(session, actor, model, resource_id)
    query = select(Unavailability).where(Unavailability.resource_id == resource.id)
    if start is not None:
        query = query.where(Unavailability.end > start)
    if end is not None:
        query = query.where(Unavailability.start < end)
    rows = list(session.scalars(query.order_by(Unavailability.start)))
    if not (actor.sees_everything or resource.unit_id == actor.unit_id):
        for row in rows:
            session.expunge(row)
            row.note = ""
    return rows


def add_unavailability(
    session: Session,
    actor: Actor,
    model: type[R],
    resource_id: uuid.UUID,
    data: UnavailabilityCreate,
) -> Unavailability:
    """Record leave (experts) or a maintenance blackout (devices).

    A period over live bookings is refused (409 ``affects_bookings``) unless ``data.force``
    says to release them (``app.bookings.withdrawals``), in the same transaction.
    """
    from app.bookings import withdrawals  # bookings build on the catalog, not the reverse

    resource = get_resource(session, actor, model, resource_id)
    _check_writer(actor, resource.unit_id)
    kind = UnavailabilityKind.LEAVE if model is Expert else UnavailabilityKind.MAINTENANCE
    # Serialise with bookings of this resource: none may slip in between check and insert.
    session.scalar(select(Resource.id).where(Resource.id == resource.id).with_for_update())
    hit = withdrawals.overlapping(session, resource.id, [(data.start, data.end)])
    what = "the leave" if kind == UnavailabilityKind.LEAVE else "the blackout"
    withdrawals.refuse_unless_forced(hit, force=data.force, what=what)
    period = Unavailability(
        resource_id=resource.id, kind=kind.value, start=data.start, end=data.end, note=data.note
    )
    session.add(period)
    session.flush()
    record(
        session,
        actor,
        f"{kind.value}.create",
        period,
        unit_id=resource.unit_id,
        after=snapshot(period, released=[str(b.id) for b in hit]),
    )
    # The note may be private: the bookings' reason (seen by borrowers) does not quote it.
    why = "on leave" if kind == UnavailabilityKind.LEAVE else "in maintenance"
    withdrawals.release(session, actor, hit, f"{resource.name} is {why} then")
    return period


def remove_unavailability(
    session: Session, actor: Actor, model: type[R], resource_id: uuid.UUID, period_id: uuid.UUID
) -> None:
    """Withdraw a leave period or blackout (the audit log keeps it)."""
    resource = get_resource(session, actor, model, resource_id)
    _check_writer(actor, resource.unit_id)
    period = session.get(Unavailability, period_id)
    if period is None or period.resource_id != resource.id:
        raise NotFound("no such period")
    before = snapshot(period)
    session.delete(period)
    session.flush()
    record(session, actor, f"{period.kind}.delete", period, unit_id=resource.unit_id, before=before)
