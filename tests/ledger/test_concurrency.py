"""Several workers spend from one project at once: never below zero, caches equal postings."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.db import make_session_factory
from ledger import available_funds, contribute, place_hold, record_expense
from ledger.errors import InsufficientFunds
from ledger.models import Entry
from tests.ledger.conftest import FakeClock, check_books, eur, new_project

WORKERS = 4
ATTEMPTS = 10


def _run(workers: int, work) -> list[BaseException]:  # type: ignore[no-untyped-def]
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def target(n: int) -> None:
        start.wait()
        try:
            work(n)
        except BaseException as exc:  # reported to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    return errors


@pytest.mark.slow
def test_concurrent_spending_never_overdraws(
    engine: Engine, session: Session, clock: FakeClock
) -> None:
    project = new_project(session, clock=clock)
    contribute(session, project, uuid.uuid4(), eur(10_000), key="fund", clock=clock)
    session.commit()
    factory = make_session_factory(engine)
    spent = [0] * WORKERS
    refused = [0] * WORKERS

    def work(n: int) -> None:
        with factory() as s:
            for i in range(ATTEMPTS):
                try:
                    if i % 2:
                        record_expense(
                            s, project, [("travel", eur(300))], key=f"x{n}-{i}", clock=clock
                        )
                    else:
                        place_hold(
                            s, project, eur(300), key=f"h{n}-{i}", reference=f"b{n}-{i}",
                            deadline=clock.now + timedelta(days=1),
                            lender_unit_id=uuid.UUID(int=n + 1), clock=clock,
                        )  # fmt: skip
                    s.commit()
                    spent[n] += 300
                except InsufficientFunds:
                    s.rollback()
                    refused[n] += 1

    assert _run(WORKERS, work) == []
    assert sum(spent) == 10_000 // 300 * 300  # every affordable request went through
    assert sum(refused) == WORKERS * ATTEMPTS - 10_000 // 300
    assert available_funds(session, project) == eur(10_000 - sum(spent))
    session.commit()
    check_books(session)


@pytest.mark.slow
def test_concurrent_identical_calls_write_one_entry(
    engine: Engine, session: Session, clock: FakeClock
) -> None:
    project = new_project(session, clock=clock)
    contribute(session, project, uuid.uuid4(), eur(1_000), key="fund", clock=clock)
    session.commit()
    factory = make_session_factory(engine)
    ids: list[int] = []

    def work(n: int) -> None:
        with factory() as s:
            entry = record_expense(s, project, [("travel", eur(250))], key="same", clock=clock)
            s.commit()
            ids.append(entry.id)

    assert _run(WORKERS, work) == []
    assert len(set(ids)) == 1
    assert (
        session.scalar(select(func.count()).select_from(Entry).where(Entry.kind == "expense")) == 1
    )
    assert available_funds(session, project) == eur(750)
    session.commit()
    check_books(session)
