"""HTTP routes for the catalog: skills, device types, experts, devices and their blackouts."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller
from litestar.params import Parameter
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.catalog import services
from app.catalog.models import Device, DeviceType, Expert, Skill
from app.catalog.schemas import (
    DeviceCreate,
    DeviceRead,
    DeviceTypeCreate,
    DeviceTypeRead,
    DeviceTypeUpdate,
    DeviceUpdate,
    ExpertCreate,
    ExpertRead,
    ExpertUpdate,
    SkillCreate,
    SkillRead,
    SkillUpdate,
    UnavailabilityCreate,
    UnavailabilityRead,
)
from app.pagination import Limit, Offset, OptionalInstant, page, page_of
from app.problems import LIST, READ, WRITE
from app.routing import delete, get, patch, post
from app.schemas import Page, Reason, aware

Search = Annotated[str | None, Parameter(max_length=100, description="Part of the name")]


class SkillController(Controller):
    """The skill taxonomy."""

    path = "/skills"
    tags = ["catalog"]

    @get("/", responses=LIST, summary="List skills")
    def list_skills(
        self,
        actor: Actor,
        db_session: Session,
        limit: Limit = 50,
        offset: Offset = 0,
        q: Search = None,
        parent_id: uuid.UUID | None = None,
        include_retired: bool = False,
    ) -> Page[SkillRead]:
        rows, total = services.list_taxa(
            db_session,
            Skill,
            limit=limit,
            offset=offset,
            q=q,
            include_retired=include_retired,
            parent_id=parent_id,
        )
        return page(SkillRead, rows, total, limit, offset)

    @post("/", responses=WRITE, summary="Add a skill (admin)")
    def create_skill(self, actor: Actor, db_session: Session, data: SkillCreate) -> SkillRead:
        return SkillRead.model_validate(services.create_skill(db_session, actor, data))

    @get("/{skill_id:uuid}", responses=READ, summary="One skill")
    def get_skill(self, actor: Actor, db_session: Session, skill_id: uuid.UUID) -> SkillRead:
        return SkillRead.model_validate(services.get_taxon(db_session, Skill, skill_id))

    @patch("/{skill_id:uuid}", responses=WRITE, summary="Change a skill (admin)")
    def update_skill(
        self, actor: Actor, db_session: Session, skill_id: uuid.UUID, data: SkillUpdate
    ) -> SkillRead:
        skill = services.update_taxon(db_session, actor, Skill, skill_id, data)
        return SkillRead.model_validate(skill)

    @post("/{skill_id:uuid}/retire", status_code=200, responses=WRITE, summary="Retire a skill")
    def retire_skill(
        self, actor: Actor, db_session: Session, skill_id: uuid.UUID, data: Reason
    ) -> SkillRead:
        skill = services.retire_taxon(db_session, actor, Skill, skill_id, data.reason)
        return SkillRead.model_validate(skill)


class DeviceTypeController(Controller):
    """Kinds of devices."""

    path = "/device-types"
    tags = ["catalog"]

    @get("/", responses=LIST, summary="List device types")
    def list_device_types(
        self,
        actor: Actor,
        db_session: Session,
        limit: Limit = 50,
        offset: Offset = 0,
        q: Search = None,
        include_retired: bool = False,
    ) -> Page[DeviceTypeRead]:
        rows, total = services.list_taxa(
            db_session, DeviceType, limit=limit, offset=offset, q=q, include_retired=include_retired
        )
        return page(DeviceTypeRead, rows, total, limit, offset)

    @post("/", responses=WRITE, summary="Add a device type (admin)")
    def create_device_type(
        self, actor: Actor, db_session: Session, data: DeviceTypeCreate
    ) -> DeviceTypeRead:
        return DeviceTypeRead.model_validate(services.create_device_type(db_session, actor, data))

    @get("/{type_id:uuid}", responses=READ, summary="One device type")
    def get_device_type(
        self, actor: Actor, db_session: Session, type_id: uuid.UUID
    ) -> DeviceTypeRead:
        return DeviceTypeRead.model_validate(services.get_taxon(db_session, DeviceType, type_id))

    @patch("/{type_id:uuid}", responses=WRITE, summary="Change a device type (admin)")
    def update_device_type(
        self, actor: Actor, db_session: Session, type_id: uuid.UUID, data: DeviceTypeUpdate
    ) -> DeviceTypeRead:
        device_type = services.update_taxon(db_session, actor, DeviceType, type_id, data)
        return DeviceTypeRead.model_validate(device_type)

    @post(
        "/{type_id:uuid}/retire", status_code=200, responses=WRITE, summary="Retire a device type"
    )
    def retire_device_type(
        self, actor: Actor, db_session: Session, type_id: uuid.UUID, data: Reason
    ) -> DeviceTypeRead:
        device_type = services.retire_taxon(db_session, actor, DeviceType, type_id, data.reason)
        return DeviceTypeRead.model_validate(device_type)


class ExpertController(Controller):
    """Experts: their own unit's, and those agreements show the caller's unit."""

    path = "/experts"
    tags = ["catalog"]

    @get("/", responses=LIST, summary="List experts the caller may see")
    def list_experts(
        self,
        actor: Actor,
        db_session: Session,
        limit: Limit = 50,
        offset: Offset = 0,
        unit_id: uuid.UUID | None = None,
        skill_id: uuid.UUID | None = None,
        min_level: Annotated[int, Parameter(ge=1, le=5)] = 1,
        q: Search = None,
        include_retired: bool = False,
    ) -> Page[ExpertRead]:
        rows, total = services.list_resources(
            db_session,
            actor,
            Expert,
            limit=limit,
            offset=offset,
            unit_id=unit_id,
            skill_id=skill_id,
            min_level=min_level,
            q=q,
            include_retired=include_retired,
        )
        return page(ExpertRead, rows, total, limit, offset)

    @post("/", responses=WRITE, summary="Add an expert")
    def create_expert(self, actor: Actor, db_session: Session, data: ExpertCreate) -> ExpertRead:
        return ExpertRead.model_validate(services.create_expert(db_session, actor, data))

    @get("/{expert_id:uuid}", responses=READ, summary="One expert")
    def get_expert(self, actor: Actor, db_session: Session, expert_id: uuid.UUID) -> ExpertRead:
        return ExpertRead.model_validate(
            services.get_resource(db_session, actor, Expert, expert_id)
        )

    @patch("/{expert_id:uuid}", responses=WRITE, summary="Change an expert")
    def update_expert(
        self, actor: Actor, db_session: Session, expert_id: uuid.UUID, data: ExpertUpdate
    ) -> ExpertRead:
        expert = services.update_resource(db_session, actor, Expert, expert_id, data)
        return ExpertRead.model_validate(expert)

    @post("/{expert_id:uuid}/retire", status_code=200, responses=WRITE, summary="Retire an expert")
    def retire_expert(
        self, actor: Actor, db_session: Session, expert_id: uuid.UUID, data: Reason
    ) -> ExpertRead:
        expert = services.retire_resource(db_session, actor, Expert, expert_id, data.reason)
        return ExpertRead.model_validate(expert)

    @get("/{expert_id:uuid}/leave", responses=READ, summary="An expert's leave periods")
    def list_leave(
        self,
        actor: Actor,
        db_session: Session,
        expert_id: uuid.UUID,
        start: OptionalInstant = None,
        end: OptionalInstant = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[UnavailabilityRead]:
        rows = services.list_unavailability(
            db_session, actor, Expert, expert_id, start=aware(start, "start"), end=aware(end, "end")
        )
        return page_of(UnavailabilityRead, rows, limit, offset)

    @post("/{expert_id:uuid}/leave", responses=WRITE, summary="Record leave")
    def add_leave(
        self, actor: Actor, db_session: Session, expert_id: uuid.UUID, data: UnavailabilityCreate
    ) -> UnavailabilityRead:
        period = services.add_unavailability(db_session, actor, Expert, expert_id, data)
        return UnavailabilityRead.model_validate(period)

    @delete("/{expert_id:uuid}/leave/{period_id:uuid}", responses=WRITE, summary="Withdraw leave")
    def remove_leave(
        self, actor: Actor, db_session: Session, expert_id: uuid.UUID, period_id: uuid.UUID
    ) -> None:
        services.remove_unavailability(db_session, actor, Expert, expert_id, period_id)


class DeviceController(Controller):
    """Devices: their own unit's, and those agreements show the caller's unit."""

    path = "/devices"
    tags = ["catalog"]

    @get("/", responses=LIST, summary="List devices the caller may see")
    def list_devices(
        self,
        actor: Actor,
        db_session: Session,
        limit: Limit = 50,
        offset: Offset = 0,
        unit_id: uuid.UUID | None = None,
        device_type_id: uuid.UUID | None = None,
        q: Search = None,
        include_retired: bool = False,
    ) -> Page[DeviceRead]:
        rows, total = services.list_resources(
            db_session,
            actor,
            Device,
            limit=limit,
            offset=offset,
            unit_id=unit_id,
            device_type_id=device_type_id,
            q=q,
            include_retired=include_retired,
        )
        return page(DeviceRead, rows, total, limit, offset)

    @post("/", responses=WRITE, summary="Add a device")
    def create_device(self, actor: Actor, db_session: Session, data: DeviceCreate) -> DeviceRead:
        return DeviceRead.model_validate(services.create_device(db_session, actor, data))

    @get("/{device_id:uuid}", responses=READ, summary="One device")
    def get_device(self, actor: Actor, db_session: Session, device_id: uuid.UUID) -> DeviceRead:
        return DeviceRead.model_validate(
            services.get_resource(db_session, actor, Device, device_id)
        )

    @patch("/{device_id:uuid}", responses=WRITE, summary="Change a device")
    def update_device(
        self, actor: Actor, db_session: Session, device_id: uuid.UUID, data: DeviceUpdate
    ) -> DeviceRead:
        device = services.update_resource(db_session, actor, Device, device_id, data)
        return DeviceRead.model_validate(device)

    @post("/{device_id:uuid}/retire", status_code=200, responses=WRITE, summary="Retire a device")
    def retire_device(
        self, actor: Actor, db_session: Session, device_id: uuid.UUID, data: Reason
    ) -> DeviceRead:
        device = services.retire_resource(db_session, actor, Device, device_id, data.reason)
        return DeviceRead.model_validate(device)

    @get("/{device_id:uuid}/blackouts", responses=READ, summary="A device's maintenance blackouts")
    def list_blackouts(
        self,
        actor: Actor,
        db_session: Session,
        device_id: uuid.UUID,
        start: OptionalInstant = None,
        end: OptionalInstant = None,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[UnavailabilityRead]:
        rows = services.list_unavailability(
            db_session, actor, Device, device_id, start=aware(start, "start"), end=aware(end, "end")
        )
        return page_of(UnavailabilityRead, rows, limit, offset)

    @post("/{device_id:uuid}/blackouts", responses=WRITE, summary="Record a maintenance blackout")
    def add_blackout(
        self, actor: Actor, db_session: Session, device_id: uuid.UUID, data: UnavailabilityCreate
    ) -> UnavailabilityRead:
        period = services.add_unavailability(db_session, actor, Device, device_id, data)
        return UnavailabilityRead.model_validate(period)

    @delete(
        "/{device_id:uuid}/blackouts/{period_id:uuid}",
        responses=WRITE,
        summary="Withdraw a blackout",
    )
    def remove_blackout(
        self, actor: Actor, db_session: Session, device_id: uuid.UUID, period_id: uuid.UUID
    ) -> None:
        services.remove_unavailability(db_session, actor, Device, device_id, period_id)
