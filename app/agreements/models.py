"""Sharing agreements: a lender unit lets a borrower unit see and borrow (part of) its catalog."""

from __future__ import annotations

import enum
import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.base import Base, DateTimeUTC


class AgreementScope(enum.StrEnum):
    """Which of the lender's resources an agreement covers."""

    ALL = "all"
    RESOURCES = "resources"
    CATEGORIES = "categories"


class SharingAgreement(Base):
    """No agreement, no loan: lender → borrower, scope, approval rule, cap, rates, validity.

    ``rate_card`` is a list of ``{"target": "default"|"resource"|"skill"|"device_type",
    "target_id": uuid|null, "hourly_rate": int, "daily_rate": int}`` in minor units of
    ``currency``; the most specific entry wins, the catalog rate applies when none does.
    """

    __tablename__ = "sharing_agreements"
    __table_args__ = (
        CheckConstraint("lender_unit_id <> borrower_unit_id", name="agreement_distinct_units"),
        CheckConstraint(
            "valid_until IS NULL OR valid_until >= valid_from", name="agreement_valid_period"
        ),
        CheckConstraint(
            "hours_per_month_cap IS NULL OR hours_per_month_cap >= 0", name="agreement_cap_nonneg"
        ),
    )

    lender_unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    borrower_unit_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("units.id"), index=True)
    scope: Mapped[str] = mapped_column(String(16))
    requires_approval: Mapped[bool] = mapped_column(Boolean, default=True)
    hours_per_month_cap: Mapped[int | None] = mapped_column(Integer, default=None)
    """Hours per calendar month (UTC) any one resource may be lent under this agreement."""
    currency: Mapped[str] = mapped_column(String(3), default="EUR")
    rate_card: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    cancellation_fee: Mapped[int] = mapped_column(BigInteger, default=0)
    """Flat fee in minor units charged when the borrower cancels a confirmed loan."""
    valid_from: Mapped[date] = mapped_column(Date)
    valid_until: Mapped[date | None] = mapped_column(Date, default=None)
    notes: Mapped[str] = mapped_column(Text, default="")
    terminated_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)

    items: Mapped[list[AgreementItem]] = relationship(lazy="raise", cascade="all, delete-orphan")


class AgreementItem(Base):
    """One entry of a scoped agreement: a named resource, a skill, or a device type."""

    __tablename__ = "agreement_items"
    __table_args__ = (
        CheckConstraint(
            "(CASE WHEN resource_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN skill_id IS NULL THEN 0 ELSE 1 END)"
            " + (CASE WHEN device_type_id IS NULL THEN 0 ELSE 1 END) = 1",
            name="agreement_item_one_target",
        ),
    )

    agreement_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("sharing_agreements.id", ondelete="CASCADE"), index=True
    )
    resource_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("resources.id"), default=None)
    skill_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("skills.id"), default=None)
    device_type_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("device_types.id"), default=None
    )
