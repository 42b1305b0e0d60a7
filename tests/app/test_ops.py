"""Operations: /metrics counts what was asked, every answer carries a request id that the
log lines of its request carry too, and /health/ready says why it is not ready."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar, get
from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app.admission import pool_capacity
from app.auth.models import Role
from app.main import create_app
from app.migrate import upgrade
from app.ops import logs
from app.settings import Settings
from tests.app.conftest import World
from tests.conftest import PG_URL

OLDER_REVISION = "0010"


def samples(client: TestClient[Litestar]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The scrape as {(sample name, labels): value}."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _labels(**labels: str) -> frozenset[tuple[str, str]]:
    return frozenset(labels.items())


def test_metrics_count_the_requests_made_per_route(
    app: Litestar, client: TestClient[Any], world: World
) -> None:
    admin = world.user("root", "HQ", Role.ADMIN)
    for _ in range(37):
        assert client.get("/units", headers=admin).status_code == 200
    for _ in range(3):
        assert client.get("/units", params={"limit": "nope"}, headers=admin).status_code == 400
    client.get(f"/units/{uuid.uuid4()}", headers=admin)
    client.get("/no/such/route")
    got = samples(client)
    ok = _labels(method="GET", route="/units", status="200")
    assert got[("copool_http_requests_total", ok)] == 37
    assert got[("copool_http_requests_total", _labels(method="GET", route="/units", status="400"))] == 3
    one = _labels(method="GET", route="/units/{unit_id}", status="404")
    assert got[("copool_http_requests_total", one)] == 1
    assert got[("copool_http_requests_total", _labels(method="GET", route="(none)", status="404"))] == 1
    timed = _labels(method="GET", route="/units")
    assert got[("copool_http_request_seconds_count", timed)] == 40
    assert got[("copool_http_request_seconds_bucket", timed | {("le", "+Inf")})] == 40
    assert got[("copool_http_requests_in_flight", frozenset())] == 1  # the scrape itself
    # every request gave its connection back; the pool's size is what the engine allows
    assert got[("copool_db_connections_in_use", frozenset())] == 0
    assert got[("copool_db_pool_capacity", frozenset())] == pool_capacity(app.state.engine)
    assert got[("copool_database_up", frozenset())] == 1
    assert got[("copool_allocation_runs", _labels(status="queued"))] == 0
    assert got[("copool_allocation_oldest_queued_seconds", frozenset())] == 0
    # the scrape before this one is counted too, under its own route
    again = samples(client)
    assert again[("copool_http_requests_total", _labels(method="GET", route="/metrics", status="200"))] == 1


def test_a_request_id_is_echoed_when_sane_and_made_otherwise(client: TestClient[Any]) -> None:
    given = "lb-7f3a:0001.a_b"
    assert client.get("/health", headers={"X-Request-Id": given}).headers["x-request-id"] == given
    made = {client.get("/health").headers["x-request-id"] for _ in range(3)}
    assert len(made) == 3 and all(re.fullmatch(r"[0-9a-f]{32}", m) for m in made)
    for junk in ("has spaces", "x" * 129, "quote\"", ""):
        answer = client.get("/health/live", headers={"X-Request-Id": junk})
        assert answer.status_code == 200
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"]), junk
    # an answer made before routing (an error) carries it as well
    assert client.get("/no/such/route", headers={"X-Request-Id": given}).headers["x-request-id"] == given


@pytest.fixture
def json_app(settings: Settings) -> Iterator[tuple[Litestar, io.StringIO]]:
    """The app logging JSON, with a route that logs a line, its log captured."""
    app = create_app(settings.model_copy(update={"log_format": "json"}))

    @get("/test/log", sync_to_thread=True)
    def write_a_line() -> dict[str, str]:
        logging.getLogger("copool.test").warning("inside the request")
        return {"ok": "yes"}

    app.register(write_a_line)
    captured = io.StringIO()
    logs.configure("INFO", "json", captured)
    yield app, captured
    logs.configure("INFO", "text")
    app.state.engine.dispose()


def test_log_lines_of_a_request_carry_its_id_as_json(json_app: Any) -> None:
    app, captured = json_app
    with TestClient(app=app) as client:
        rid = client.get("/test/log", headers={"X-Request-Id": "trace-42"}).headers["x-request-id"]
        made = client.get("/test/log").headers["x-request-id"]
    lines = [json.loads(line) for line in captured.getvalue().splitlines()]
    ours = [line for line in lines if line["message"] == "inside the request"]
    assert [line["request_id"] for line in ours] == [rid, made]
    assert rid == "trace-42"
    assert ours[0]["level"] == "WARNING" and ours[0]["logger"] == "copool.test"


def test_ready_when_migrated_and_workers_run_in_process(
    settings: Settings, db_url: str
) -> None:
    app = create_app(settings.model_copy(update={"jobs_in_process": True}))
    with TestClient(app=app) as client:
        assert client.get("/health/ready").json() == {"status": "ready"}
        assert client.get("/health/live").json() == {"status": "ok"}
        assert client.get("/health").json() == {"status": "ok"}
    app.state.engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def older_db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database of each engine migrated only to ``OLDER_REVISION``."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        upgrade(url, OLDER_REVISION)
        yield url
        return
    if not PG_URL:
        pytest.skip("PostgreSQL not configured")
    name = f"copool_old_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url, OLDER_REVISION)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_not_ready_at_an_older_migration(older_db_url: str, tmp_path: Path) -> None:
    settings = Settings(
        database_url=older_db_url, demo_key_path=tmp_path / "k", jobs_in_process=True
    )
    app = create_app(settings)
    with TestClient(app=app) as client:
        answer = client.get("/health/ready")
        assert client.get("/health/live").status_code == 200
    app.state.engine.dispose()
    assert answer.status_code == 503
    assert answer.headers["content-type"].startswith("application/problem+json")
    body = answer.json()
    assert [e["field"] for e in body["errors"]] == ["migrations"]
    assert OLDER_REVISION in body["detail"] and "copool db upgrade" in body["detail"]


def test_not_ready_on_postgresql_until_a_worker_beats(settings: Settings, db_url: str) -> None:
    if not db_url.startswith("postgresql"):
        pytest.skip("workers are required only on PostgreSQL")
    app = create_app(settings.model_copy(update={"jobs_in_process": False}))
    with TestClient(app=app) as client:
        silent = client.get("/health/ready")
        with app.state.engine.begin() as conn:  # what a starting copool worker records
            conn.execute(text("SELECT procrastinate_register_worker_v1()"))
        alive = client.get("/health/ready")
        with app.state.engine.begin() as conn:  # its heartbeat goes stale
            conn.execute(
                text("UPDATE procrastinate_workers SET last_heartbeat = now() - interval '61 s'")
            )
        stale = client.get("/health/ready")
    app.state.engine.dispose()
    assert silent.status_code == 503
    assert [e["field"] for e in silent.json()["errors"]] == ["worker"]
    assert "heartbeat" in silent.json()["detail"]
    assert alive.status_code == 200
    assert stale.status_code == 503


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_copool_serve_sums_the_metrics_of_every_worker(db_url: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"
    } | {"COPOOL_DATABASE_URL": db_url, "COPOOL_LOG_LEVEL": "WARNING", "COPOOL_JOBS_IN_PROCESS": "true"}
    command = [str(Path(sys.executable).parent / "copool"), "serve", "--port", str(port), "--workers", "2"]
    with (tmp_path / "serve.log").open("wb") as sink:
        proc = subprocess.Popen(command, env=env, stderr=sink, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, proc)
        for _ in range(60):  # a connection each: the kernel spreads them over both workers
            assert httpx.get(f"{base}/health/live", headers={"Connection": "close"}).status_code == 200
        counts = set()
        for _ in range(6):
            scrape = httpx.get(f"{base}/metrics", headers={"Connection": "close"}).text
            found = re.search(
                r'copool_http_requests_total\{method="GET",route="/health/live",status="200"\} (\S+)',
                scrape,
            )
            assert found, scrape[:2000]
            counts.add(float(found.group(1)))
        assert counts == {60.0}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _wait_ready(base: str, proc: subprocess.Popen[bytes]) -> None:
    for _ in range(600):
        assert proc.poll() is None, "copool serve exited"
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    time.sleep(1.5)  # the second worker imports the app (probes go to /health, not counted here)


def test_the_gates_refusals_are_counted_and_the_held_request_is_in_flight(
    settings: Settings,
) -> None:
    from tests.app.test_admission import Hold

    app = create_app(settings.model_copy(update={"max_in_flight": 1}))
    hold = Hold()
    app.register(hold.route())
    try:
        with TestClient(app=app) as client:
            held: list[Any] = []
            thread = threading.Thread(target=lambda: held.append(client.get("/test/hold")))
            thread.start()
            hold.entered.acquire(timeout=30)
            refused = [client.get("/units").status_code for _ in range(3)]
            during = samples(client)  # /metrics is never refused
            hold.release.set()
            thread.join(timeout=30)
            after = samples(client)
    finally:
        hold.release.set()
        app.state.engine.dispose()
    assert refused == [503, 503, 503] and held[0].status_code == 200
    assert during[("copool_http_requests_total", _labels(method="GET", route="(none)", status="503"))] == 3
    assert during[("copool_http_requests_in_flight", frozenset())] == 2  # the held one and the scrape
    assert after[("copool_http_requests_total", _labels(method="GET", route="/test/hold", status="200"))] == 1
