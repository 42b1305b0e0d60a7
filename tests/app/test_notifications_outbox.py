"""The outbox: ``emit`` writes one event and its deliveries in the caller's transaction."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.models import Role
from app.notifications import kinds
from app.notifications.models import (
    NotificationDelivery,
    NotificationEvent,
    NotificationPreference,
)
from app.notifications.outbox import UnknownKind, emit
from tests.app import factories as f


def _deliveries(s: Session, event_id: uuid.UUID) -> set[tuple[uuid.UUID | None, str, str]]:
    rows = s.scalars(select(NotificationDelivery).where(NotificationDelivery.event_id == event_id))
    return {(r.user_id, r.channel, r.status) for r in rows}


def test_approval_needed_reaches_the_lenders_resource_managers_only(session: Session) -> None:
    lender = f.unit(session)
    manager = f.user(session, lender.id, Role.RESOURCE_MANAGER)
    f.user(session, lender.id, Role.REQUESTER)  # not a manager: not told
    inactive = f.user(session, lender.id, Role.RESOURCE_MANAGER)
    inactive.active = False
    session.commit()
    event_id = emit(
        session,
        kinds.APPROVAL_NEEDED,
        subject_type="booking",
        subject_id=uuid.uuid4(),
        unit_ids=[lender.id],
        data={"title": "loan"},
    )
    session.commit()
    assert _deliveries(session, event_id) == {
        (manager.id, "inbox", "delivered"),
        (manager.id, "email", "pending"),
    }
    event = session.get(NotificationEvent, event_id)
    assert event is not None and event.unit_id == lender.id and event.payload == {"title": "loan"}


def test_the_actor_is_not_told_and_named_users_are(session: Session) -> None:
    u = f.unit(session)
    actor = f.user(session, u.id, Role.REQUESTER)
    other = f.user(session, u.id, Role.REQUESTER)
    session.add(NotificationPreference(user_id=other.id, channels={kinds.CANCELLED: ["inbox"]}))
    session.commit()
    event_id = emit(
        session,
        kinds.CANCELLED,
        subject_type="booking",
        subject_id=uuid.uuid4(),
        user_ids=[actor.id, other.id],
        data={},
        actor_id=actor.id,
    )
    assert _deliveries(session, event_id) == {(other.id, "inbox", "delivered")}


def test_a_rolled_back_change_leaves_no_event(session: Session) -> None:
    u = f.unit(session)
    f.user(session, u.id, Role.RESOURCE_MANAGER)
    session.commit()
    emit(
        session,
        kinds.APPROVAL_NEEDED,
        subject_type="booking",
        subject_id=uuid.uuid4(),
        unit_ids=[u.id],
        data={},
    )
    session.rollback()
    assert session.scalar(select(func.count()).select_from(NotificationEvent)) == 0
    assert session.scalar(select(func.count()).select_from(NotificationDelivery)) == 0


def test_an_unknown_kind_is_a_programming_error(session: Session) -> None:
    with pytest.raises(UnknownKind):
        emit(session, "nonsense", subject_type="x", subject_id=uuid.uuid4(), data={})
