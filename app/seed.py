"""A realistic demo: five units, agreements between some, experts, devices, projects.

Deterministic (fixed random seed) so that two fresh demos look alike. Everything is
written through the same service functions as the API, so the audit log tells the story.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.agreements.models import AgreementScope
from app.agreements.schemas import AgreementCreate, RateCardEntry
from app.agreements.services import create_agreement
from app.auth import services as auth
from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.auth.schemas import UserCreate
from app.catalog import services as catalog
from app.catalog.models import Device, Expert
from app.catalog.schemas import (
    DeviceCreate,
    DeviceTypeCreate,
    ExpertCreate,
    SkillCreate,
    SkillLevel,
    UnavailabilityCreate,
)
from app.projects.schemas import ProjectCreate, ShareTerm
from app.projects.services import create_project
from app.units.models import Unit
from app.units.schemas import UnitCreate
from app.units.services import create_unit

UNITS = [
    ("Federal Environment Agency", "FEA", "Europe/Berlin"),
    ("Coastal Survey Office", "CSO", "Europe/Berlin"),
    ("Northeast Water Authority", "NWA", "America/New_York"),
    ("Public Health Laboratory", "PHL", "America/New_York"),
    ("Statistics Bureau", "STB", "Europe/Lisbon"),
]
SKILLS = [
    "Hydrology",
    "GIS analysis",
    "Water chemistry",
    "Epidemiology",
    "Statistics",
    "Drone piloting",
    "Lab safety",
    "Mass spectrometry",
    "Data engineering",
    "Field sampling",
]
DEVICE_TYPES = [
    ("Survey drone", 30, 30, 15),
    ("Mass spectrometer", 60, 30, 30),
    ("Water sampler", 15, 15, 15),
    ("Mobile lab van", 30, 60, 30),
    ("Field laptop", 0, 0, 15),
]
FIRST = [
    "Anna",
    "Ben",
    "Carla",
    "David",
    "Elif",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Kemal",
    "Lena",
    "Maya",
    "Nils",
    "Olga",
    "Paul",
    "Rosa",
    "Sami",
    "Tara",
    "Umar",
]
LAST = [
    "Weber",
    "Ortiz",
    "Novak",
    "Fischer",
    "Kowalski",
    "Silva",
    "Brown",
    "Haddad",
    "Lindqvist",
    "Moreau",
    "Okafor",
    "Rossi",
    "Tanaka",
    "Vogel",
    "Yilmaz",
]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")


DEMO_LOGINS = (
    ("project lead of RFR-2027", "project_lead@fea.copool.example"),
    ("resource manager of CSO", "resource_manager@cso.copool.example"),
    ("requester of FEA", "requester@fea.copool.example"),
    ("auditor", "auditor@copool.example"),
)
"""Demo users whose one-time dashboard sign-in links ``copool seed-demo`` prints."""


@dataclass
class DemoResult:
    """What the demo made, and the admin's key (shown once)."""

    admin_token: str
    units: int
    experts: int
    devices: int
    projects: int
    requests: int = 0


def database_is_empty(session: Session) -> bool:
    """True when no unit exists yet (the demo is only seeded into an empty database)."""
    return not session.scalar(select(func.count()).select_from(Unit))


def _hours(rng: random.Random) -> dict[str, list[list[str]]]:
    start = rng.choice(["07:30", "08:00", "08:30", "09:00"])
    end = rng.choice(["16:00", "16:30", "17:00", "17:30"])
    if rng.random() < 0.3:
        return {d: [[start, "12:00"], ["13:00", end]] for d in WEEKDAYS}
    days = WEEKDAYS if rng.random() < 0.8 else WEEKDAYS[:4]
    return {d: [[start, end]] for d in days}


def seed_demo(session: Session, today: date | None = None) -> DemoResult:
    """Fill an empty database with the demo; returns the demo admin's token."""
    rng = random.Random(20261127)
    today = today or datetime.now(UTC).date()
    units: dict[str, uuid.UUID] = {}
    zones: dict[str, str] = {}
    for name, code, zone in UNITS:
        units[code] = create_unit(
            session, SYSTEM, UnitCreate(name=name, code=code, time_zone=zone)
        ).id
        zones[code] = zone

    admin = auth.create_user(
        session,
        SYSTEM,
        UserCreate(
            unit_id=units["FEA"],
            name="Demo Admin",
            email="admin@copool.example",
            roles=[Role.ADMIN],
        ),
    )
    _, token = auth.issue_key(session, SYSTEM, admin.id, "demo")
    people: dict[str, dict[Role, uuid.UUID]] = {}
    for code in units:
        people[code] = {}
        for role in (Role.UNIT_MANAGER, Role.RESOURCE_MANAGER, Role.REQUESTER, Role.PROJECT_LEAD):
            user = auth.create_user(
                session,
                SYSTEM,
                UserCreate(
                    unit_id=units[code],
                    name=f"{code} {role.value.replace('_', ' ')}",
                    email=f"{role.value}@{code.lower()}.copool.example",
                    roles=[role],
                ),
            )
            people[code][role] = user.id
    auth.create_user(
        session,
        SYSTEM,
        UserCreate(
            unit_id=units["STB"],
            name="Audit Office",
            email="auditor@copool.example",
            roles=[Role.AUDITOR],
        ),
    )

    skills = {n: catalog.create_skill(session, SYSTEM, SkillCreate(name=n)).id for n in SKILLS}
    types = {
        n: catalog.create_device_type(
            session,
            SYSTEM,
            DeviceTypeCreate(name=n, setup_minutes=s, teardown_minutes=t, checkin_grace_minutes=g),
        ).id
        for n, s, t, g in DEVICE_TYPES
    }

    experts: list[uuid.UUID] = []
    codes = list(units)
    for i in range(30):
        code = codes[i % len(codes)]
        held = rng.sample(SKILLS, rng.randint(1, 3))
        if i < 2 and "Drone piloting" not in held:
            held.append("Drone piloting")  # FEA's and CSO's pilots: drones fly with one
        expert = catalog.create_expert(
            session,
            SYSTEM,
            ExpertCreate(
                unit_id=units[code],
                name=f"{FIRST[i % len(FIRST)]} {LAST[(i * 7) % len(LAST)]}",
                email=f"expert{i + 1}@{code.lower()}.copool.example",
                time_zone=zones[code],
                working_hours=_hours(rng),
                skills=[SkillLevel(skill_id=skills[s], level=rng.randint(2, 5)) for s in held],
                lending_cap_bp=rng.choice([2000, 3000, 5000, 10000]),
                hourly_rate=rng.choice([6500, 8000, 9500, 12000]),
                currency="EUR",
            ),
        )
        experts.append(expert.id)
        if rng.random() < 0.4:
            first = today + timedelta(days=rng.randint(3, 60))
            tz = ZoneInfo(zones[code])
            catalog.add_unavailability(
                session,
                SYSTEM,
                Expert,
                expert.id,
                UnavailabilityCreate(
                    start=datetime.combine(first, time(0), tz),
                    end=datetime.combine(first + timedelta(days=rng.randint(2, 10)), time(0), tz),
                    note="annual leave",
                ),
            )

    devices = 0
    for i in range(15):
        code = codes[i % len(codes)]
        type_name = DEVICE_TYPES[i % len(DEVICE_TYPES)][0]
        device = catalog.create_device(
            session,
            SYSTEM,
            DeviceCreate(
                unit_id=units[code],
                name=f"{type_name} {code}-{i + 1:02d}",
                device_type_id=types[type_name],
                location=f"{code} depot {1 + i % 3}",
                time_zone=zones[code],
                working_hours=None
                if type_name == "Field laptop"
                else {d: [["07:00", "19:00"]] for d in WEEKDAYS},
                operator_skill_id=skills["Drone piloting"] if type_name == "Survey drone" else None,
                hourly_rate=rng.choice([1500, 2500, 4000, 9000]),
                daily_rate=rng.choice([10000, 20000, 45000]),
            ),
        )
        devices += 1
        first = today + timedelta(days=rng.randint(1, 45))
        catalog.add_unavailability(
            session,
            SYSTEM,
            Device,
            device.id,
            UnavailabilityCreate(
                start=datetime.combine(first, time(6), ZoneInfo(zones[code])),
                end=datetime.combine(first + timedelta(days=1), time(18), ZoneInfo(zones[code])),
                note="scheduled maintenance",
            ),
        )

    year_end = today + timedelta(days=365)
    agreements = [
        ("FEA", "CSO", AgreementScope.ALL, [], [], False, None),
        (
            "CSO",
            "FEA",
            AgreementScope.CATEGORIES,
            ["Hydrology", "GIS analysis"],
            ["Survey drone"],
            True,
            40,
        ),
        (
            "NWA",
            "PHL",
            AgreementScope.CATEGORIES,
            ["Water chemistry", "Field sampling"],
            ["Water sampler", "Mobile lab van"],
            True,
            60,
        ),
        ("PHL", "NWA", AgreementScope.ALL, [], [], True, 80),
        ("FEA", "NWA", AgreementScope.CATEGORIES, ["Hydrology"], ["Mass spectrometer"], True, 24),
        (
            "STB",
            "FEA",
            AgreementScope.CATEGORIES,
            ["Statistics", "Data engineering"],
            [],
            False,
            None,
        ),
    ]
    for lender, borrower, scope, skill_names, type_names, approval, cap in agreements:
        create_agreement(
            session,
            SYSTEM,
            AgreementCreate(
                lender_unit_id=units[lender],
                borrower_unit_id=units[borrower],
                scope=scope,
                skill_ids=[skills[s] for s in skill_names],
                device_type_ids=[types[t] for t in type_names],
                requires_approval=approval,
                hours_per_month_cap=cap,
                currency="EUR",
                rate_card=[RateCardEntry(target="default", hourly_rate=7500, daily_rate=30000)],
                cancellation_fee=5000 if approval else 0,
                valid_from=today - timedelta(days=30),
                valid_until=year_end,
            ),
        )

    projects = [
        ("Rhine Flood Resilience", "RFR-2027", "FEA", {"FEA": 5000, "CSO": 3000, "STB": 2000}),
        ("Harbour Water Quality", "HWQ-2027", "NWA", {"NWA": 6000, "PHL": 4000}),
        ("Drought Early Warning", "DEW-2027", "CSO", {"CSO": 4000, "FEA": 4000, "NWA": 2000}),
    ]
    project_ids: dict[str, uuid.UUID] = {}
    for name, code, lead, shares in projects:
        members = [people[u][Role.REQUESTER] for u in shares]
        project_ids[code] = create_project(
            session,
            SYSTEM,
            ProjectCreate(
                name=name,
                code=code,
                lead_unit_id=units[lead],
                lead_user_id=people[lead][Role.PROJECT_LEAD],
                start_date=today - timedelta(days=14),
                end_date=today + timedelta(days=300),
                currency="EUR",
                shares=[ShareTerm(unit_id=units[u], share_bp=bp) for u, bp in shares.items()],
                member_ids=members,
            ),
        ).id
    for code, (_, _, _, shares) in zip(project_ids, projects, strict=True):
        _fund(session, project_ids[code], {units[u]: bp for u, bp in shares.items()})
    requests = _competing_requests(session, today, units, people, project_ids, skills, types)
    session.flush()
    return DemoResult(
        admin_token=token,
        units=len(units),
        experts=len(experts),
        devices=devices,
        projects=len(projects),
        requests=requests,
    )


# (project, unit, title, hours, priority, emergency, [(skill or type, min level, quantity)])
DEMO_REQUESTS = [
    (
        "RFR-2027",
        "FEA",
        "Flood gauge survey",
        6,
        4,
        False,
        [("Hydrology", 3, 2), ("Survey drone", 0, 1)],
    ),
    ("RFR-2027", "CSO", "Levee inspection flights", 4, 3, False, [("Survey drone", 0, 1)]),
    ("RFR-2027", "STB", "Flood damage statistics", 8, 2, False, [("Statistics", 3, 1)]),
    (
        "DEW-2027",
        "CSO",
        "Drought model calibration",
        8,
        5,
        False,
        [("Hydrology", 4, 1), ("GIS analysis", 3, 1)],
    ),
    (
        "DEW-2027",
        "NWA",
        "Reservoir sampling",
        5,
        3,
        False,
        [("Field sampling", 2, 1), ("Water sampler", 0, 1)],
    ),
    ("DEW-2027", "FEA", "Soil moisture flights", 6, 2, False, [("Survey drone", 0, 1)]),
    (
        "HWQ-2027",
        "PHL",
        "Harbour water chemistry",
        6,
        4,
        False,
        [("Water chemistry", 3, 2), ("Mass spectrometer", 0, 1)],
    ),
    ("HWQ-2027", "NWA", "Pathogen screening", 4, 3, False, [("Epidemiology", 3, 1)]),
    (
        "HWQ-2027",
        "NWA",
        "Contamination alert",
        3,
        5,
        True,
        [("Water chemistry", 2, 1), ("Water sampler", 0, 1)],
    ),
    ("HWQ-2027", "PHL", "Sediment GIS mapping", 6, 2, False, [("GIS analysis", 2, 2)]),
]


def _competing_requests(
    session: Session,
    today: date,
    units: dict[str, uuid.UUID],
    people: dict[str, dict[Role, uuid.UUID]],
    projects: dict[str, uuid.UUID],
    skills: dict[str, uuid.UUID],
    types: dict[str, uuid.UUID],
) -> int:
    """Open requests that compete for the same experts and drones next week, so that a
    newcomer can start an allocation run and read a plan with explanations."""
    from app.auth.actor import Actor
    from app.bookings.models import RequirementKind
    from app.bookings.requests import create_request
    from app.bookings.schemas import RequestCreate, RequirementIn

    monday = today + timedelta(days=7 - today.weekday())
    start = datetime.combine(monday, time(6), UTC)
    end = datetime.combine(monday + timedelta(days=2), time(22), UTC)
    for project, unit, title, hours, priority, emergency, needs in DEMO_REQUESTS:
        actor = Actor(
            user_id=people[unit][Role.REQUESTER],
            unit_id=units[unit],
            roles=frozenset({Role.REQUESTER}),
            name=f"{unit} requester",
        )
        requirements = [
            RequirementIn(
                kind=RequirementKind.SKILL, skill_id=skills[name], min_level=level, quantity=qty
            )
            if name in skills
            else RequirementIn(
                kind=RequirementKind.DEVICE_TYPE, device_type_id=types[name], quantity=qty
            )
            for name, level, qty in needs
        ]
        create_request(
            session,
            actor,
            RequestCreate(
                project_id=projects[project],
                title=title,
                requirements=requirements,
                duration_minutes=hours * 60,
                window_start=start,
                window_end=end,
                priority=priority,
                emergency=emergency,
            ),
        )
    return len(DEMO_REQUESTS)


DEMO_BUDGET = 50_000_000
"""Each demo project's co-funding: 500,000.00 EUR pledged by its units at their shares."""


def _fund(session: Session, project_id: uuid.UUID, shares: dict[uuid.UUID, int]) -> None:
    """Pledges at each unit's agreed share; 80 % of each already received."""
    import ledger

    for unit_id, bp in shares.items():
        amount = DEMO_BUDGET * bp // 10_000
        made = ledger.pledge(
            session,
            project_id,
            unit_id,
            ledger.Money(amount, "EUR"),
            key=f"demo-pledge-{project_id}-{unit_id}",
            memo="demo pledge",
        )
        ledger.receive_pledge(
            session,
            made.id,
            ledger.Money(amount * 8 // 10, "EUR"),
            key=f"demo-receipt-{project_id}-{unit_id}",
            memo="first payment",
        )
