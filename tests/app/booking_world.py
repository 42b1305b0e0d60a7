"""A small lending world for booking tests: two units, an agreement, an expert, a device."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import ledger
from app.agreements.models import AgreementScope
from app.agreements.schemas import AgreementCreate
from app.agreements.services import create_agreement
from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.catalog import services as catalog
from app.catalog.schemas import (
    DeviceCreate,
    DeviceTypeCreate,
    ExpertCreate,
    SkillCreate,
    SkillLevel,
)
from app.projects.schemas import ProjectCreate, ShareTerm
from app.projects.services import create_project

WEEKDAYS_9_TO_5 = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}


@dataclass
class Lending:
    """Ids and auth headers of the lending world."""

    lender: uuid.UUID
    borrower: uuid.UUID
    expert: uuid.UUID
    device: uuid.UUID
    skill: uuid.UUID
    device_type: uuid.UUID
    project: uuid.UUID
    agreement: uuid.UUID
    requester: dict[str, str]
    manager: dict[str, str]
    outsider: dict[str, str]


def build(
    world: Any,
    *,
    requires_approval: bool = False,
    hours_cap: int | None = None,
    lending_cap_bp: int = 10_000,
    zone: str = "Europe/Berlin",
    project_start: date = date(2020, 1, 1),
    project_end: date = date(2035, 12, 31),
    funds: int = 100_000_000,
) -> Lending:
    """Lender unit L lends to borrower unit B under one agreement covering everything."""
    requester = world.user("req", "B", Role.REQUESTER)
    manager = world.user("rm", "L", Role.RESOURCE_MANAGER)
    outsider = world.user("out", "X", Role.REQUESTER)
    world.user("lead", "B", Role.PROJECT_LEAD)
    with world.session() as s:
        skill = catalog.create_skill(s, SYSTEM, SkillCreate(name="Hydrology")).id
        dtype = catalog.create_device_type(
            s,
            SYSTEM,
            DeviceTypeCreate(
                name="Drone", setup_minutes=15, teardown_minutes=15, checkin_grace_minutes=10
            ),
        ).id
        expert = catalog.create_expert(
            s,
            SYSTEM,
            ExpertCreate(
                unit_id=world.units["L"],
                name="Eva Expert",
                time_zone=zone,
                working_hours=WEEKDAYS_9_TO_5,
                skills=[SkillLevel(skill_id=skill, level=4)],
                lending_cap_bp=lending_cap_bp,
                hourly_rate=9000,
            ),
        ).id
        device = catalog.create_device(
            s,
            SYSTEM,
            DeviceCreate(
                unit_id=world.units["L"],
                name="Drone 1",
                device_type_id=dtype,
                time_zone=zone,
                working_hours=None,
                hourly_rate=2000,
            ),
        ).id
        agreement = create_agreement(
            s,
            SYSTEM,
            AgreementCreate(
                lender_unit_id=world.units["L"],
                borrower_unit_id=world.units["B"],
                scope=AgreementScope.ALL,
                requires_approval=requires_approval,
                hours_per_month_cap=hours_cap,
                valid_from=date(2020, 1, 1),
            ),
        ).id
        project = create_project(
            s,
            SYSTEM,
            ProjectCreate(
                name="Joint",
                code="J1",
                lead_unit_id=world.units["B"],
                lead_user_id=world.users["lead"],
                start_date=project_start,
                end_date=project_end,
                currency="EUR",
                shares=[
                    ShareTerm(unit_id=world.units["B"], share_bp=6000),
                    ShareTerm(unit_id=world.units["L"], share_bp=4000),
                ],
                member_ids=[world.users["req"]],
            ),
        ).id
    if funds:
        with world.session() as s:
            ledger.contribute(s, project, world.units["B"], ledger.Money(funds, "EUR"),
                              key=f"fund-{project}", memo="test funds")
    return Lending(
        lender=world.units["L"],
        borrower=world.units["B"],
        expert=expert,
        device=device,
        skill=skill,
        device_type=dtype,
        project=project,
        agreement=agreement,
        requester=requester,
        manager=manager,
        outsider=outsider,
    )
