"""Every mapped table of app/ and ledger/, imported so the metadata is complete."""

from __future__ import annotations

from app.agreements.models import AgreementItem, SharingAgreement
from app.allocation.models import AllocationRun
from app.audit.models import AuditEvent
from app.auth.models import ApiKey, User
from app.base import metadata
from app.bookings.models import (
    Booking,
    BookingSeries,
    IdempotencyRecord,
    Request,
    Requirement,
)
from app.catalog.models import (
    Device,
    DeviceType,
    Expert,
    ExpertSkill,
    Resource,
    Skill,
    Unavailability,
)
from app.feeds.models import FeedSubscription
from app.jobs.models import PeriodicJob
from app.notifications.models import (
    NotificationDelivery,
    NotificationEvent,
    NotificationPreference,
    WebhookEndpoint,
)
from app.projects.models import Project, ProjectMember, ProjectShare
from app.units.models import Unit
from ledger import models as ledger_models  # noqa: F401  (the ledger's tables share the metadata)

__all__ = [
    "AgreementItem",
    "AllocationRun",
    "ApiKey",
    "AuditEvent",
    "Booking",
    "BookingSeries",
    "Device",
    "DeviceType",
    "Expert",
    "ExpertSkill",
    "FeedSubscription",
    "IdempotencyRecord",
    "NotificationDelivery",
    "NotificationEvent",
    "NotificationPreference",
    "PeriodicJob",
    "Project",
    "ProjectMember",
    "ProjectShare",
    "Request",
    "Requirement",
    "Resource",
    "SharingAgreement",
    "Skill",
    "Unavailability",
    "Unit",
    "User",
    "WebhookEndpoint",
    "metadata",
]
