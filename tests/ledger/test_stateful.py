# ruff: noqa: E731  (the rules hand the call to ``attempt`` as a lambda)
"""A Hypothesis state machine drives the ledger against a small in-memory reference model.

After every step: Σ debits = Σ credits everywhere, every cached balance equals its postings,
no cash below zero, every hold resolved at most once (``check_books``), and the ledger's
figures equal the model's. Every refusal must be the documented error the model predicts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_session_factory
from ledger import (
    Money,
    available_funds,
    contribute,
    expire_due_holds,
    fund_statement,
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
    void_hold,
)
from ledger.errors import (
    ExceedsHold,
    ExceedsOutstanding,
    HoldAlreadyResolved,
    HoldExpired,
    InsufficientFunds,
    InvalidAmount,
    LedgerError,
    NotReversible,
    PledgeState,
)
from tests.ledger.conftest import FakeClock, check_books

UNITS = [uuid.UUID(int=i) for i in (1, 2, 3)]
LENDER = uuid.UUID(int=99)
amounts = st.integers(min_value=1, max_value=5_000)
ACTIONS: dict[str, dict[str, st.SearchStrategy[object]]] = {}


def action(**strategies: st.SearchStrategy[object]):  # type: ignore[no-untyped-def]
    """Register a step of the machine with the strategies of its arguments.

    One Hypothesis rule (``step``) picks among the actions uniformly: left to itself,
    Hypothesis' swarm testing spent most examples repeating a single rule.
    """

    def register(method):  # type: ignore[no-untyped-def]
        ACTIONS[method.__name__] = strategies
        return method

    return register


@dataclass
class ModelPledge:
    unit: uuid.UUID
    amount: int
    conditional: bool
    recognised: bool
    outstanding: int = 0


@dataclass
class ModelHold:
    amount: int
    deadline_minutes: int
    resolved: bool = False


@dataclass
class ModelEntry:
    kind: str
    amount: int = 0
    unit: uuid.UUID | None = None
    pledge: int | None = None
    reversed: bool = False


@dataclass
class Model:
    cash: int = 0
    held: int = 0
    spent: int = 0
    minutes: int = 0
    paid_in: dict[uuid.UUID, int] = field(default_factory=lambda: dict.fromkeys(UNITS, 0))
    pledges: dict[int, ModelPledge] = field(default_factory=dict)
    holds: dict[int, ModelHold] = field(default_factory=dict)
    entries: dict[int, ModelEntry] = field(default_factory=dict)


class LedgerMachine(RuleBasedStateMachine):
    factory: sessionmaker[Session]

    def __init__(self) -> None:
        super().__init__()
        self.session = self.factory()
        self.clock = FakeClock()
        self.start = self.clock.now
        self.project = uuid.uuid4()
        self.model = Model()
        self.keys = 0
        open_ledger(self.session, self.project, "EUR", clock=self.clock)
        self.session.commit()

    def teardown(self) -> None:
        self.session.close()

    def key(self) -> str:
        self.keys += 1
        return f"k{self.keys}"

    def attempt(self, expected: type[LedgerError] | None, call):  # type: ignore[no-untyped-def]
        """Run ``call``; it must succeed when ``expected`` is None, else raise exactly that."""
        try:
            result = call()
        except LedgerError as error:
            self.session.rollback()
            assert type(error) is expected, f"expected {expected}, got {error!r}"
            return None
        assert expected is None, f"expected {expected.__name__}, but the call succeeded"
        self.session.commit()
        return result

    @initialize(amount=st.integers(min_value=0, max_value=20_000))
    def seed_cash(self, amount: int) -> None:
        if amount:
            self.contribute_cash(UNITS[0], amount)

    @rule(data=st.data())
    def step(self, data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(ACTIONS)), label="action")
        kwargs = {
            arg: data if arg == "data" else data.draw(strategy, label=arg)
            for arg, strategy in ACTIONS[name].items()
        }
        getattr(self, name)(**kwargs)

    # ------------------------------------------------------------------ funding
    @action(unit=st.sampled_from(UNITS), amount=amounts, conditional=st.booleans())
    def make_pledge(self, unit: uuid.UUID, amount: int, conditional: bool) -> None:
        row = self.attempt(
            None,
            lambda: pledge(
                self.session, self.project, unit, Money(amount, "EUR"), key=self.key(),
                conditional=conditional, condition="if" if conditional else "", clock=self.clock,
            ),
        )  # fmt: skip
        self.model.pledges[row.id] = ModelPledge(
            unit, amount, conditional, not conditional, 0 if conditional else amount
        )
        if not conditional:
            entry_id = self._last_entry()
            self.model.entries[entry_id] = ModelEntry("pledge", amount, unit, row.id)

    @action(data=st.none())
    def meet_pledge(self, data: st.DataObject) -> None:
        if not self.model.pledges:
            return
        pid = data.draw(st.sampled_from(sorted(self.model.pledges)))
        p = self.model.pledges[pid]
        expected = None if p.conditional and not p.recognised else PledgeState
        if self.attempt(
            expected, lambda: mark_pledge_met(self.session, pid, key=self.key(), clock=self.clock)
        ):
            p.recognised, p.outstanding = True, p.amount
            self.model.entries[self._last_entry()] = ModelEntry("pledge", p.amount, p.unit, pid)

    @action(data=st.none(), amount=amounts)
    def receive(self, data: st.DataObject, amount: int) -> None:
        if not self.model.pledges:
            return
        pid = data.draw(st.sampled_from(sorted(self.model.pledges)))
        p = self.model.pledges[pid]
        expected = (
            PledgeState if not p.recognised
            else ExceedsOutstanding if amount > p.outstanding
            else None
        )  # fmt: skip
        call = lambda: receive_pledge(
            self.session, pid, Money(amount, "EUR"), key=self.key(), clock=self.clock
        )
        if entry := self.attempt(expected, call):
            p.outstanding -= amount
            self.model.cash += amount
            self.model.paid_in[p.unit] += amount
            self.model.entries[entry.id] = ModelEntry("receipt", amount, p.unit, pid)

    @action(unit=st.sampled_from(UNITS), amount=amounts)
    def contribute_cash(self, unit: uuid.UUID, amount: int) -> None:
        call = lambda: contribute(
            self.session, self.project, unit, Money(amount, "EUR"), key=self.key(), clock=self.clock
        )
        entry = self.attempt(None, call)
        self.model.cash += amount
        self.model.paid_in[unit] += amount
        self.model.entries[entry.id] = ModelEntry("contribution", amount, unit)

    @action(unit=st.sampled_from(UNITS), amount=amounts)
    def refund_cash(self, unit: uuid.UUID, amount: int) -> None:
        m = self.model
        expected = (
            ExceedsOutstanding if amount > m.paid_in[unit]
            else InsufficientFunds if amount > m.cash
            else None
        )  # fmt: skip
        call = lambda: refund(
            self.session, self.project, unit, Money(amount, "EUR"), key=self.key(), clock=self.clock
        )
        if entry := self.attempt(expected, call):
            m.cash -= amount
            m.paid_in[unit] -= amount
            m.entries[entry.id] = ModelEntry("refund", amount, unit)

    @action(lines=st.lists(st.integers(min_value=-50, max_value=3_000), min_size=1, max_size=4))
    def spend(self, lines: list[int]) -> None:
        """A multi-leg expense; a leg ≤ 0 is a bad leg that must refuse the whole entry."""
        total = sum(lines)
        expected = (
            InvalidAmount if any(a <= 0 for a in lines)
            else InsufficientFunds if total > self.model.cash
            else None
        )  # fmt: skip
        legs = [(f"cat{i % 3}", Money(a, "EUR")) for i, a in enumerate(lines)]
        call = lambda: record_expense(
            self.session, self.project, legs, key=self.key(), clock=self.clock
        )
        if entry := self.attempt(expected, call):
            self.model.cash -= total
            self.model.spent += total
            self.model.entries[entry.id] = ModelEntry("expense", total)

    # -------------------------------------------------------------------- holds
    @action(amount=amounts, minutes=st.sampled_from([1, 15, 60, 120]))
    def hold(self, amount: int, minutes: int) -> None:
        expected = InsufficientFunds if amount > self.model.cash else None
        call = lambda: place_hold(
            self.session, self.project, Money(amount, "EUR"), key=self.key(),
            reference="booking", deadline=self.clock.now + timedelta(minutes=minutes),
            lender_unit_id=LENDER, borrower_unit_id=UNITS[0], clock=self.clock,
        )  # fmt: skip
        if h := self.attempt(expected, call):
            self.model.cash -= amount
            self.model.held += amount
            self.model.holds[h.id] = ModelHold(amount, self.model.minutes + minutes)
            self.model.entries[self._last_entry()] = ModelEntry("hold", amount)

    def _pick_hold(self, data: st.DataObject) -> int:
        """Mostly a pending hold (resolving one is the interesting path), sometimes any."""
        pending = sorted(h for h, m in self.model.holds.items() if not m.resolved)
        pool = pending if pending and data.draw(st.integers(0, 3), label="pending?") else None
        return data.draw(st.sampled_from(pool or sorted(self.model.holds)), label="hold")

    def _hold_expected(self, hid: int, charge: int) -> type[LedgerError] | None:
        h = self.model.holds[hid]
        if h.resolved:
            return HoldAlreadyResolved
        if self.model.minutes >= h.deadline_minutes:
            return HoldExpired
        if charge > h.amount:
            return ExceedsHold
        return None

    @action(data=st.none(), fraction=st.sampled_from([0, 0.5, 1, 1, 1.2]))
    def post(self, data: st.DataObject, fraction: float) -> None:
        if not self.model.holds:
            return
        hid = self._pick_hold(data)
        h = self.model.holds[hid]
        charge = int(h.amount * fraction)
        call = lambda: post_hold(
            self.session, hid, Money(charge, "EUR"), key=self.key(), clock=self.clock
        )
        if entry := self.attempt(self._hold_expected(hid, charge), call):
            h.resolved = True
            self.model.held -= h.amount
            self.model.cash += h.amount - charge
            self.model.spent += charge
            self.model.entries[entry.id] = ModelEntry("charge", charge)

    @action(data=st.none())
    def void(self, data: st.DataObject) -> None:
        if not self.model.holds:
            return
        hid = self._pick_hold(data)
        h = self.model.holds[hid]
        call = lambda: void_hold(self.session, hid, key=self.key(), clock=self.clock)
        if entry := self.attempt(self._hold_expected(hid, 0), call):
            h.resolved = True
            self.model.held -= h.amount
            self.model.cash += h.amount
            self.model.entries[entry.id] = ModelEntry("release")

    @action(minutes=st.sampled_from([0, 1, 15, 60, 90]))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)
        self.model.minutes += minutes
        expired = self.attempt(
            None, lambda: expire_due_holds(self.session, clock=self.clock, project_id=self.project)
        )
        due = [
            hid
            for hid, h in self.model.holds.items()
            if not h.resolved and h.deadline_minutes <= self.model.minutes
        ]
        assert sorted(e.resolves_hold_id for e in expired) == sorted(due)
        for hid in due:
            h = self.model.holds[hid]
            h.resolved = True
            self.model.held -= h.amount
            self.model.cash += h.amount
        for e in expired:
            self.model.entries[e.id] = ModelEntry("expiry")

    # ---------------------------------------------------------------- reversals
    @action(data=st.none())
    def reverse_entry(self, data: st.DataObject) -> None:
        if not self.model.entries:
            return
        eid = data.draw(st.sampled_from(sorted(self.model.entries)))
        e, m = self.model.entries[eid], self.model
        expected: type[LedgerError] | None = None
        if (
            e.reversed
            or e.kind in ("hold", "release", "expiry", "reversal")
            or (e.kind == "charge" and e.amount == 0)
        ):
            expected = NotReversible
        elif e.kind == "pledge":
            assert e.pledge is not None
            p = m.pledges[e.pledge]
            expected = ExceedsOutstanding if p.outstanding < p.amount else None
        elif e.kind in ("receipt", "contribution"):
            assert e.unit is not None
            expected = (
                ExceedsOutstanding if m.paid_in[e.unit] < e.amount
                else InsufficientFunds if m.cash < e.amount
                else None
            )  # fmt: skip
        call = lambda: reverse(self.session, eid, key=self.key(), reason="test", clock=self.clock)
        if not (entry := self.attempt(expected, call)):
            return
        e.reversed = True
        m.entries[entry.id] = ModelEntry("reversal")
        if e.kind == "pledge":
            m.pledges[e.pledge].outstanding = 0  # type: ignore[index]
        elif e.kind == "receipt":
            m.cash -= e.amount
            m.paid_in[e.unit] -= e.amount  # type: ignore[index]
            m.pledges[e.pledge].outstanding += e.amount  # type: ignore[index]
        elif e.kind == "contribution":
            m.cash -= e.amount
            m.paid_in[e.unit] -= e.amount  # type: ignore[index]
        elif e.kind == "refund":
            m.cash += e.amount
            m.paid_in[e.unit] += e.amount  # type: ignore[index]
        elif e.kind in ("expense", "charge"):
            m.cash += e.amount
            m.spent -= e.amount

    # --------------------------------------------------------------- invariants
    @invariant()
    def books_balance_and_match_the_model(self) -> None:
        check_books(self.session)
        m = self.model
        assert available_funds(self.session, self.project).amount == m.cash >= 0
        statement = fund_statement(self.session, self.project, {UNITS[0]: 10_000})
        assert (statement.held, statement.spent) == (m.held, m.spent)
        for unit in UNITS:
            line = next((u for u in statement.units if u.unit_id == unit), None)
            assert (line.received - line.refunded if line else 0) == m.paid_in[unit]
        for pid, p in m.pledges.items():
            assert pledge_outstanding(self.session, pid) == p.outstanding
        self.session.rollback()

    def _last_entry(self) -> int:
        from sqlalchemy import func, select

        from ledger.models import Entry

        return int(self.session.scalar(select(func.max(Entry.id))))  # type: ignore[arg-type]


def test_ledger_matches_the_reference_model(engine: Engine) -> None:
    machine = type("Machine", (LedgerMachine,), {"factory": make_session_factory(engine)})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=20,
            stateful_step_count=30,
            deadline=None,
            derandomize=False,
            suppress_health_check=list(HealthCheck),
        ),
    )
