"""/metrics under load: a live ``copool serve --workers 2`` (PostgreSQL; one worker on
SQLite) answers mixed routes from many threads while /metrics is scraped. During the load
every scrape lies between what the client had answered and what it had sent; after it,
the request counts by method, route and status equal the client's exactly, summed across
the server's workers (issue 13).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.auth.models import Role
from tests.app.live_server import _free_port
from tests.app.test_jobs_worker import wait_for

pytestmark = pytest.mark.slow

THREADS = 8
PER_THREAD = 90
Key = tuple[str, str, int]
"""(method, route template, status) — the labels of ``copool_http_requests_total``."""


@pytest.fixture
def served(db_url: str, tmp_path: Path) -> Iterator[str]:
    """``copool serve`` with two uvicorn workers (one on SQLite), once ready; its base URL."""
    port = _free_port()
    workers = "1" if db_url.startswith("sqlite") else "2"
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"} | {
        "COPOOL_DATABASE_URL": db_url, "COPOOL_LOG_LEVEL": "WARNING",
        "COPOOL_JOBS_IN_PROCESS": "true",
    }
    copool = str(Path(sys.executable).with_name("copool"))
    with (tmp_path / "serve.log").open("wb") as sink:
        proc = subprocess.Popen(
            [copool, "serve", "--port", str(port), "--workers", workers],
            env=env, stderr=sink, start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
        try:  # /health is not among the routes counted below
            return httpx.get(f"{base}/health", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(ready, "copool serve to answer", timeout=60)
        yield base
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def scrape(base: str) -> tuple[dict[Key, float], float]:
    """The request counts of one /metrics scrape (a connection of its own), and the requests
    in flight besides the scrape itself."""
    answer = httpx.get(f"{base}/metrics", headers={"Connection": "close"}, timeout=30)
    assert answer.status_code == 200
    counts: dict[Key, float] = {}
    in_flight = 0.0
    for family in text_string_to_metric_families(answer.text):
        for s in family.samples:
            if s.name == "copool_http_requests_total":
                counts[(s.labels["method"], s.labels["route"], int(s.labels["status"]))] = s.value
            elif s.name == "copool_http_requests_in_flight":
                in_flight = s.value - 1
    return counts, in_flight


class Load:
    """Threads sending a fixed mix of routes; what they sent and what was answered."""

    def __init__(self, base: str, headers: dict[str, str], unit: uuid.UUID) -> None:
        self.base = base
        self.headers = {**headers, "Connection": "close"}  # spread over both workers
        self.mix: list[tuple[str, str, str]] = [
            ("GET", "/units", "/units"),
            ("GET", "/units/{unit_id}", f"/units/{unit}"),
            ("GET", "/units/{unit_id}", f"/units/{uuid.uuid4()}"),  # 404
            ("POST", "/units", "/units"),  # 403: a requester creates no unit
            ("GET", "/health/live", "/health/live"),
            ("GET", "/bookings", "/bookings"),
        ]
        self.lock = threading.Lock()
        self.sent = 0
        self.answered: Counter[Key] = Counter()
        self.errors: list[str] = []

    def work(self, n: int) -> None:
        """One thread's share: ``PER_THREAD`` requests through the mix."""
        with httpx.Client(base_url=self.base, headers=self.headers, timeout=60) as client:
            for i in range(PER_THREAD):
                method, route, path = self.mix[(n + i) % len(self.mix)]
                with self.lock:
                    self.sent += 1
                try:
                    body = {"name": "No", "code": f"N{n}{i}"} if method == "POST" else None
                    status = client.request(method, path, json=body).status_code
                except httpx.TransportError as exc:  # the server never answered: say so
                    self.errors.append(repr(exc))
                    continue
                with self.lock:
                    self.answered[(method, route, status)] += 1

    def progress(self) -> tuple[int, int]:
        """(answered, sent) so far."""
        with self.lock:
            return sum(self.answered.values()), self.sent


def _ours(counts: dict[Key, float], load: Load) -> float:
    routes = {(m, r) for m, r, _ in load.mix}
    return sum(v for (m, r, _), v in counts.items() if (m, r) in routes)


def test_metrics_scraped_during_and_after_load_match_the_clients_counts(
    served: str, world: Any
) -> None:
    headers = world.user("req", "A", Role.REQUESTER)
    load = Load(served, headers, world.units["A"])
    threads = [threading.Thread(target=load.work, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    during = []
    while any(t.is_alive() for t in threads):
        counts, _ = scrape(served)
        during.append((_ours(counts, load), load.progress()[1]))
    for thread in threads:
        thread.join(timeout=120)

    assert load.errors == []
    total = THREADS * PER_THREAD
    assert sum(load.answered.values()) == total
    assert {status for _, _, status in load.answered} == {200, 403, 404}
    assert any(0 < seen < total for seen, _ in during), during  # scraped while the load ran
    assert all(seen <= sent for seen, sent in during)  # nothing counted that was not sent
    assert [seen for seen, _ in during] == sorted(seen for seen, _ in during)  # never back
    # an answer is counted just after its handler sent it: once nothing but the scrape is
    # in flight, every answered request is counted
    looks: list[float] = []

    def settled() -> dict[Key, float] | None:
        counts, in_flight = scrape(served)
        looks.append(in_flight)
        return counts if in_flight == 0 else None

    after = wait_for(settled, "the server to finish its last answers")
    ours = {key: after.get(key, 0.0) for key in load.answered}
    assert ours == {key: float(n) for key, n in load.answered.items()}
    assert after[("GET", "/metrics", 200)] == len(during) + len(looks) - 1  # earlier scrapes
