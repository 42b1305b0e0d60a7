"""Holds, funding flows, reversals, idempotency and crash safety, on both engines."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger import (
    Money,
    available_funds,
    available_funds_many,
    contribute,
    expire_due_holds,
    expire_hold,
    hold_state,
    mark_pledge_met,
    open_ledger,
    place_hold,
    pledge,
    pledge_outstanding,
    post_hold,
    receive_pledge,
    record_expense,
    refund,
    reverse,
    transfer,
    void_hold,
)
from ledger.errors import (
    CurrencyMismatch,
    ExceedsHold,
    ExceedsOutstanding,
    HoldAlreadyResolved,
    HoldExpired,
    HoldNotExpired,
    IdempotencyConflict,
    InsufficientFunds,
    InvalidAmount,
    NotReversible,
    PledgeState,
    UnknownCurrency,
)
from ledger.models import Entry, Posting
from tests.ledger.conftest import FakeClock, check_books, eur, new_project

UNIT_A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
LENDER = uuid.UUID("00000000-0000-4000-8000-0000000000f1")


def _funded(session: Session, clock: FakeClock, cents: int = 10_000) -> uuid.UUID:
    project = new_project(session, clock=clock)
    contribute(session, project, UNIT_A, eur(cents), key="fund", clock=clock)
    session.commit()
    return project


def _hold(session: Session, project: uuid.UUID, clock: FakeClock, cents: int, key: str = "h"):  # type: ignore[no-untyped-def]
    return place_hold(
        session, project, eur(cents), key=key, reference=f"booking-{key}",
        deadline=clock.now + timedelta(hours=2), lender_unit_id=LENDER,
        borrower_unit_id=UNIT_A, category="expert", clock=clock,
    )  # fmt: skip


def test_a_hold_posts_part_and_releases_the_rest(session: Session, clock: FakeClock) -> None:
    project = _funded(session, clock)
    hold = _hold(session, project, clock, 4_000)
    assert available_funds(session, project) == eur(6_000)
    post_hold(session, hold.id, eur(2_500), key="post", clock=clock)
    session.commit()
    assert available_funds(session, project) == eur(7_500)
    state = hold_state(session, hold.id)
    assert (state.state, state.charged) == ("posted", 2_500)
    with pytest.raises(HoldAlreadyResolved):
        void_hold(session, hold.id, key="void", clock=clock)
    check_books(session)


def test_a_hold_cannot_post_more_than_it_holds(session: Session, clock: FakeClock) -> None:
    project = _funded(session, clock)
    hold = _hold(session, project, clock, 4_000)
    with pytest.raises(ExceedsHold):
        post_hold(session, hold.id, eur(4_001), key="post", clock=clock)
    assert hold_state(session, hold.id).state == "pending"


def test_a_void_releases_everything(session: Session, clock: FakeClock) -> None:
    project = _funded(session, clock)
    hold = _hold(session, project, clock, 4_000)
    void_hold(session, hold.id, key="void", clock=clock)
    session.commit()
    assert available_funds(session, project) == eur(10_000)
    assert hold_state(session, hold.id).state == "voided"
    check_books(session)


def test_holds_expire_at_their_deadline_only(session: Session, clock: FakeClock) -> None:
    project = _funded(session, clock)
    hold = _hold(session, project, clock, 4_000)
    with pytest.raises(HoldNotExpired):
        expire_hold(session, hold.id, clock=clock)
    assert expire_due_holds(session, clock=clock) == []
    clock.advance(hours=2)
    with pytest.raises(HoldExpired):
        post_hold(session, hold.id, eur(1), key="late", clock=clock)
    [entry] = expire_due_holds(session, clock=clock, project_id=project)
    session.commit()
    assert entry.kind == "expiry"
    assert hold_state(session, hold.id).state == "expired"
    assert available_funds(session, project) == eur(10_000)
    assert expire_due_holds(session, clock=clock) == []
    check_books(session)


def test_an_unaffordable_hold_is_refused_with_the_shortfall(
    session: Session, clock: FakeClock
) -> None:
    project = _funded(session, clock)
    with pytest.raises(InsufficientFunds) as refused:
        _hold(session, project, clock, 10_001)
    assert (refused.value.shortfall, refused.value.available) == (1, 10_000)
    assert session.scalar(select(func.count()).select_from(Entry)) == 1


def test_amounts_are_integer_minor_units_of_the_ledger_currency(
    session: Session, clock: FakeClock
) -> None:
    project = _funded(session, clock)
    with pytest.raises(CurrencyMismatch):
        contribute(session, project, UNIT_A, Money(100, "USD"), key="usd", clock=clock)
    with pytest.raises(InvalidAmount):
        Money(1.5, "EUR")  # type: ignore[arg-type]
    with pytest.raises(InvalidAmount):
        contribute(session, project, UNIT_A, eur(0), key="zero", clock=clock)
    with pytest.raises(UnknownCurrency):
        Money(1, "XXX")
    with pytest.raises(CurrencyMismatch):
        open_ledger(session, project, "USD")
    assert Money.parse("12.34", "EUR") == eur(1234)
    assert Money.parse("5", "JPY") == Money(5, "JPY")
    with pytest.raises(InvalidAmount):
        Money.parse("0.001", "EUR")


def test_a_retry_returns_the_first_result_and_another_body_is_refused(
    session: Session, clock: FakeClock
) -> None:
    project = _funded(session, clock)
    first = _hold(session, project, clock, 1_000, key="h1")
    again = _hold(session, project, clock, 1_000, key="h1")
    assert again.id == first.id
    with pytest.raises(IdempotencyConflict):
        _hold(session, project, clock, 1_001, key="h1")
    posted = post_hold(session, first.id, eur(500), key="p1", clock=clock)
    # A retry after the hold is resolved still answers with the first result.
    assert post_hold(session, first.id, eur(500), key="p1", clock=clock).id == posted.id
    with pytest.raises(IdempotencyConflict):
        post_hold(session, first.id, eur(400), key="p1", clock=clock)
    session.commit()
    assert available_funds(session, project) == eur(9_500)
    check_books(session)


def test_pledges_receipts_and_conditions(session: Session, clock: FakeClock) -> None:
    project = new_project(session, clock=clock)
    firm = pledge(session, project, UNIT_A, eur(5_000), key="p1", clock=clock)
    maybe = pledge(
        session, project, UNIT_A, eur(3_000), key="p2", conditional=True,
        condition="if the grant is approved", clock=clock,
    )  # fmt: skip
    assert pledge_outstanding(session, firm.id) == 5_000
    assert pledge_outstanding(session, maybe.id) == 0
    with pytest.raises(PledgeState):
        receive_pledge(session, maybe.id, eur(1), key="r0", clock=clock)
    receive_pledge(session, firm.id, eur(2_000), key="r1", clock=clock)
    with pytest.raises(ExceedsOutstanding):
        receive_pledge(session, firm.id, eur(3_001), key="r2", clock=clock)
    with pytest.raises(PledgeState):
        mark_pledge_met(session, firm.id, key="m0", clock=clock)
    mark_pledge_met(session, maybe.id, key="m1", clock=clock)
    with pytest.raises(PledgeState):
        mark_pledge_met(session, maybe.id, key="m2", clock=clock)
    receive_pledge(session, maybe.id, eur(3_000), key="r3", clock=clock)
    session.commit()
    assert available_funds(session, project) == eur(5_000)
    assert pledge_outstanding(session, firm.id) == 3_000
    check_books(session)


def test_refunds_are_capped_by_what_the_unit_paid_in(session: Session, clock: FakeClock) -> None:
    project = _funded(session, clock, 1_000)
    other = uuid.uuid4()
    with pytest.raises(ExceedsOutstanding):
        refund(session, project, other, eur(1), key="rf0", clock=clock)
    record_expense(session, project, [("travel", eur(600))], key="x", clock=clock)
    with pytest.raises(InsufficientFunds):
        refund(session, project, UNIT_A, eur(500), key="rf1", clock=clock)
    refund(session, project, UNIT_A, eur(400), key="rf2", clock=clock)
    session.commit()
    assert available_funds(session, project) == eur(0)
    check_books(session)


def test_reversals_undo_once_and_not_holds(session: Session, clock: FakeClock) -> None:
    project = _funded(session, clock)
    hold = _hold(session, project, clock, 1_000)
    charge = post_hold(session, hold.id, eur(700), key="post", clock=clock)
    placing = session.scalars(select(Entry).where(Entry.kind == "hold")).one()
    with pytest.raises(NotReversible):
        reverse(session, placing.id, key="rv0", reason="no", clock=clock)
    undo = reverse(session, charge.id, key="rv1", reason="charged in error", clock=clock)
    assert undo.reverses_entry_id == charge.id
    with pytest.raises(NotReversible):
        reverse(session, charge.id, key="rv2", reason="again", clock=clock)
    with pytest.raises(NotReversible):
        reverse(session, undo.id, key="rv3", reason="undo the undo", clock=clock)
    session.commit()
    assert available_funds(session, project) == eur(10_000)
    check_books(session)


def test_a_pledge_with_receipts_cannot_be_reversed(session: Session, clock: FakeClock) -> None:
    project = new_project(session, clock=clock)
    p = pledge(session, project, UNIT_A, eur(500), key="p", clock=clock)
    receipt = receive_pledge(session, p.id, eur(100), key="r", clock=clock)
    recognised = session.scalars(select(Entry).where(Entry.kind == "pledge")).one()
    with pytest.raises(ExceedsOutstanding):
        reverse(session, recognised.id, key="rv", reason="withdrawn", clock=clock)
    reverse(session, receipt.id, key="rv-r", reason="bounced", clock=clock)
    reverse(session, recognised.id, key="rv-p", reason="withdrawn", clock=clock)
    session.commit()
    assert pledge_outstanding(session, p.id) == 0
    check_books(session)


def test_transfers_move_cash_between_projects_with_an_audit_trail(
    session: Session, clock: FakeClock
) -> None:
    source = _funded(session, clock)
    target = new_project(session, clock=clock)
    yen = new_project(session, "JPY", clock=clock)
    admin = uuid.uuid4()
    out, into = transfer(
        session, source, target, eur(2_500), key="t1", actor_id=admin,
        reason="rebalance after the audit", clock=clock,
    )  # fmt: skip
    assert (out.actor_id, into.actor_id) == (admin, admin)
    assert (out.counterparty_project_id, into.counterparty_project_id) == (target, source)
    with pytest.raises(CurrencyMismatch):
        transfer(session, source, yen, eur(1), key="t2", actor_id=admin, reason="x", clock=clock)
    with pytest.raises(InsufficientFunds):
        transfer(
            session, source, target, eur(7_501), key="t3", actor_id=admin, reason="x", clock=clock
        )
    session.commit()
    funds = available_funds_many(session, [source, target, uuid.uuid4()])
    assert funds == {source: eur(7_500), target: eur(2_500)}
    check_books(session)


def test_a_bad_leg_refuses_the_whole_entry(session: Session, clock: FakeClock) -> None:
    project = _funded(session, clock)
    with pytest.raises(InvalidAmount):
        record_expense(
            session, project, [("travel", eur(100)), ("food", eur(-5))], key="x", clock=clock
        )
    session.commit()
    assert session.scalar(select(func.count()).select_from(Posting)) == 2
    check_books(session)


def test_an_error_between_legs_leaves_no_partial_entry(
    session: Session, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _funded(session, clock)

    class Crash(Exception):
        pass

    real_add = session.add

    def crash_after_the_postings(obj: object, *args: object, **kwargs: object) -> None:
        if isinstance(obj, Entry):  # the postings are in; the entry row comes last
            raise Crash("power cut between the postings and the entry")
        real_add(obj, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(session, "add", crash_after_the_postings)
    with pytest.raises(Crash):
        record_expense(
            session, project, [("travel", eur(100)), ("food", eur(50))], key="x", clock=clock
        )
    monkeypatch.undo()
    session.commit()  # the caller carries on: nothing of the failed entry may be committed
    assert session.scalar(select(func.count()).select_from(Posting)) == 2
    assert available_funds(session, project) == eur(10_000)
    check_books(session)
    # The same key now works: the failed attempt left no trace.
    record_expense(session, project, [("travel", eur(100))], key="x", clock=clock)
    session.commit()
    assert available_funds(session, project) == eur(9_900)
    check_books(session)
