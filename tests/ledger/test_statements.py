"""Golden fund statements, the register and its CSV, and unit statements."""

from __future__ import annotations

import csv
import io
import uuid
from dataclasses import asdict
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session

from ledger import (
    contribute,
    contribute_in_kind,
    fund_statement,
    mark_pledge_met,
    place_hold,
    pledge,
    post_hold,
    receive_pledge,
    record_expense,
    refund,
    register,
    register_csv,
    reverse,
    transfer,
    unit_statement,
)
from ledger.errors import InvalidShares
from ledger.shares import allocate
from tests.ledger.conftest import FakeClock, check_books, eur, new_project

A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
B = uuid.UUID("00000000-0000-4000-8000-00000000000b")
C = uuid.UUID("00000000-0000-4000-8000-00000000000c")
LENDER = uuid.UUID("00000000-0000-4000-8000-0000000000f1")
ADMIN = uuid.UUID("00000000-0000-4000-8000-0000000000ad")
AGREED = {A: 5000, B: 3000, C: 2000}


def _fixture(session: Session, clock: FakeClock) -> tuple[uuid.UUID, uuid.UUID]:
    """Two EUR projects with pledges, receipts, in-kind, holds, refunds and reversals."""
    project, other = new_project(session, clock=clock), new_project(session, clock=clock)

    def day() -> FakeClock:
        clock.advance(days=1)
        return clock

    p_a = pledge(session, project, A, eur(10_000), key="pa", clock=day())
    pledge(
        session, project, B, eur(6_000), key="pb", conditional=True, condition="grant", clock=clock
    )
    p_c = pledge(
        session, project, C, eur(2_000), key="pc", conditional=True, condition="board", clock=clock
    )
    mark_pledge_met(session, p_c.id, key="mc", clock=day())
    receive_pledge(session, p_a.id, eur(7_000), key="ra", clock=day())
    receive_pledge(session, p_c.id, eur(2_000), key="rc", clock=clock)
    bounced = receive_pledge(session, p_a.id, eur(1_000), key="ra2", clock=day())
    reverse(session, bounced.id, key="rv-ra2", reason="payment bounced", clock=clock)
    contribute(session, project, B, eur(5_000), key="cb", clock=day())
    contribute_in_kind(session, project, B, eur(1_500), key="kb", memo="two laptops", clock=clock)
    record_expense(
        session, project, [("travel", eur(800)), ("materials", eur(1_200))], key="x1", clock=day()
    )
    catering = record_expense(session, project, [("catering", eur(300))], key="x2", clock=clock)
    reverse(session, catering.id, key="rv-x2", reason="booked twice", clock=day())
    deadline = clock.now + timedelta(days=30)
    h1 = place_hold(
        session,
        project,
        eur(2_000),
        key="h1",
        reference="booking-1",
        deadline=deadline,
        lender_unit_id=LENDER,
        borrower_unit_id=A,
        category="expert",
        clock=day(),
    )
    post_hold(session, h1.id, eur(1_500), key="post-h1", clock=day())
    place_hold(
        session,
        project,
        eur(1_000),
        key="h2",
        reference="booking-2",
        deadline=deadline,
        lender_unit_id=LENDER,
        borrower_unit_id=C,
        category="device",
        clock=clock,
    )
    refund(session, project, B, eur(500), key="rf-b", clock=day())
    transfer(
        session, project, other, eur(400), key="t1", actor_id=ADMIN, reason="seed", clock=day()
    )
    h3 = place_hold(
        session, other, eur(300), key="h3", reference="booking-3", deadline=deadline,
        lender_unit_id=A, borrower_unit_id=LENDER, category="device", clock=clock,
    )  # fmt: skip
    post_hold(session, h3.id, eur(300), key="post-h3", clock=day())
    session.commit()
    return project, other


def test_golden_fund_statement(session: Session, clock: FakeClock) -> None:
    project, _ = _fixture(session, clock)
    statement = asdict(fund_statement(session, project, AGREED))
    assert statement == {
        "project_id": project,
        "currency": "EUR",
        "pledged": 12_000,
        "pledged_conditional": 6_000,
        "received": 14_000,
        "in_kind": 1_500,
        "refunded": 500,
        "outstanding_pledges": 3_000,
        "transfers_in": 0,
        "transfers_out": 400,
        "held": 1_000,
        "spent": 3_500,
        "available": 8_600,
        "spent_by_category": {"expert": 1_500, "materials": 1_200, "travel": 800},
        "earned_by_unit": {LENDER: 1_500},
        "units": [
            {
                "unit_id": A, "agreed_share_bp": 5000, "actual_share_bp": 4667,
                "pledged": 10_000, "pledged_conditional": 0, "received": 7_000, "in_kind": 0,
                "refunded": 0, "outstanding_pledges": 3_000, "contributed": 7_000,
                "versus_agreed": -500, "held": 500, "spent": 1_750, "available": 4_750,
            },
            {
                "unit_id": B, "agreed_share_bp": 3000, "actual_share_bp": 4000,
                "pledged": 0, "pledged_conditional": 6_000, "received": 5_000, "in_kind": 1_500,
                "refunded": 500, "outstanding_pledges": 0, "contributed": 6_000,
                "versus_agreed": 1_500, "held": 300, "spent": 1_050, "available": 3_150,
            },
            {
                "unit_id": C, "agreed_share_bp": 2000, "actual_share_bp": 1333,
                "pledged": 2_000, "pledged_conditional": 0, "received": 2_000, "in_kind": 0,
                "refunded": 0, "outstanding_pledges": 0, "contributed": 2_000,
                "versus_agreed": -1_000, "held": 200, "spent": 700, "available": 1_100,
            },
        ],
    }  # fmt: skip
    check_books(session)


def test_statement_totals_reconcile(session: Session, clock: FakeClock) -> None:
    project, other = _fixture(session, clock)
    for pid in (project, other):
        s = fund_statement(session, pid, AGREED)
        assert s.available == (
            s.received - s.refunded + s.transfers_in - s.transfers_out - s.held - s.spent
        )
        assert sum(u.held for u in s.units) == s.held
        assert sum(u.spent for u in s.units) == s.spent
        assert sum(u.available for u in s.units) == s.available + s.transfers_out - s.transfers_in
    other_statement = fund_statement(session, other, AGREED)
    assert (other_statement.transfers_in, other_statement.available) == (400, 100)


def test_agreed_shares_must_sum_to_the_whole(session: Session, clock: FakeClock) -> None:
    project = new_project(session, clock=clock)
    with pytest.raises(InvalidShares):
        fund_statement(session, project, {A: 5000, B: 4000})


def test_register_filters_and_pages(session: Session, clock: FakeClock) -> None:
    project, _ = _fixture(session, clock)
    everything = register(session, project, limit=1000)
    assert len(everything.entries) == 16
    assert everything.next_after is None
    holds = register(session, project, kinds=["hold"])
    assert [e.reference for e in holds.entries] == ["booking-1", "booking-2"]
    pages, after = [], None
    while True:
        page = register(session, project, account="cash", limit=4, after=after)
        pages.append([e.id for e in page.entries])
        if page.next_after is None:
            break
        after = page.next_after
    cash_ids = [i for p in pages for i in p]
    assert len(pages) == 4
    assert cash_ids == sorted(cash_ids)
    assert all(
        any(line.account == "cash" for line in e.lines)
        for e in everything.entries
        if e.id in cash_ids
    )
    netted = register(session, project, include_reversed=False, limit=1000)
    assert {e.kind for e in netted.entries}.isdisjoint({"reversal"})
    assert len(netted.entries) == 16 - 4
    start = everything.entries[0].effective_at
    first_two_days = register(
        session, project, since=start, until=start + timedelta(days=2), limit=1000
    )
    assert [e.kind for e in first_two_days.entries] == ["pledge", "pledge"]
    bounced = next(e for e in everything.entries if e.kind == "receipt" and e.reversed_by_entry_id)
    assert bounced.lines[0].amount == 1_000


def test_register_csv(session: Session, clock: FakeClock) -> None:
    project, _ = _fixture(session, clock)
    rows = list(csv.DictReader(io.StringIO(register_csv(session, project))))
    postings = sum(len(e.lines) for e in register(session, project, limit=1000).entries)
    assert len(rows) == postings
    refund_cash = next(r for r in rows if r["kind"] == "refund" and r["account"] == "cash")
    assert (refund_cash["debit"], refund_cash["credit"], refund_cash["currency"]) == (
        "",
        "5.00",
        "EUR",
    )
    assert refund_cash["unit_id"] == str(B)
    debits = sum(int(r["debit"].replace(".", "")) for r in rows if r["debit"])
    credits = sum(int(r["credit"].replace(".", "")) for r in rows if r["credit"])
    assert debits == credits
    only_holds = list(csv.DictReader(io.StringIO(register_csv(session, project, kinds=["hold"]))))
    assert {r["reference"] for r in only_holds} == {"booking-1", "booking-2"}


def test_unit_statements_across_projects(session: Session, clock: FakeClock) -> None:
    project, other = _fixture(session, clock)
    a = unit_statement(session, A)
    lines = {p.project_id: p for p in a.projects}
    assert set(lines) == {project, other}
    assert (lines[other].earned, lines[other].contributed) == (300, 0)
    line = lines[project]
    assert (line.pledged, line.received, line.outstanding_pledges, line.contributed) == (
        10_000, 7_000, 3_000, 7_000,
    )  # fmt: skip
    assert [(t.contributed, t.consumed, t.earned, t.reciprocity) for t in a.totals] == [
        (7_000, 1_500, 300, -1_200)
    ]
    lender = unit_statement(session, LENDER)
    assert {p.project_id for p in lender.projects} == {project, other}
    assert [(t.contributed, t.consumed, t.earned, t.reciprocity) for t in lender.totals] == [
        (0, 300, 1_500, 1_200)
    ]
    b = unit_statement(session, B)
    assert [(t.contributed, t.consumed, t.earned) for t in b.totals] == [(6_000, 0, 0)]


def test_allocate_never_loses_a_cent() -> None:
    assert allocate(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate(-100, [1, 1, 1]) == [-34, -33, -33]
    assert allocate(7, [0, 0]) == [0, 0]
    assert allocate(10_000, [7_000, 6_000, 2_000]) == [4667, 4000, 1333]
