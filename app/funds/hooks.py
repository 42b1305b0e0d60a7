"""The ledger follows the bookings: hold on confirmation, charge on completion, release on
cancellation (a borrower's cancellation pays the agreement's fee, if it sets one).

Each hold's reference is the booking id and its idempotency keys derive from it, so a
status change replayed by a retry never posts twice. Every function runs inside the
booking's own transaction: if the project cannot afford a confirmation, the whole change
is refused with the shortfall (409, code ``budget_short``).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

import ledger
from app.agreements.models import SharingAgreement
from app.auth.actor import Actor
from app.base import utcnow
from app.bookings.models import Booking
from app.catalog.models import ExpertSkill, Resource
from app.errors import Conflict
from app.funds.pricing import Price, price_of
from app.projects.models import Project
from ledger.errors import InsufficientFunds

HOLD_GRACE = timedelta(days=60)
"""A hold lapses this long after its booking ends if nobody completes or cancels it."""


def booking_price(
    session: Session,
    booking: Booking,
    *,
    resource: Resource | None = None,
    agreement: SharingAgreement | None = None,
) -> Price:
    """What the booking costs its project (``resource`` and ``agreement``: the booking's,
    when the caller holds them already)."""
    if resource is None or resource.id != booking.resource_id:
        resource = session.get(Resource, booking.resource_id)
        assert resource is not None
    if agreement is None or agreement.id != booking.agreement_id:
        agreement = (
            session.get(SharingAgreement, booking.agreement_id) if booking.agreement_id else None
        )
    minutes = int((booking.end - booking.start).total_seconds() // 60)
    return price_of(
        resource,
        agreement,
        minutes,
        own_unit=booking.borrower_unit_id == booking.lender_unit_id,
        day=booking.start.date(),
        skills=lambda: _skills_of(session, booking.resource_id),
    )


def _skills_of(session: Session, resource_id: uuid.UUID) -> set[str]:
    rows = session.scalars(select(ExpertSkill.skill_id).where(ExpertSkill.resource_id == resource_id))
    return {str(skill_id) for skill_id in rows}


def _ledger_of(session: Session, project_id: object) -> ledger.Ledger:
    project = session.get(Project, project_id)
    assert project is not None
    return ledger.open_ledger(session, project.id, project.currency)


def hold_for(
    session: Session,
    actor: Actor,
    booking: Booking,
    *,
    resource: Resource | None = None,
    agreement: SharingAgreement | None = None,
) -> None:
    """Reserve the booking's price from its project's free cash (409 if it cannot pay)."""
    price = booking_price(session, booking, resource=resource, agreement=agreement)
    if price.amount == 0:
        return
    # A project's ledger is opened in the project's currency when the project is made,
    # and the currency never changes: the project (loaded already) answers without a read.
    project = session.get(Project, booking.project_id)
    assert project is not None
    if price.currency != project.currency:
        raise Conflict(
            f"the loan is priced in {price.currency} but the project keeps its "
            f"books in {project.currency}",
            code="currency_mismatch",
        )
    try:
        ledger.place_hold(
            session,
            booking.project_id,
            ledger.Money(price.amount, price.currency),
            key=f"booking:{booking.id}:hold:{booking.sequence}",
            reference=str(booking.id),
            deadline=max(booking.end, utcnow()) + HOLD_GRACE,
            lender_unit_id=booking.lender_unit_id,
            borrower_unit_id=booking.borrower_unit_id,
            category="usage",
            memo=f"booking {booking.title}",
            actor_id=_actor_id(actor),
        )
    except InsufficientFunds as exc:
        raise Conflict(
            f"the project cannot afford this booking: it costs {price.amount} "
            f"{price.currency} minor units, {exc.available} are available "
            f"(short by {exc.shortfall})",
            field="project_id",
            code="budget_short",
            shortfall=exc.shortfall,
        ) from None


def _open_hold(session: Session, booking: Booking) -> ledger.Hold | None:
    return ledger.open_hold(session, str(booking.id))


def charge_for(session: Session, actor: Actor, booking: Booking) -> None:
    """Post the actual charge of a completed booking; the lending unit earns it."""
    hold = _open_hold(session, booking)
    if hold is None:
        return
    book = _ledger_of(session, booking.project_id)
    amount = min(booking_price(session, booking).amount, hold.amount)
    ledger.post_hold(
        session,
        hold.id,
        ledger.Money(amount, book.currency),
        key=f"booking:{booking.id}:charge",
        memo=f"completed: {booking.title}",
        actor_id=_actor_id(actor),
    )


def release_for(session: Session, actor: Actor, booking: Booking, *, fee: int = 0) -> None:
    """Void the booking's hold, or charge only ``fee`` (a cancellation fee) from it."""
    hold = _open_hold(session, booking)
    if hold is None:
        return
    if fee > 0:
        book = _ledger_of(session, booking.project_id)
        ledger.post_hold(
            session,
            hold.id,
            ledger.Money(min(fee, hold.amount), book.currency),
            key=f"booking:{booking.id}:fee",
            memo="cancellation fee",
            actor_id=_actor_id(actor),
        )
    else:
        ledger.void_hold(
            session,
            hold.id,
            key=f"booking:{booking.id}:void:{booking.sequence}",
            memo=f"released: {booking.status_reason}"[:200],
            actor_id=_actor_id(actor),
        )


def cancellation_fee(session: Session, booking: Booking) -> int:
    """The fee the agreement charges when the borrower cancels a confirmed loan."""
    if booking.agreement_id is None:
        return 0
    agreement = session.get(SharingAgreement, booking.agreement_id)
    return agreement.cancellation_fee if agreement else 0


def _actor_id(actor: Actor) -> uuid.UUID | None:
    return None if actor.user_id.int == 0 else actor.user_id


def charge_move_fee(session: Session, actor: Actor, booking: Booking, fee: int) -> None:
    """Charge ``fee`` (a late move's fee) from the booking's hold and release the rest.

    Keyed by the booking's sequence, so each move posts at most once; the caller places
    the hold of the moved booking afterwards (``hold_for``).
    """
    hold = _open_hold(session, booking)
    if hold is None:
        return
    book = _ledger_of(session, booking.project_id)
    ledger.post_hold(
        session,
        hold.id,
        ledger.Money(min(fee, hold.amount), book.currency),
        key=f"booking:{booking.id}:move-fee:{booking.sequence}",
        memo="fee of a late move",
        actor_id=_actor_id(actor),
    )
