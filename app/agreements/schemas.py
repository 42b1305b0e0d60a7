"""API shapes of sharing agreements."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from app.agreements.models import AgreementScope
from app.schemas import CurrencyCode, IsoDate, MinorUnits, Schema, Text


class RateCardEntry(Schema):
    """A price under the agreement, in force from ``effective_from`` to ``effective_until``
    (inclusive dates; open when null). Rate changes are new entries with new dates, so the
    card keeps its history; among the entries in force on a booking's start date, the most
    specific one wins (resource, then skill or device type, then default)."""

    target: Literal["default", "resource", "skill", "device_type"]
    # validate_default: a missing target_id must be checked too (else it 500s on read-back)
    target_id: uuid.UUID | None = Field(default=None, validate_default=True)
    hourly_rate: MinorUnits = 0
    daily_rate: MinorUnits = 0
    effective_from: IsoDate | None = None
    effective_until: IsoDate | None = None

    @field_validator("effective_until")
    @classmethod
    def _effective(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("effective_from")
        if value is not None and start is not None and value < start:
            raise ValueError("must not be before effective_from")
        return value

    @field_validator("target_id")
    @classmethod
    def _target_id(cls, value: uuid.UUID | None, info: ValidationInfo) -> uuid.UUID | None:
        target = info.data.get("target")
        if target == "default" and value is not None:
            raise ValueError("a default entry has no target_id")
        if target not in (None, "default") and value is None:
            raise ValueError(f"a {target} entry needs target_id")
        return value


class AgreementCreate(Schema):
    """Lender → borrower: what may be borrowed, on what terms, for how long."""

    lender_unit_id: uuid.UUID
    borrower_unit_id: uuid.UUID
    scope: AgreementScope
    resource_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)
    skill_ids: list[uuid.UUID] = Field(default_factory=list, max_length=200)
    device_type_ids: list[uuid.UUID] = Field(default_factory=list, max_length=200)
    requires_approval: bool = True
    hours_per_month_cap: int | None = Field(default=None, ge=0, le=744)
    currency: CurrencyCode = "EUR"
    rate_card: list[RateCardEntry] = Field(default_factory=list, max_length=500)
    cancellation_fee: MinorUnits = 0
    valid_from: IsoDate
    valid_until: IsoDate | None = None
    notes: Text = ""

    @field_validator("borrower_unit_id")
    @classmethod
    def _distinct(cls, value: uuid.UUID, info: ValidationInfo) -> uuid.UUID:
        if value == info.data.get("lender_unit_id"):
            raise ValueError("a unit cannot lend to itself")
        return value

    @field_validator("valid_until")
    @classmethod
    def _period(cls, value: date | None, info: ValidationInfo) -> date | None:
        start = info.data.get("valid_from")
        if value is not None and start is not None and value < start:
            raise ValueError("must not be before valid_from")
        return value

    @model_validator(mode="after")
    def _scope_items(self) -> AgreementCreate:
        check_scope(self.scope, self.resource_ids, self.skill_ids, self.device_type_ids)
        return self


def check_scope(
    scope: AgreementScope,
    resource_ids: list[uuid.UUID],
    skill_ids: list[uuid.UUID],
    device_type_ids: list[uuid.UUID],
) -> None:
    """The listed items must match the scope kind."""
    if scope == AgreementScope.ALL and (resource_ids or skill_ids or device_type_ids):
        raise ValueError("scope 'all' lists no resources, skills or device types")
    if scope == AgreementScope.RESOURCES and (not resource_ids or skill_ids or device_type_ids):
        raise ValueError("scope 'resources' lists resource_ids only")
    if scope == AgreementScope.CATEGORIES and (resource_ids or not (skill_ids or device_type_ids)):
        raise ValueError("scope 'categories' lists skill_ids and/or device_type_ids only")


class AgreementUpdate(Schema):
    """Terms that can change while an agreement runs (scope changes need a new agreement).

    A field left out keeps its value. ``null`` clears the two terms that may be empty
    (``hours_per_month_cap``: no cap; ``valid_until``: open-ended); the others cannot be
    null and refuse it with 400 (an empty rate card is ``[]``, empty notes ``""``).
    """

    # Annotated defaults: absent means "unchanged", yet the schema (and validation) refuse null
    requires_approval: Annotated[bool, Field(default=None)]
    hours_per_month_cap: int | None = Field(default=None, ge=0, le=744)
    rate_card: Annotated[list[RateCardEntry], Field(default=None, max_length=500)]
    cancellation_fee: Annotated[MinorUnits, Field(default=None)]
    valid_until: IsoDate | None = None
    notes: Annotated[Text, Field(default=None)]


class AgreementRead(Schema):
    """A sharing agreement."""

    id: uuid.UUID
    lender_unit_id: uuid.UUID
    borrower_unit_id: uuid.UUID
    scope: AgreementScope
    resource_ids: list[uuid.UUID]
    skill_ids: list[uuid.UUID]
    device_type_ids: list[uuid.UUID]
    requires_approval: bool
    hours_per_month_cap: int | None
    currency: str
    rate_card: list[RateCardEntry]
    cancellation_fee: int
    valid_from: date
    valid_until: date | None
    notes: str
    terminated_at: datetime | None
    active: bool


class Termination(Schema):
    """Why an agreement ends, and whether to release the live loans made under it."""

    reason: Text = ""
    force: bool = False
    """Release live loans that have not ended (else a termination over them is refused)."""
