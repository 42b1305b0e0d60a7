"""How requests are transacted: GET and HEAD read in read-only transactions beside the
writer; lock failures and an exhausted pool answer 503 with ``Retry-After``, never 500."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.auth.models import ApiKey, Role
from app.db import is_lock_failure, make_engine, make_session_factory, read_only_engine
from app.main import create_app
from app.settings import Settings
from app.units.models import Unit
from tests.app.conftest import World, session_of

# How long a test waits for a request that should answer at once; reaching it is the failure.
STUCK_AFTER_S = 20.0
LOCK_TIMEOUT_MS = 300


def _unit(code: str) -> Unit:
    return Unit(name=f"Unit {code}", code=code, description="")


def _in_thread(call: Any) -> tuple[threading.Thread, list[Any]]:
    """Run ``call`` in a thread; its result (or exception) lands in the returned list."""
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(call())
        except BaseException as exc:  # reported to the test, which asserts on it
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def test_get_answers_while_another_connection_holds_a_write_transaction(
    client: TestClient[Litestar], world: World, app: Litestar
) -> None:
    """On SQLite the writer lock is held by an open write transaction (on PostgreSQL a row
    lock and an uncommitted insert): a GET still answers, and does not see the write."""
    admin = world.user("root", "HQ", Role.ADMIN)
    world.unit("OLD")
    holding, release = threading.Event(), threading.Event()

    def writer() -> None:
        with make_session_factory(app.state.engine)() as s:
            s.add(_unit("NEW"))
            s.flush()  # BEGIN IMMEDIATE on SQLite: the writer lock is taken
            s.execute(select(Unit).where(Unit.code == "OLD").with_for_update())
            holding.set()
            release.wait(STUCK_AFTER_S * 2)
            s.commit()

    writer_thread, writer_out = _in_thread(writer)
    try:
        assert holding.wait(STUCK_AFTER_S), writer_out
        reader, answer = _in_thread(lambda: client.get("/units", headers=admin))
        reader.join(STUCK_AFTER_S)
        assert not reader.is_alive(), "the GET waited for the writer"
        response = answer[0]
        assert not isinstance(response, BaseException), response
        assert response.status_code == 200, response.text
        codes = {u["code"] for u in response.json()["items"]}
        assert "OLD" in codes and "NEW" not in codes
        # While the writer holds the lock, a write must wait for it: the GET did not take it.
        assert writer_thread.is_alive()
    finally:
        release.set()
        writer_thread.join(STUCK_AFTER_S)
    assert writer_out == [None]
    assert "NEW" in {u["code"] for u in client.get("/units", headers=admin).json()["items"]}


def test_a_write_inside_a_get_is_refused_and_nothing_is_written(
    app: Litestar, world: World
) -> None:
    """A GET handler that writes by mistake fails loudly (500) on both engines, the write
    rolled back; the same connections serve writes again afterwards."""
    admin = world.user("root", "HQ", Role.ADMIN)

    @get("/test-writing-get", sync_to_thread=True)
    def writing_get(db_session: Session) -> dict[str, str]:
        db_session.add(_unit("SNEAK"))
        db_session.flush()
        return {"status": "written"}

    app.register(writing_get)
    with TestClient(app=app) as client:
        refused = client.get("/test-writing-get")
        assert refused.status_code == 500, refused.text
        created = client.post(
            "/units", json={"name": "After", "code": "AFTER", "description": ""}, headers=admin
        )
        assert created.status_code == 201, created.text
    with session_of(app) as s:
        codes = set(s.scalars(select(Unit.code)))
    assert "SNEAK" not in codes and "AFTER" in codes


def test_read_only_transactions_refuse_writes_and_do_not_leak_into_the_pool(
    db_url: str,
) -> None:
    """One pooled connection alternates: read-only refuses an insert, the next write
    transaction on the same connection inserts."""
    engine = make_engine(db_url, pool_size=1, max_overflow=0)
    reads = read_only_engine(engine)
    try:
        for round_ in range(2):
            with Session(bind=reads) as s:
                assert s.scalar(select(func.count()).select_from(Unit)) == round_
                s.add(_unit(f"RO{round_}"))
                with pytest.raises(DBAPIError) as refused:
                    s.flush()
                assert not is_lock_failure(refused.value)
            with Session(bind=engine) as s:
                s.add(_unit(f"RW{round_}"))
                s.commit()
        with Session(bind=engine) as s:
            assert sorted(s.scalars(select(Unit.code))) == ["RW0", "RW1"]
    finally:
        engine.dispose()


def test_a_get_stamps_last_used_at_beside_its_read(
    client: TestClient[Litestar], world: World, app: Litestar
) -> None:
    """The GET's own transaction is read-only; the key is stamped in one of its own."""
    headers = world.user("staff", "A", Role.REQUESTER)
    with session_of(app) as s:
        assert s.scalar(select(ApiKey.last_used_at)) is None
    assert client.get("/users/me", headers=headers).status_code == 200
    with session_of(app) as s:
        assert s.scalar(select(ApiKey.last_used_at)) is not None


@pytest.fixture
def short_lock_app(db_url: str, tmp_path: Any) -> Iterator[Litestar]:
    """The app with lock waits of ``LOCK_TIMEOUT_MS`` (SQLite busy timeout and, on
    PostgreSQL, ``lock_timeout``)."""
    settings = Settings(
        database_url=db_url,
        demo_key_path=tmp_path / "demo.key",
        api_key_touch_seconds=0,
        sqlite_busy_timeout_ms=LOCK_TIMEOUT_MS,
    )
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


def test_a_lock_timeout_answers_503_with_retry_after(short_lock_app: Litestar) -> None:
    """Another connection holds the unit's row (PostgreSQL: FOR UPDATE) or the writer lock
    (SQLite): changing the unit gives up after the lock timeout with a 503, never a 500."""
    app = short_lock_app
    world = World(app=app)
    admin = world.user("root", "HQ", Role.ADMIN)
    unit_id = world.unit("LOCKED")
    with TestClient(app=app) as client, make_session_factory(app.state.engine)() as holder:
        holder.execute(select(Unit).where(Unit.id == unit_id).with_for_update())
        if app.state.engine.dialect.name == "sqlite":
            holder.add(_unit("HOLDER"))
            holder.flush()
        response = client.patch(f"/units/{unit_id}", json={"name": "Renamed"}, headers=admin)
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"].isdigit()
        assert response.headers["content-type"].startswith("application/problem+json")
        holder.rollback()
        # the lock released, the same change goes through
        again = client.patch(f"/units/{unit_id}", json={"name": "Renamed"}, headers=admin)
        assert again.status_code == 200, again.text


def test_a_deadlock_is_recognised_as_a_lock_failure(db_url: str) -> None:
    """Two transactions lock two rows in opposite orders: PostgreSQL aborts one with
    40P01, which is a lock failure (503), not a bug (500)."""
    if not db_url.startswith("postgresql"):
        pytest.skip("SQLite serialises writers: two write transactions never interleave")
    engine = make_engine(db_url)
    try:
        with Session(bind=engine) as s:
            first, second = _unit("D1"), _unit("D2")
            s.add_all([first, second])
            s.commit()
            ids = [first.id, second.id]
        both_hold_one = threading.Barrier(2, timeout=STUCK_AFTER_S)

        def lock_in_order(order: list[uuid.UUID]) -> None:
            with engine.connect() as conn:
                conn.execute(text("SET LOCAL lock_timeout = '20s'"))
                conn.execute(select(Unit.id).where(Unit.id == order[0]).with_for_update())
                both_hold_one.wait()
                conn.execute(select(Unit.id).where(Unit.id == order[1]).with_for_update())
                conn.rollback()

        threads = [_in_thread(lambda o=o: lock_in_order(o)) for o in (ids, ids[::-1])]
        for thread, _ in threads:
            thread.join(STUCK_AFTER_S * 2)
        outcomes = [out[0] for _, out in threads]
    finally:
        engine.dispose()
    failures = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(failures) == 1, outcomes
    assert isinstance(failures[0], DBAPIError) and is_lock_failure(failures[0])
    assert getattr(failures[0].orig, "sqlstate", None) == "40P01"


def test_a_pool_checkout_timeout_answers_503_with_retry_after(
    app: Litestar, db_url: str, world: World
) -> None:
    """No connection free within the pool's timeout: 503 with Retry-After, never 500."""
    tiny = create_engine(db_url, pool_size=1, max_overflow=0, pool_timeout=0.05)

    @get("/test-exhausted-pool", sync_to_thread=True)
    def exhausted() -> dict[str, str]:
        with tiny.connect():
            return {"status": "connected"}

    app.register(exhausted)
    try:
        with tiny.connect(), TestClient(app=app) as client:
            response = client.get("/test-exhausted-pool")
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"].isdigit()
    finally:
        tiny.dispose()
