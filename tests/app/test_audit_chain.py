"""The audit log's hash chain: what sealing links, in which order, and what verify says."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.audit import services as audit
from app.audit.chain import seal_all, seal_audit, verify_audit
from app.audit.models import AuditEvent, audit_chain
from app.auth.actor import SYSTEM
from app.db import make_engine, make_session_factory
from app.migrate import upgrade
from tests.conftest import PG_URL


class _Thing:
    """Something with an id and a table name, as ``audit.record`` expects."""

    __tablename__ = "things"

    def __init__(self) -> None:
        self.id = uuid.uuid4()


def _record(session: Session, n: int = 1, **kw: Any) -> list[AuditEvent]:
    events = [
        audit.record(session, SYSTEM, "thing.changed", _Thing(), unit_id=None, **kw)
        for _ in range(n)
    ]
    session.flush()
    return events


def _sealed(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(audit_chain)) or 0


def test_every_kind_of_json_survives_the_round_trip_of_the_content_hash(
    session: Session,
) -> None:
    odd = {
        "text": 'Zürich – 東京 \u2028 "quoted"',
        "float": 0.1,
        "big": 2**62,
        "nested": {"list": [1, None, True, {"b": 2, "a": 1}]},
        "empty": {},
    }
    _record(session, before=odd, after={"x": [odd]}, reason="why\nnot")
    _record(session, before=None, after=None)
    session.commit()
    seal_all(session)
    session.commit()
    report = verify_audit(session)
    assert report.ok, report.summary()
    assert report.counts["sealed"] == 2 and report.counts["unsealed"] == 0


def test_sealing_in_small_batches_makes_the_same_chain(session: Session) -> None:
    _record(session, 7)  # one transaction: on PostgreSQL one txn, ordered by id
    session.commit()
    _record(session, 3)
    session.commit()
    counts = []
    while (sealed := seal_audit(session, limit=3)) > 0:
        counts.append(sealed)
        session.commit()
    assert counts == [3, 3, 3, 1]
    report = verify_audit(session)
    assert report.ok, report.summary()
    positions = session.scalars(select(audit_chain.c.position).order_by("position")).all()
    assert positions == list(range(1, 11))


def test_on_postgresql_a_row_still_being_written_is_not_sealed_past(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: the sealer sees every committed row")
    factory = make_session_factory(engine)
    with factory() as slow, factory() as fast, factory() as sealer:
        late = _record(slow)[0]  # its transaction began first and is still open
        early = _record(fast)[0]
        fast.commit()
        assert seal_audit(sealer) == 0  # fast's row comes after slow's open transaction
        sealer.commit()
        slow.commit()
        assert seal_audit(sealer) == 2
        sealer.commit()
        order = sealer.scalars(select(audit_chain.c.event_id).order_by("position")).all()
        assert order == [late.id, early.id]
        report = verify_audit(sealer)
        assert report.ok, report.summary()


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[str]:
    """An empty database at revision 0006 (before the chain)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, "0006")
        yield url
        return
    if not PG_URL:
        pytest.skip("PostgreSQL not configured")
    name = f"copool_old_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url, "0006")
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_rows_written_before_the_chain_are_hashed_by_the_migration(old_database: str) -> None:
    engine = create_engine(old_database)
    with engine.begin() as conn:  # what 0006 code wrote: no content_hash column yet
        for n in range(3):
            conn.execute(
                text(
                    "INSERT INTO audit_events (id, at, action, object_type, object_id, reason, "
                    "after, created_at, updated_at) VALUES (:id, :at, 'old.change', 'things', "
                    ":obj, '', :after, :at, :at)"
                ),
                {
                    "id": uuid.uuid4() if "postgresql" in old_database else uuid.uuid4().bytes,
                    "at": f"2026-01-0{n + 1}T10:00:00.123456+00:00",
                    "obj": str(n),
                    "after": f'{{"n": {n}}}',
                },
            )
    engine.dispose()
    upgrade(old_database)
    app_engine = make_engine(old_database)
    with make_session_factory(app_engine)() as session:
        _record(session)
        session.commit()
        assert seal_all(session) == 4
        session.commit()
        report = verify_audit(session)
        assert report.ok, report.summary()
        assert _sealed(session) == 4
    app_engine.dispose()
