"""Units: the directory every user can read; admins create and retire, managers describe."""

from __future__ import annotations

import uuid

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from app.audit.services import record, snapshot
from app.auth.actor import Actor
from app.auth.models import Role
from app.base import utcnow
from app.errors import Conflict, NotFound, PermissionDenied
from app.units.models import Unit
from app.units.schemas import UnitCreate, UnitUpdate


def get_unit(session: Session, unit_id: uuid.UUID) -> Unit:
    """A unit by id (the unit directory is visible to every signed-in user)."""
    unit = session.get(Unit, unit_id)
    if unit is None:
        raise NotFound("no such unit")
    return unit


def list_units(
    session: Session,
    *,
    limit: int,
    offset: int,
    q: str | None = None,
    include_retired: bool = False,
) -> tuple[list[Unit], int]:
    """Units by name, optionally searched by name or code."""
    query = select(Unit)
    if not include_retired:
        query = query.where(Unit.retired_at.is_(None))
    if q:
        pattern = f"%{q.lower()}%"
        query = query.where(
            or_(func.lower(Unit.name).like(pattern), func.lower(Unit.code).like(pattern))
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(Unit.name).limit(limit).offset(offset)).all()
    return list(rows), total


def create_unit(session: Session, actor: Actor, data: UnitCreate) -> Unit:
    """Create a unit (admins only)."""
    actor.require(action="creating a unit")
    for field, value in (("name", data.name), ("code", data.code)):
        if session.scalar(select(func.count()).where(getattr(Unit, field) == value)):
            raise Conflict(f"{field}: a unit with this {field} exists", field=field)
    unit = Unit(
        name=data.name, code=data.code, description=data.description, time_zone=data.time_zone
    )
    session.add(unit)
    session.flush()
    record(session, actor, "unit.create", unit, unit_id=unit.id, after=snapshot(unit))
    return unit


def update_unit(session: Session, actor: Actor, unit_id: uuid.UUID, data: UnitUpdate) -> Unit:
    """Rename or describe a unit (admins, or the unit's own managers)."""
    unit = get_unit(session, unit_id)
    if not actor.manages_unit(unit.id, Role.UNIT_MANAGER):
        raise PermissionDenied("changing a unit needs unit_manager of that unit, or admin")
    before = snapshot(unit)
    if data.name is not None and data.name != unit.name:
        if session.scalar(select(func.count()).where(Unit.name == data.name)):
            raise Conflict("name: a unit with this name exists", field="name")
        unit.name = data.name
    if data.description is not None:
        unit.description = data.description
    if data.time_zone is not None:
        unit.time_zone = data.time_zone
    session.flush()
    record(
        session, actor, "unit.update", unit, unit_id=unit.id, before=before, after=snapshot(unit)
    )
    return unit


def retire_unit(session: Session, actor: Actor, unit_id: uuid.UUID, reason: str) -> Unit:
    """Retire a unit: it stays in history but takes part in nothing new (admins only)."""
    actor.require(action="retiring a unit")
    unit = get_unit(session, unit_id)
    if unit.retired_at is None:
        before = snapshot(unit)
        unit.retired_at = utcnow()
        session.flush()
        record(
            session,
            actor,
            "unit.retire",
            unit,
            unit_id=unit.id,
            before=before,
            after=snapshot(unit),
            reason=reason,
        )
    return unit
