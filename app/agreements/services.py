"""Sharing agreements, and the rule that decides which resources a unit may see and borrow.

Changing terms and terminating lock the agreement's row and read it again before deciding
(``lock_agreement``); a terminated agreement answers both with 409 ``wrong_status``.
"""

from __future__ import annotations

import uuid
from datetime import date

from sqlalchemy import ColumnElement, and_, exists, false, func, or_, select, true
from sqlalchemy.orm import Session, selectinload

from app.agreements.models import AgreementItem, AgreementScope, SharingAgreement
from app.agreements.schemas import (
    AgreementCreate,
    AgreementRead,
    AgreementUpdate,
    RateCardEntry,
)
from app.audit.services import record
from app.auth.actor import Actor
from app.auth.models import Role
from app.base import utcnow
from app.catalog.models import DeviceType, ExpertSkill, Resource, Skill
from app.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from app.notifications import events as notify
from app.units.models import Unit


def active_on(day: date) -> ColumnElement[bool]:
    return and_(
        SharingAgreement.terminated_at.is_(None),
        SharingAgreement.valid_from <= day,
        or_(SharingAgreement.valid_until.is_(None), SharingAgreement.valid_until >= day),
    )


def covers(resource: type[Resource] = Resource) -> ColumnElement[bool]:
    """SQL: the agreement in scope covers ``resource`` (by name, by skill or by device type)."""
    item = AgreementItem
    # Correlate explicitly: nested two levels deep, auto-correlation would give each EXISTS
    # its own ``resources`` FROM and make it true for any resource of the lender.
    by_resource = (
        exists()
        .where(item.agreement_id == SharingAgreement.id, item.resource_id == resource.id)
        .correlate_except(item)
    )
    by_type = (
        exists()
        .where(
            item.agreement_id == SharingAgreement.id,
            item.device_type_id == resource.device_type_id,
        )
        .correlate_except(item)
    )
    by_skill = (
        exists()
        .where(
            item.agreement_id == SharingAgreement.id,
            item.skill_id == ExpertSkill.skill_id,
            ExpertSkill.resource_id == resource.id,
        )
        .correlate_except(item, ExpertSkill)
    )
    return or_(
        SharingAgreement.scope == AgreementScope.ALL.value,
        and_(SharingAgreement.scope == AgreementScope.RESOURCES.value, by_resource),
        and_(SharingAgreement.scope == AgreementScope.CATEGORIES.value, or_(by_type, by_skill)),
    )


def shown_to_unit(unit_id: uuid.UUID, day: date | None = None) -> ColumnElement[bool]:
    """SQL: a resource of another unit that an active agreement shows to ``unit_id``.

    A category scope covers an expert holding any listed skill (at any level) and a device
    of any listed type; the skill tree is not expanded (list child skills explicitly).
    """
    day = day or utcnow().date()
    return exists().where(
        SharingAgreement.lender_unit_id == Resource.unit_id,
        SharingAgreement.borrower_unit_id == unit_id,
        active_on(day),
        covers(),
    )


def visible_resources(actor: Actor) -> ColumnElement[bool]:
    """SQL: resources the actor may see: own unit's, those agreements show, all for admin/auditor."""
    if actor.sees_everything:
        return true()
    return or_(Resource.unit_id == actor.unit_id, shown_to_unit(actor.unit_id))


def _visible(actor: Actor) -> ColumnElement[bool]:
    if actor.sees_everything:
        return true()
    return or_(
        SharingAgreement.lender_unit_id == actor.unit_id,
        SharingAgreement.borrower_unit_id == actor.unit_id,
    )


def to_read(agreement: SharingAgreement) -> AgreementRead:
    """The API view of an agreement (items split by kind, ``active`` as of today)."""
    today = utcnow().date()
    return AgreementRead(
        id=agreement.id,
        lender_unit_id=agreement.lender_unit_id,
        borrower_unit_id=agreement.borrower_unit_id,
        scope=AgreementScope(agreement.scope),
        resource_ids=sorted(i.resource_id for i in agreement.items if i.resource_id),
        skill_ids=sorted(i.skill_id for i in agreement.items if i.skill_id),
        device_type_ids=sorted(i.device_type_id for i in agreement.items if i.device_type_id),
        requires_approval=agreement.requires_approval,
        hours_per_month_cap=agreement.hours_per_month_cap,
        currency=agreement.currency,
        rate_card=[RateCardEntry.model_validate(e) for e in agreement.rate_card],
        cancellation_fee=agreement.cancellation_fee,
        valid_from=agreement.valid_from,
        valid_until=agreement.valid_until,
        notes=agreement.notes,
        terminated_at=agreement.terminated_at,
        active=agreement.terminated_at is None
        and agreement.valid_from <= today
        and (agreement.valid_until is None or agreement.valid_until >= today),
    )


def get_agreement(session: Session, actor: Actor, agreement_id: uuid.UUID) -> SharingAgreement:
    """An agreement the actor's unit is party to (or any, for admins and auditors)."""
    agreement = session.scalar(
        select(SharingAgreement)
        .options(selectinload(SharingAgreement.items))
        .where(SharingAgreement.id == agreement_id, _visible(actor))
    )
    if agreement is None:
        raise NotFound("no such agreement")
    return agreement


def list_agreements(
    session: Session,
    actor: Actor,
    *,
    limit: int,
    offset: int,
    lender_unit_id: uuid.UUID | None = None,
    borrower_unit_id: uuid.UUID | None = None,
    active: bool | None = None,
) -> tuple[list[SharingAgreement], int]:
    """Agreements the actor's unit is party to, filtered."""
    query = select(SharingAgreement).where(_visible(actor))
    if lender_unit_id is not None:
        query = query.where(SharingAgreement.lender_unit_id == lender_unit_id)
    if borrower_unit_id is not None:
        query = query.where(SharingAgreement.borrower_unit_id == borrower_unit_id)
    if active is not None:
        clause = active_on(utcnow().date())
        query = query.where(clause if active else ~clause)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.options(selectinload(SharingAgreement.items))
        .order_by(SharingAgreement.valid_from.desc(), SharingAgreement.id)
        .limit(limit)
        .offset(offset)
    ).all()
    return list(rows), total


def _check_targets(session: Session, data: AgreementCreate) -> None:
    for field, model, ids in (
        ("skill_ids", Skill, data.skill_ids),
        ("device_type_ids", DeviceType, data.device_type_ids),
    ):
        if ids:
            found = session.scalar(select(func.count()).where(model.id.in_(ids)))
            if found != len(set(ids)):
                raise InvalidInput(f"{field}: some ids do not exist", field=field)
    if data.resource_ids:
        found = session.scalar(
            select(func.count()).where(
                Resource.id.in_(data.resource_ids), Resource.unit_id == data.lender_unit_id
            )
        )
        if found != len(set(data.resource_ids)):
            raise InvalidInput(
                "resource_ids: every resource must exist and belong to the lender",
                field="resource_ids",
            )


def create_agreement(session: Session, actor: Actor, data: AgreementCreate) -> SharingAgreement:
    """The lender's unit manager (or an admin) grants a borrower access to its catalog."""
    if not actor.manages_unit(data.lender_unit_id, Role.UNIT_MANAGER):
        raise PermissionDenied("only the lender's unit_manager (or an admin) grants an agreement")
    for field, unit_id in (
        ("lender_unit_id", data.lender_unit_id),
        ("borrower_unit_id", data.borrower_unit_id),
    ):
        unit = session.get(Unit, unit_id)
        if unit is None or unit.retired_at is not None:
            raise InvalidInput(f"{field}: no such active unit", field=field)
    _check_targets(session, data)
    agreement = SharingAgreement(
        lender_unit_id=data.lender_unit_id,
        borrower_unit_id=data.borrower_unit_id,
        scope=data.scope.value,
        requires_approval=data.requires_approval,
        hours_per_month_cap=data.hours_per_month_cap,
        currency=data.currency,
        rate_card=[e.model_dump(mode="json") for e in data.rate_card],
        cancellation_fee=data.cancellation_fee,
        valid_from=data.valid_from,
        valid_until=data.valid_until,
        notes=data.notes,
        items=[AgreementItem(resource_id=i) for i in dict.fromkeys(data.resource_ids)]
        + [AgreementItem(skill_id=i) for i in dict.fromkeys(data.skill_ids)]
        + [AgreementItem(device_type_id=i) for i in dict.fromkeys(data.device_type_ids)],
    )
    session.add(agreement)
    session.flush()
    record(
        session,
        actor,
        "agreement.create",
        agreement,
        unit_id=agreement.lender_unit_id,
        after=to_read(agreement).model_dump(mode="json"),
    )
    return agreement


def lock_agreement(session: Session, agreement: SharingAgreement) -> SharingAgreement:
    """Lock ``agreement``'s row and re-read it with its items.

    ``FOR NO KEY UPDATE``: bookings that merely reference the agreement are not held up by
    it (PostgreSQL; SQLite serialises whole transactions).
    """
    session.flush()  # re-reading must not drop this transaction's unflushed changes
    session.scalar(  # fetching the row is what re-reads it into ``agreement``
        select(SharingAgreement)
        .options(selectinload(SharingAgreement.items))
        .where(SharingAgreement.id == agreement.id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    )
    return agreement


def _require_running(agreement: SharingAgreement) -> None:
    if agreement.terminated_at is not None:
        raise Conflict(
            f"the agreement is terminated (since {agreement.terminated_at.isoformat()})",
            code="wrong_status",
        )


def update_agreement(
    session: Session, actor: Actor, agreement_id: uuid.UUID, data: AgreementUpdate
) -> SharingAgreement:
    """Change running terms (lender's unit manager or admin)."""
    agreement = get_agreement(session, actor, agreement_id)
    if not actor.manages_unit(agreement.lender_unit_id, Role.UNIT_MANAGER):
        raise PermissionDenied("only the lender's unit_manager (or an admin) changes an agreement")
    lock_agreement(session, agreement)
    _require_running(agreement)
    before = to_read(agreement).model_dump(mode="json")
    changes = data.model_dump(exclude_unset=True)
    if (
        "valid_until" in changes
        and changes["valid_until"] is not None
        and changes["valid_until"] < agreement.valid_from
    ):
        raise InvalidInput("valid_until: must not be before valid_from", field="valid_until")
    for key, value in changes.items():
        if key == "rate_card":
            value = [e.model_dump(mode="json") for e in data.rate_card or []]
        setattr(agreement, key, value)
    session.flush()
    record(
        session,
        actor,
        "agreement.update",
        agreement,
        unit_id=agreement.lender_unit_id,
        before=before,
        after=to_read(agreement).model_dump(mode="json"),
    )
    return agreement


def terminate_agreement(
    session: Session, actor: Actor, agreement_id: uuid.UUID, reason: str, *, force: bool = False
) -> SharingAgreement:
    """End an agreement now; it stays for history (lender's unit manager or admin).

    Live loans under it that have not ended are refused (409 ``affects_bookings``) unless
    ``force``: then they are released in the same transaction (``app.bookings.withdrawals``).
    """
    from app.bookings import withdrawals  # bookings build on agreements, not the reverse

    agreement = get_agreement(session, actor, agreement_id)
    if not actor.manages_unit(agreement.lender_unit_id, Role.UNIT_MANAGER):
        raise PermissionDenied("only the lender's unit_manager (or an admin) ends an agreement")
    # A loan locks its resource before it reads the agreement: holding the lender's
    # resources, no loan under this agreement can be placed between check and end. Then the
    # agreement itself (resources, agreement, requests, bookings: the order changes lock in).
    session.execute(
        select(Resource.id)
        .where(Resource.unit_id == agreement.lender_unit_id)
        .order_by(Resource.id)
        .with_for_update()
    )
    lock_agreement(session, agreement)
    _require_running(agreement)
    now = utcnow()
    hit = withdrawals.under_agreement(session, agreement.id, now)
    withdrawals.refuse_unless_forced(hit, force=force, what="ending the agreement")
    before = to_read(agreement).model_dump(mode="json")
    agreement.terminated_at = now
    session.flush()
    record(
        session,
        actor,
        "agreement.terminate",
        agreement,
        unit_id=agreement.lender_unit_id,
        before=before,
        after={
            **to_read(agreement).model_dump(mode="json"),
            "released": [str(b.id) for b in hit],
        },
        reason=reason,
    )
    why = "the agreement it ran under was terminated"
    notify.agreement_ending(session, actor, agreement, reason)
    withdrawals.release(session, actor, hit, f"{why}: {reason}" if reason else why)
    return agreement


__all__ = [
    "covers",
    "create_agreement",
    "false",
    "get_agreement",
    "list_agreements",
    "lock_agreement",
    "shown_to_unit",
    "terminate_agreement",
    "to_read",
    "update_agreement",
    "visible_resources",
]
