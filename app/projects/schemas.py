"""API shapes of joint projects."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import Field, ValidationInfo, field_validator

from app.projects.models import InvitationStatus
from app.schemas import BasisPoints, Code, CurrencyCode, IsoDate, Name, Schema, Text


class ShareTerm(Schema):
    """A participating unit's agreed share of the cost, in basis points (100 bp = 1 %)."""

    unit_id: uuid.UUID
    share_bp: BasisPoints


def check_shares(value: list[ShareTerm]) -> list[ShareTerm]:
    """Each unit once; the shares sum to exactly 10,000 bp."""
    units = [s.unit_id for s in value]
    if len(set(units)) != len(units):
        raise ValueError("a unit is listed twice")
    total = sum(s.share_bp for s in value)
    if total != 10_000:
        raise ValueError(f"shares must sum to 10000 basis points, not {total}")
    return value


class ProjectCreate(Schema):
    """A new joint project."""

    name: Name
    code: Code
    description: Text = ""
    lead_unit_id: uuid.UUID
    lead_user_id: uuid.UUID
    start_date: IsoDate
    end_date: IsoDate
    currency: CurrencyCode
    shares: list[ShareTerm] = Field(min_length=1, max_length=100)
    member_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)

    _shares = field_validator("shares")(check_shares)

    @field_validator("end_date")
    @classmethod
    def _period(cls, value: date, info: ValidationInfo) -> date:
        start = info.data.get("start_date")
        if start is not None and value < start:
            raise ValueError("must not be before start_date")
        return value


class ProjectUpdate(Schema):
    """Fields that can change; ``shares`` replaces all cost-share terms at once."""

    name: Name | None = None
    description: Text | None = None
    lead_user_id: uuid.UUID | None = None
    start_date: IsoDate | None = None
    end_date: IsoDate | None = None
    shares: list[ShareTerm] | None = Field(default=None, min_length=1, max_length=100)

    _shares = field_validator("shares")(lambda v: v if v is None else check_shares(v))


class MemberAdd(Schema):
    """A user to add to the project."""

    user_id: uuid.UUID


class ProjectRead(Schema):
    """A joint project as participants see it."""

    id: uuid.UUID
    name: str
    code: str
    description: str
    lead_unit_id: uuid.UUID
    lead_user_id: uuid.UUID
    start_date: date
    end_date: date
    currency: str
    shares: list[ShareTerm]
    member_ids: list[uuid.UUID]
    closed_at: datetime | None


class InvitationRead(Schema):
    """An invitation of a unit to a project: the share proposed to it (null when only users
    are invited), the users to enrol, and its answer."""

    id: uuid.UUID
    project_id: uuid.UUID
    unit_id: uuid.UUID
    share_bp: int | None
    member_ids: list[uuid.UUID]
    status: InvitationStatus
    invited_by: uuid.UUID
    answered_by: uuid.UUID | None
    answered_at: datetime | None
    created_at: datetime
