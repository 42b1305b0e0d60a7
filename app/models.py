"""Every mapped table of app/ and ledger/, imported so the metadata is complete."""

from __future__ import annotations

from app.agreements.models import AgreementItem, SharingAgreement
from app.audit.models import AuditEvent
from app.auth.models import ApiKey, User
from app.base import metadata
from app.catalog.models import (
    Device,
    DeviceType,
    Expert,
    ExpertSkill,
    Resource,
    Skill,
    Unavailability,
)
from app.projects.models import Project, ProjectMember, ProjectShare
from app.units.models import Unit

__all__ = [
    "AgreementItem",
    "ApiKey",
    "AuditEvent",
    "Device",
    "DeviceType",
    "Expert",
    "ExpertSkill",
    "Project",
    "ProjectMember",
    "ProjectShare",
    "Resource",
    "SharingAgreement",
    "Skill",
    "Unavailability",
    "Unit",
    "User",
    "metadata",
]
