"""Behind PgBouncer in transaction mode (``COPOOL_PGBOUNCER=true``): the app keeps no
session state — no prepared statements, settings per transaction (``SET LOCAL``) — so
requests served over connections PgBouncer hands from client to client behave as direct
ones. With a ``pgbouncer`` binary the app runs through a real one in transaction mode;
the session-state checks run on any PostgreSQL."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import TestClient
from sqlalchemy import text
from sqlalchemy.engine import make_url

from app.auth.models import Role
from app.db import make_engine
from app.main import create_app
from app.settings import Settings
from tests.app.booking_world import build
from tests.app.test_bookings import MON, slot

PGBOUNCER = shutil.which("pgbouncer") or (
    "/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None
)


def _postgres_only(db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("PgBouncer stands in front of PostgreSQL only")


def test_transactions_carry_their_settings_and_sessions_keep_none(db_url: str) -> None:
    _postgres_only(db_url)
    engine = make_engine(db_url, pgbouncer=True, sqlite_busy_timeout_ms=1234)
    try:
        with engine.begin() as conn:
            inside = conn.execute(text("SELECT current_setting('lock_timeout'), "
                                       "current_setting('jit')")).one()
            for _ in range(8):  # psycopg would prepare from the 5th run on
                conn.execute(text("SELECT 1 WHERE 1 = :x"), {"x": 1})
            prepared = conn.execute(text("SELECT count(*) FROM pg_prepared_statements")).scalar()
        raw = engine.raw_connection()  # the same pooled session, past its transactions
        try:
            cursor = raw.cursor()
            cursor.execute("SHOW lock_timeout")
            session_timeout = cursor.fetchone()[0]
            raw.rollback()
        finally:
            raw.close()
    finally:
        engine.dispose()
    assert tuple(inside) == ("1234ms", "off")
    assert prepared == 0
    assert session_timeout != "1234ms"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def bouncer(db_url: str) -> Iterator[str]:
    """A PgBouncer in transaction mode in front of the test database; yields its URL."""
    _postgres_only(db_url)
    if PGBOUNCER is None:
        pytest.skip("no pgbouncer binary (apt-get install pgbouncer)")
    # a directory the postgres user can read too (pgbouncer refuses to run as root)
    tmp_path = Path(tempfile.mkdtemp(prefix="copool-pgbouncer-"))
    tmp_path.chmod(0o777)
    server = make_url(db_url)
    port = _free_port()
    (tmp_path / "users.txt").write_text(f'"{server.username}" ""\n')
    (tmp_path / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.host} port={server.port}\n"
        "[pgbouncer]\n"
        f"listen_addr = 127.0.0.1\nlisten_port = {port}\n"
        f"unix_socket_dir =\nauth_type = trust\nauth_file = {tmp_path / 'users.txt'}\n"
        "pool_mode = transaction\ndefault_pool_size = 2\nmax_client_conn = 200\n"
        f"logfile = {tmp_path / 'pgbouncer.log'}\n"
    )
    command = [PGBOUNCER, str(tmp_path / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command[1:1] = ["-u", "postgres"]
    proc = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = server.set(port=port).render_as_string(hide_password=False)
    try:
        _wait_for_port(port, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(tmp_path, ignore_errors=True)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(100):
        assert proc.poll() is None, "pgbouncer exited"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError("pgbouncer did not listen")


def test_the_app_serves_through_pgbouncer_in_transaction_mode(
    bouncer: str, tmp_path: Path, world_factory: Any
) -> None:
    settings = Settings(
        database_url=bouncer, demo_key_path=tmp_path / "k", pgbouncer=True,
        api_key_touch_seconds=0, jobs_in_process=True,
    )
    app = create_app(settings)
    try:
        world = world_factory(app)
        w = build(world)
        with TestClient(app=app) as client:
            for hour in range(9, 15):  # more requests than PgBouncer's 2 server connections
                booked = client.post("/bookings", json={
                    "resource_id": str(w.expert), "project_id": str(w.project),
                    **slot(MON, f"{hour:02d}:00", f"{hour:02d}:30")}, headers=w.requester)
                assert booked.status_code == 201, booked.text
            again = client.post("/bookings", json={
                "resource_id": str(w.expert), "project_id": str(w.project),
                **slot(MON, "09:15", "09:45")}, headers=w.requester)
            assert again.status_code == 409 and again.json()["code"] == "overlap"
            listed = client.get("/bookings", params={"limit": 50}, headers=w.requester)
            assert listed.status_code == 200 and len(listed.json()["items"]) == 6
            assert client.get("/health/ready").status_code == 200
            admin = world.user("root", "HQ", Role.ADMIN)
            assert client.get("/admin/jobs", headers=admin).status_code == 200
    finally:
        app.state.engine.dispose()


@pytest.fixture
def world_factory() -> Any:
    from tests.app.conftest import World

    return lambda app: World(app=app)
