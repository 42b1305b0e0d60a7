"""Booking engine benchmark (issue 10): copool as shipped against a bare anchor, over HTTP.

Each database (SQLite; PostgreSQL when given) gets a fresh, migrated database with a
borrowing unit (8 requesters, each with an API key, in 4 funded projects), two lending
units whose agreements need no approval, cap hours per month and carry a rate card, and
two calendars of 1,000 experts each (200 of the borrowing unit's own, 800 lent; lent
experts have a 60 % lending cap), then 10,000 and later 1,000,000 existing bookings
(bulk-inserted, not through HTTP):

- *mornings*: every expert's mornings fill outward from the four search weeks;
- *busy*: most experts are booked solid for 2–4 weeks from the search's first day, ten are
  free, so a search for 20 slots has to look ahead; their history lies outside the window.

At each size, three routes, one after the other, each from the same load generator
(asyncio, 32 keep-alive connections, every request a distinct free afternoon slot):

- ``realistic``: copool's ``POST /bookings`` of a lent, priced expert (the agreement's
  rate card prices it, its hours cap and the expert's lending cap are checked, the
  booking is confirmed at once and a hold is placed on the project's cash), each request
  with its own ``Idempotency-Key``, the keys of 8 users in turn;
- ``easy``: ``POST /bookings`` of the unit's own expert (price 0, no agreement, no caps,
  no ``Idempotency-Key``) — the figures kept under the old ``booking_*`` keys;
- ``anchor``: a separate minimal app (benchmarks/_booking_app.py: bare ASGI, one
  check-then-insert statement on the same ``bookings`` table, no auth, no middleware).

copool runs as shipped: ``copool serve`` (uvicorn, the real app factory, every setting at
its default, one worker) in a process of its own, with only ``COPOOL_DATABASE_URL`` set;
the anchor runs under the same uvicorn settings. Then ``GET /availability/slots`` for 20
one-hour slots over the 1,000 experts of each calendar and four weeks, one client.

Reported per route: throughput (bookings made per second: 201 answers), p50/p99 latency,
``shed`` (503 + Retry-After answers of copool's admission control, each waited out and the
request sent again, as a client would; its latency includes the wait), the ratio to the
anchor, the load
generator's CPU (``gen cpu``, CPU seconds per second; near 1.0 the generator itself is the
limit) and the server process's CPU (``srv cpu``; PostgreSQL's own processes not counted);
per database, the growth from the smallest size to the largest (the worst of throughput
falling and p99 rising, over every copool figure).

Goals: realistic booking ≥ 0.8× the anchor's throughput; booking p99 ≤ 150 ms
(PostgreSQL) and ≤ 250 ms (SQLite); search p99 ≤ 100 ms; 1M figures within 1.3× of 10k.

    python benchmarks/booking.py --quick --json var/bench/booking.json
    python benchmarks/booking.py --postgres-url postgresql+psycopg://copool@127.0.0.1:55432/postgres

``--scrape-metrics`` reads copool's ``/metrics`` (summed over every uvicorn worker) before
and after each measured phase and compares its ``copool_http_requests_total`` for the
phase's route (plus the admission gate's 503s, counted under route ``(none)``) with what
the load generator received (every final answer and every 503 it waited out): ``off %``,
goal within ±1 % (issue 13).

PostgreSQL comes from ``--postgres-url`` or ``COPOOL_BENCH_POSTGRES_URL`` (skipped with a
message when neither is set); a fresh database is created there and dropped afterwards.
``--quick`` uses 10,000 and 30,000 existing bookings, 150 bookings per route and a few
searches (about a minute per database); the table says which sizes ran.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from sqlalchemy import create_engine, insert, text

ROOT = Path(__file__).resolve().parent.parent
# Run as a script, Python puts benchmarks/ first on sys.path, where benchmarks/ledger.py
# would shadow the ledger package: drop it, and put the project root first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

import ledger  # noqa: E402
from app.agreements.models import AgreementScope  # noqa: E402
from app.agreements.schemas import AgreementCreate, RateCardEntry  # noqa: E402
from app.agreements.services import create_agreement  # noqa: E402
from app.auth import services as auth  # noqa: E402
from app.auth.actor import SYSTEM  # noqa: E402
from app.auth.models import Role  # noqa: E402
from app.auth.schemas import UserCreate  # noqa: E402
from app.bookings.models import Booking  # noqa: E402
from app.catalog import services as catalog  # noqa: E402
from app.catalog.models import Expert, ExpertSkill  # noqa: E402
from app.catalog.schemas import SkillCreate  # noqa: E402
from app.db import make_engine, make_session_factory, session_scope  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from app.projects.schemas import ProjectCreate, ShareTerm  # noqa: E402
from app.projects.services import create_project  # noqa: E402
from app.units.schemas import UnitCreate  # noqa: E402
from app.units.services import create_unit  # noqa: E402
from benchmarks import _load as load  # noqa: E402
from benchmarks._databases import fresh_postgres  # noqa: E402

ZONE = ZoneInfo("Europe/Berlin")
EXPERTS = 1000
"""Experts per calendar."""
OWN = 200
"""Of each calendar's experts, the first OWN belong to the borrowing unit."""
USERS = 8
PROJECTS = 4
CONNECTIONS = 32
WINDOW_START = date(2027, 6, 7)  # a Monday; the search covers four weeks from here
WINDOW_DAYS = 28
BOOKING_DAYS = 182  # the benchmark books afternoons over 26 weeks from the window's start
HOURS = {d: [["09:00", "17:00"]] for d in ("mon", "tue", "wed", "thu", "fri")}
# Existing bookings fill mornings; the benchmark books afternoons, so each request is free.
MORNING = [(clock(9), clock(10)), (clock(10, 30), clock(12))]
AFTERNOON = [clock(13), clock(14), clock(15), clock(16)]
HOURLY_RATE = 9_000  # minor units; the agreements' rate card prices the skill at this
HOURS_CAP = 150  # agreement: hours per month per expert (the load stays under it)
LENDING_CAP_BP = 7_000  # 70 % of working time (≈ 120 h a month; the load stays under it)
FUNDS = 10**12  # minor units paid into each project
ROUTES = ("realistic", "easy", "anchor")
P99_GOAL_MS = {"sqlite": 250.0, "postgresql": 150.0}
GOALS: dict[str, Any] = {"ratio": 0.8, "p99_ms": P99_GOAL_MS, "search_p99_ms": 100.0,
                         "growth": 1.3}


# --- the world --------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One expert: its unit and the agreement a loan of it runs under (None: own unit)."""

    id: uuid.UUID
    unit: uuid.UUID
    agreement: uuid.UUID | None


@dataclass
class World:
    """Ids the requests need."""

    tokens: list[str]
    users: list[uuid.UUID]
    borrower: uuid.UUID
    projects: list[uuid.UUID]
    morning_skill: uuid.UUID
    busy_skill: uuid.UUID
    morning: list[Member]
    busy: list[Member]

    @property
    def experts(self) -> list[Member]:
        """Both calendars' experts, mornings first."""
        return [*self.morning, *self.busy]


def seed(url: str) -> World:
    """Units, agreements, funded projects, requesters' keys, two calendars of experts."""
    engine = make_engine(url)
    try:
        with session_scope(make_session_factory(engine)) as s:
            borrower = create_unit(s, SYSTEM, UnitCreate(name="Borrowing unit", code="BORR")).id
            lenders = [create_unit(s, SYSTEM, UnitCreate(name=f"Lending unit {c}",
                                                         code=f"LEND{c}")).id for c in "AB"]
            users = [auth.create_user(s, SYSTEM, UserCreate(
                unit_id=borrower, name=f"Requester {i}", email=f"req{i}@borr.example.org",
                roles=[Role.REQUESTER, Role.PROJECT_LEAD])) for i in range(USERS)]
            tokens = [auth.issue_key(s, SYSTEM, u.id, "bench")[1] for u in users]
            morning_skill = catalog.create_skill(s, SYSTEM, SkillCreate(name="Hydrology")).id
            busy_skill = catalog.create_skill(s, SYSTEM, SkillCreate(name="Geology")).id
            card = [RateCardEntry(target="skill", target_id=sk, hourly_rate=HOURLY_RATE)
                    for sk in (morning_skill, busy_skill)]
            agreements = {lender: create_agreement(s, SYSTEM, AgreementCreate(
                lender_unit_id=lender, borrower_unit_id=borrower, scope=AgreementScope.ALL,
                requires_approval=False, hours_per_month_cap=HOURS_CAP, currency="EUR",
                rate_card=card, valid_from=date(2020, 1, 1))).id
                for lender in lenders}
            projects = []
            for i in range(PROJECTS):
                project = create_project(s, SYSTEM, ProjectCreate(
                    name=f"Benchmark {i}", code=f"BENCH{i}", lead_unit_id=borrower,
                    lead_user_id=users[0].id, start_date=date(2020, 1, 1),
                    end_date=date(2035, 12, 31), currency="EUR",
                    shares=[ShareTerm(unit_id=borrower, share_bp=10_000)],
                    member_ids=[u.id for u in users]))
                ledger.contribute(s, project.id, borrower, ledger.Money(FUNDS, "EUR"),
                                  key=f"bench-funding-{i}")
                projects.append(project.id)
            calendars: dict[str, list[Member]] = {}
            for name, skill in (("Mornings", morning_skill), ("Busy", busy_skill)):
                units = [borrower if i < OWN else lenders[i % 2] for i in range(EXPERTS)]
                experts = [Expert(unit_id=unit, name=f"{name} {i:04d}",
                                  time_zone="Europe/Berlin", working_hours=HOURS,
                                  lending_cap_bp=10_000 if unit == borrower else LENDING_CAP_BP,
                                  hourly_rate=HOURLY_RATE)
                           for i, unit in enumerate(units)]
                s.add_all(experts)
                s.flush()
                s.add_all(ExpertSkill(resource_id=e.id, skill_id=skill, level=1 + i % 5)
                          for i, e in enumerate(experts))
                calendars[name] = [Member(e.id, e.unit_id, agreements.get(e.unit_id))
                                   for e in experts]
            return World(tokens=tokens, users=[u.id for u in users], borrower=borrower,
                         projects=projects, morning_skill=morning_skill,
                         busy_skill=busy_skill, morning=calendars["Mornings"],
                         busy=calendars["Busy"])
    finally:
        engine.dispose()


def _weekdays_outward(start: date, skip: tuple[date, date] | None = None) -> Iterator[date]:
    """Weekdays nearest ``start`` first (start, the one before, the one after, …), leaving
    out the days of ``skip`` (a half-open date range)."""
    after = start
    before = start - timedelta(days=1)
    while True:
        for day, step in ((after, 1), (before, -1)):
            while day.weekday() >= 5 or (skip and skip[0] <= day < skip[1]):
                day += timedelta(days=step)
            yield day
            if step == 1:
                after = day + timedelta(days=1)
            else:
                before = day - timedelta(days=1)


def _row(world: World, n: int, expert: Member, start: datetime, end: datetime,
         status: str, now: datetime) -> dict[str, Any]:
    return {"id": uuid.uuid4(), "resource_id": expert.id,
            "project_id": world.projects[n % PROJECTS], "agreement_id": expert.agreement,
            "borrower_unit_id": world.borrower, "lender_unit_id": expert.unit,
            "created_by": world.users[n % USERS], "title": "existing", "status_reason": "",
            "sequence": 0, "request_id": None, "requirement_id": None, "series_id": None,
            "checked_in_at": None, "cancelled_at": None, "start": start, "end": end,
            "block_start": start, "block_end": end, "status": status,
            "created_at": now, "updated_at": now}


def busy_blocks(world: World) -> list[dict[str, Any]]:
    """The busy calendar: all but ten experts booked solid (Monday 08:00 to Friday 18:00,
    a booking a week) for 2, 3 or 4 weeks from the window's first day."""
    rows = []
    now = datetime.now(UTC)
    for j, expert in enumerate(world.busy):
        if j % 100 == 0:
            continue
        for week in range(2 + j % 3):
            monday = WINDOW_START + timedelta(weeks=week)
            rows.append(_row(world, j, expert,
                             datetime.combine(monday, clock(8), ZONE).astimezone(UTC),
                             datetime.combine(monday + timedelta(days=4), clock(18),
                                              ZONE).astimezone(UTC), "confirmed", now))
    return rows


def existing_bookings(world: World, first: int, count: int) -> Iterator[dict[str, Any]]:
    """Bookings ``first`` … ``first + count`` of one endless deterministic sequence.

    Round-robin over both calendars' experts; each expert's mornings fill outward from the
    search window, two bookings a weekday; one in ten is cancelled. A busy-calendar expert's
    mornings skip the window (its busy blocks are there). A smaller set is a prefix of a
    larger one, which adds years of history and future around the window.
    """
    experts = world.experts
    per_expert = (first + count) // (2 * len(experts)) + 2
    centre = WINDOW_START + timedelta(days=10)
    window = (WINDOW_START, WINDOW_START + timedelta(days=WINDOW_DAYS))
    morning_days = list(itertools.islice(_weekdays_outward(centre), per_expert))
    busy_days = list(itertools.islice(_weekdays_outward(centre, window), per_expert))
    now = datetime.now(UTC)
    for n in range(first, first + count):
        e = n % len(experts)
        expert = experts[e]
        k = n // len(experts)
        day = (morning_days if e < EXPERTS else busy_days)[k // 2]
        s_local, e_local = MORNING[k % 2]
        start = datetime.combine(day, s_local, ZONE).astimezone(UTC)
        end = datetime.combine(day, e_local, ZONE).astimezone(UTC)
        yield _row(world, n, expert, start, end,
                   "cancelled" if n % 10 == 9 else "confirmed", now)


BOOKING_COLUMNS = ["id", "resource_id", "project_id", "request_id", "requirement_id",
                   "series_id", "agreement_id", "borrower_unit_id", "lender_unit_id",
                   "created_by", "title", "start", "end", "block_start", "block_end", "status",
                   "status_reason", "sequence", "checked_in_at", "cancelled_at", "created_at",
                   "updated_at"]


def bulk_insert(url: str, rows: Iterator[dict[str, Any]]) -> float:
    """Insert existing bookings fast (COPY on PostgreSQL, executemany on SQLite); seconds."""
    started = time.perf_counter()
    if url.startswith("postgresql"):
        engine = create_engine(url)
        with engine.begin() as conn:
            raw: Any = conn.connection.driver_connection
            columns = ", ".join(f'"{c}"' for c in BOOKING_COLUMNS)
            with raw.cursor() as cur, cur.copy(f"COPY bookings ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[c] for c in BOOKING_COLUMNS])
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE bookings"))
        engine.dispose()
    else:
        engine = make_engine(url)
        table = insert(Booking)
        with engine.begin() as conn:
            while True:
                chunk = list(itertools.islice(rows, 20_000))
                if not chunk:
                    break
                conn.execute(table, chunk)
            conn.exec_driver_sql("ANALYZE")
        engine.dispose()
    return time.perf_counter() - started


# --- databases and servers --------------------------------------------------------------


@contextmanager
def fresh_database(kind: str, pg_url: str | None, workdir: Path) -> Iterator[str]:
    """A new, migrated database; a PostgreSQL one is dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{workdir / 'bench.db'}"
        upgrade(url)
        yield url
        return
    assert pg_url
    with fresh_postgres(pg_url) as url:
        yield url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running server: its base URL and process."""

    base: str
    proc: subprocess.Popen[bytes]

    def cpu_seconds(self) -> float:
        """CPU time the server process has used so far (Linux; 0 elsewhere)."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def serve(which: str, url: str, log: Path) -> Iterator[Server]:
    """``copool serve`` (``which="copool"``) or the anchor under the same uvicorn settings,
    on 127.0.0.1, in a process of its own; always stopped on the way out.

    copool gets only ``COPOOL_DATABASE_URL``: every other setting keeps its default (no
    ``COPOOL_*`` variable of the caller's environment and no ``.env`` file reaches it).
    """
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPOOL_")}
    env["COPOOL_DATABASE_URL"] = url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    if which == "copool":
        # what `copool serve` runs, from a directory without a .env file
        command = [sys.executable, "-c", "from app.cli import main; main()", "serve",
                   "--host", "127.0.0.1", "--port", str(port)]
    else:
        # `copool serve`'s uvicorn settings: one worker, log level info, no access log
        command = [sys.executable, "-m", "uvicorn", "--factory",
                   "benchmarks._booking_app:app_factory", "--host", "127.0.0.1",
                   "--port", str(port), "--workers", "1", "--log-level", "info",
                   "--no-access-log"]
    with log.open("ab") as sink:
        proc = subprocess.Popen(command, cwd=log.parent, env=env, stdout=subprocess.DEVNULL,
                                stderr=sink, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{which} server exited: {log.read_text()[-2000:]}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{which} server did not start within 60 s")
            time.sleep(0.1)
        yield Server(base, proc)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)


# --- load -------------------------------------------------------------------------------

Slot = tuple[Member, datetime, datetime]


def afternoon_slots(experts: list[Member], seed: int) -> Iterator[Slot]:
    """Every afternoon hour of ``experts`` over 26 weeks, shuffled (all free at first)."""
    slots: list[Slot] = []
    for offset in range(BOOKING_DAYS):
        day = WINDOW_START + timedelta(days=offset)
        if day.weekday() >= 5:
            continue
        for hour in AFTERNOON:
            start = datetime.combine(day, hour, ZONE).astimezone(UTC)
            slots.extend((e, start, start + timedelta(hours=1)) for e in experts)
    random.Random(seed).shuffle(slots)
    return iter(slots)


class Requests:
    """Encodes each route's requests; every request takes a fresh slot."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.own = afternoon_slots(world.morning[:OWN], seed=3)
        self.lent = afternoon_slots(world.morning[OWN:], seed=4)
        self.counter = itertools.count()

    def _booking(self, slot: Slot, keyed: bool, host: str) -> bytes:
        n = next(self.counter)
        expert, start, end = slot
        headers = {"authorization": f"Bearer {self.world.tokens[n % USERS]}"}
        if keyed:
            headers["idempotency-key"] = uuid.uuid4().hex
        body = {"resource_id": str(expert.id),
                "project_id": str(self.world.projects[(n // USERS) % PROJECTS]),
                "start": start.isoformat(), "end": end.isoformat(), "title": "bench"}
        return load.encode("POST", "/bookings", host, headers, body)

    def _anchor(self, slot: Slot, host: str) -> bytes:
        n = next(self.counter)
        expert, start, end = slot
        body = {"resource_id": str(expert.id),
                "project_id": str(self.world.projects[(n // USERS) % PROJECTS]),
                "agreement_id": str(expert.agreement) if expert.agreement else None,
                "borrower_unit_id": str(self.world.borrower), "lender_unit_id": str(expert.unit),
                "created_by": str(self.world.users[n % USERS]),
                "start": start.isoformat(), "end": end.isoformat()}
        return load.encode("POST", "/anchor", host, None, body)

    def make(self, route: str, n: int, base: str) -> list[bytes]:
        """``n`` requests of ``route`` for the server at ``base``."""
        host = base.removeprefix("http://")
        if route == "realistic":
            return [self._booking(next(self.lent), True, host) for _ in range(n)]
        if route == "easy":
            return [self._booking(next(self.own), False, host) for _ in range(n)]
        return [self._anchor(next(self.lent), host) for _ in range(n)]


Counts = dict[tuple[str, str, str], float]
_SAMPLE = re.compile(r'^copool_http_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$')


def scrape(server: Server) -> Counts:
    """copool's ``copool_http_requests_total`` by (method, route, status), summed by its
    ``/metrics`` over every uvicorn worker."""
    answer = httpx.get(f"{server.base}/metrics", timeout=30)
    answer.raise_for_status()
    out: Counts = {}
    for line in answer.text.splitlines():
        sample = _SAMPLE.match(line)
        if sample:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', sample["labels"]))
            out[(labels["method"], labels["route"], labels["status"])] = float(sample["value"])
    return out


def metrics_check(before: Counts, after: Counts, method: str, route: str,
                  run: load.Run) -> dict[str, Any]:
    """What copool counted for ``method route`` between two scrapes against what the load
    generator received: every final answer and every 503 it waited out (admission control
    sheds before routing, so copool counts those under route ``(none)``)."""
    def counted(want: str, status: str | None = None) -> int:
        return round(sum(v - before.get(k, 0.0) for k, v in after.items()
                         if k[:2] == (method, want) and status in (None, k[2])))
    sent = run.requests + run.shed
    on_route = counted(route)
    shed = counted("(none)", "503")
    return {"sent": sent, "counted_route": on_route, "counted_shed": shed,
            "off_pct": round(100 * (on_route + shed - sent) / max(sent, 1), 2)}


def book(server: Server, requests: Requests, route: str, seconds: float, most: int,
         check: bool = False) -> dict[str, Any]:
    """Warm the route with two requests per connection, then book for ``seconds`` (at most
    ``most`` bookings); ``check``: scrape copool's /metrics around the run and compare."""
    load.run(server.base, requests.make(route, 2 * CONNECTIONS, server.base), CONNECTIONS)
    batch = requests.make(route, most, server.base)
    before = scrape(server) if check else {}
    cpu0 = server.cpu_seconds()
    run = load.run(server.base, batch, CONNECTIONS, seconds)
    out = {} if not check else {
        "metrics": metrics_check(before, scrape(server), "POST", "/bookings", run)}
    return {**out,
        "requests": run.requests,
        # bookings made per second: a shed request (503) counts once it is booked
        "rps": round(run.per_second(201), 1),
        "shed_503": run.shed,
        "p50_ms": round(load.percentile(run.latencies_ms, 0.5), 1),
        "p99_ms": round(load.percentile(run.latencies_ms, 0.99), 1),
        "gen_cpu": round(run.gen_cpu, 3),
        "server_cpu": round((server.cpu_seconds() - cpu0) / run.wall_s, 3),
        "statuses": {str(k): v for k, v in sorted(run.statuses.items())},
    }


def search(server: Server, world: World, skill: uuid.UUID, n: int, budget_s: float,
           check: bool = False) -> dict[str, Any]:
    """``GET /availability/slots`` for 20 one-hour slots over four weeks, one client;
    ``n`` times, fewer if they would take longer than ``budget_s``."""
    params = {"skill_id": str(skill), "duration_minutes": 60,
              "start": datetime.combine(WINDOW_START, clock(0), ZONE).isoformat(),
              "end": datetime.combine(WINDOW_START + timedelta(days=WINDOW_DAYS), clock(0),
                                      ZONE).isoformat(), "limit": 20}
    request = load.encode("GET", "/availability/slots", server.base.removeprefix("http://"),
                          {"authorization": f"Bearer {world.tokens[0]}"}, params=params)
    first = load.run(server.base, [request], 1)  # warm
    if first.statuses != {200: 1}:
        raise RuntimeError(f"slot search failed: {first.statuses} {first.first_body[:500]!r}")
    found = json.loads(first.first_body)
    runs = max(3, min(n, int(budget_s / max(first.wall_s, 1e-3))))
    before = scrape(server) if check else {}
    run = load.run(server.base, [request] * runs, 1)
    latest = max((s["start"] for s in found), default=None)
    out = {} if not check else {
        "metrics": metrics_check(before, scrape(server), "GET", "/availability/slots", run)}
    return {**out,
        "p50_ms": round(load.percentile(run.latencies_ms, 0.5), 1),
        "p99_ms": round(load.percentile(run.latencies_ms, 0.99), 1),
        "slots_found": len(found), "latest_start": latest, "searches": runs,
        "gen_cpu": round(run.gen_cpu, 3),
    }


@dataclass(frozen=True)
class Plan:
    """How long each route runs, and how many searches."""

    sizes: list[int]
    seconds: float
    """Each route books for this long at each size."""
    most: dict[str, int]
    """At most this many bookings per route and size (slots are finite)."""
    searches: int
    search_budget_s: float
    scrape_metrics: bool = False
    """Scrape copool's /metrics around each phase and compare its counts with the generator's."""


QUICK = Plan([10_000, 20_000], 2.0, {"realistic": 1500, "easy": 1500, "anchor": 12_000}, 10, 4.0)
FULL = Plan([10_000, 1_000_000], 20.0, {"realistic": 12_000, "easy": 12_000, "anchor": 90_000},
            100, 60.0)


def measure(copool: Server, anchor: Server, world: World, requests: Requests, plan: Plan
            ) -> dict[str, Any]:
    """Every figure at the database's current size."""
    check = plan.scrape_metrics
    runs = {route: book(anchor if route == "anchor" else copool, requests, route,
                        plan.seconds, plan.most[route], check and route != "anchor")
            for route in ("anchor", "realistic", "easy")}
    n_search, search_budget_s = plan.searches, plan.search_budget_s
    mornings = search(copool, world, world.morning_skill, n_search, search_budget_s, check)
    busy = search(copool, world, world.busy_skill, n_search, search_budget_s, check)
    anchor_rps = runs["anchor"]["rps"]
    out: dict[str, Any] = {}
    for route, name in (("anchor", "anchor"), ("easy", "booking"), ("realistic", "realistic")):
        r = runs[route]
        out.update({f"{name}_rps": r["rps"], f"{name}_p50_ms": r["p50_ms"],
                    f"{name}_p99_ms": r["p99_ms"], f"{name}_gen_cpu": r["gen_cpu"],
                    f"{name}_server_cpu": r["server_cpu"]})
        if route != "anchor":
            out[f"{name}_ratio_to_anchor"] = round(r["rps"] / anchor_rps, 3)
    out.update({
        "search_p50_ms": mornings["p50_ms"], "search_p99_ms": mornings["p99_ms"],
        "search_slots_found": mornings["slots_found"],
        "search_busy_p50_ms": busy["p50_ms"], "search_busy_p99_ms": busy["p99_ms"],
        "search_busy_slots_found": busy["slots_found"],
        "search_busy_latest_start": busy["latest_start"],
        "statuses": {"anchor": runs["anchor"]["statuses"], "booking": runs["easy"]["statuses"],
                     "realistic": runs["realistic"]["statuses"]},
        "requests": runs["easy"]["requests"], "searches": mornings["searches"],
        "requests_per_route": {"anchor": runs["anchor"]["requests"],
                               "booking": runs["easy"]["requests"],
                               "realistic": runs["realistic"]["requests"]},
        "searches_per_calendar": {"mornings": mornings["searches"], "busy": busy["searches"]},
        **({"metrics_check": {"realistic": runs["realistic"]["metrics"],
                              "booking": runs["easy"]["metrics"],
                              "search_mornings": mornings["metrics"],
                              "search_busy": busy["metrics"]}} if check else {}),
        "shed_503_per_route": {"anchor": runs["anchor"]["shed_503"],
                               "booking": runs["easy"]["shed_503"],
                               "realistic": runs["realistic"]["shed_503"]},
    })
    return out


def written_rows(url: str) -> dict[str, int]:
    """What the runs left in the database (warm-ups included): a check that the realistic
    route placed a hold and kept an idempotency record per booking."""
    engine = create_engine(url)
    queries = {
        "realistic_bookings": "SELECT count(*) FROM bookings "
                              "WHERE title = 'bench' AND agreement_id IS NOT NULL",
        "easy_bookings": "SELECT count(*) FROM bookings "
                         "WHERE title = 'bench' AND agreement_id IS NULL",
        "anchor_bookings": "SELECT count(*) FROM bookings WHERE title = 'anchor'",
        "holds": "SELECT count(*) FROM ledger_holds",
        "idempotency_records": "SELECT count(*) FROM idempotency_records",
    }
    with engine.connect() as conn:
        out = {name: int(conn.execute(text(sql)).scalar_one()) for name, sql in queries.items()}
    engine.dispose()
    return out


GROWTH_FIGURES = {  # figure: True when larger is better
    "realistic_rps": True, "realistic_p99_ms": False, "booking_rps": True,
    "booking_p99_ms": False, "search_p99_ms": False, "search_busy_p99_ms": False}


def bench_database(kind: str, pg_url: str | None, plan: Plan) -> dict[str, Any]:
    """Every figure of one database."""
    with tempfile.TemporaryDirectory(prefix="copool-bench-") as tmp, \
            fresh_database(kind, pg_url, Path(tmp)) as url:
        started = time.perf_counter()
        world = seed(url)
        requests = Requests(world)
        print(f"  {kind}: migrated and seeded in {time.perf_counter() - started:.1f} s",
              file=sys.stderr)
        blocks = busy_blocks(world)
        per_size: dict[str, Any] = {}
        loaded = 0
        log = Path(tmp) / "servers.log"
        sizes = plan.sizes
        for size in sizes:
            history = size - len(blocks)
            rows = existing_bookings(world, loaded, history - loaded)
            seconds = bulk_insert(url, itertools.chain(blocks if loaded == 0 else [], rows))
            loaded = history
            print(f"  {kind}: {size:,} existing bookings loaded in {seconds:.1f} s",
                  file=sys.stderr)
            with serve("copool", url, log) as copool, serve("anchor", url, log) as anchor:
                started = time.perf_counter()
                per_size[str(size)] = measure(copool, anchor, world, requests, plan)
            print(f"  {kind}: measured at {size:,} in {time.perf_counter() - started:.1f} s",
                  file=sys.stderr)
        errors = [line for line in log.read_text(errors="replace").splitlines()
                  if "Error" in line or "Traceback" in line]
        written = written_rows(url)
    if written["holds"] != written["realistic_bookings"]:
        print(f"  {kind}: WARNING: {written['realistic_bookings']} realistic bookings but "
              f"{written['holds']} holds", file=sys.stderr)
    small, large = per_size[str(sizes[0])], per_size[str(sizes[-1])]
    growth = {f: round(small[f] / large[f] if up else large[f] / small[f], 3)
              for f, up in GROWTH_FIGURES.items()}
    keep = ("booking_rps", "anchor_rps", "booking_ratio_to_anchor", "booking_p50_ms",
            "booking_p99_ms", "search_p99_ms", "realistic_rps", "realistic_ratio_to_anchor",
            "realistic_p50_ms", "realistic_p99_ms", "search_busy_p99_ms")
    return {
        **{k: large[k] for k in keep},
        "growth_1m_over_10k": max(growth.values()),
        "realistic_growth_1m_over_10k": max(growth["realistic_rps"], growth["realistic_p99_ms"]),
        "growth": growth,
        "sizes": per_size,
        "server_errors_logged": len(errors),
        "written": written,
    }


# --- the report -------------------------------------------------------------------------


def _verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def _others(statuses: dict[str, int]) -> int:
    return sum(v for k, v in statuses.items() if k != "201")


def print_metrics_check(results: dict[str, Any]) -> None:
    """A row per database, size and phase: copool's /metrics counts against the generator's."""
    header = (f"{'database':<11}{'existing':>10}  {'phase':<17}{'sent':>8}{'counted':>9}"
              f"{'shed':>7}{'off %':>8}")
    print(header)
    print("-" * len(header))
    for db, res in results.items():
        for size, row in res["sizes"].items():
            for phase, m in row.get("metrics_check", {}).items():
                print(f"{db:<11}{int(size):>10,}  {phase:<17}{m['sent']:>8}"
                      f"{m['counted_route']:>9}{m['counted_shed']:>7}{m['off_pct']:>8.2f}")
    print()


def print_table(results: dict[str, Any], sizes: list[int]) -> None:
    """A row per database, size and route; a row per search; then the goals."""
    header = (f"{'database':<11}{'existing':>10}  {'route':<10}{'rps':>8}{'p50 ms':>9}"
              f"{'p99 ms':>9}{'ratio':>7}{'gen cpu':>9}{'srv cpu':>9}{'requests':>10}{'not 201':>9}"
              f"{'shed':>7}")
    print(header)
    print("-" * len(header))
    for db, res in results.items():
        for size, row in res["sizes"].items():
            for route, name in (("realistic", "realistic"), ("easy", "booking"),
                                ("anchor", "anchor")):
                ratio = row.get(f"{name}_ratio_to_anchor")
                print(f"{db:<11}{int(size):>10,}  {route:<10}{row[f'{name}_rps']:>8.1f}"
                      f"{row[f'{name}_p50_ms']:>9.1f}{row[f'{name}_p99_ms']:>9.1f}"
                      f"{'' if ratio is None else f'{ratio:.2f}':>7}"
                      f"{row[f'{name}_gen_cpu']:>9.2f}{row[f'{name}_server_cpu']:>9.2f}"
                      f"{row['requests_per_route'][name]:>10}"
                      f"{_others(row['statuses'][name]):>9}"
                      f"{row.get('shed_503_per_route', {}).get(name, 0):>7}")
    print()
    header = (f"{'database':<11}{'existing':>10}  {'calendar':<10}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'found':>7}{'searches':>10}")
    print(header)
    print("-" * len(header))
    for db, res in results.items():
        for size, row in res["sizes"].items():
            for cal, prefix in (("mornings", "search"), ("busy", "search_busy")):
                print(f"{db:<11}{int(size):>10,}  {cal:<10}{row[f'{prefix}_p50_ms']:>9.1f}"
                      f"{row[f'{prefix}_p99_ms']:>9.1f}{row[f'{prefix}_slots_found']:>7}"
                      f"{row['searches_per_calendar'][cal]:>10}")
    print()
    if any("metrics_check" in row for res in results.values() for row in res["sizes"].values()):
        print_metrics_check(results)
    big = f"{sizes[-1]:,}"
    for db, res in results.items():
        p99_goal = P99_GOAL_MS[db]
        worst = max(res["growth"], key=res["growth"].get)
        search_p99 = max(res["search_p99_ms"], res["search_busy_p99_ms"])
        print(f"{db} at {big} bookings: "
              f"realistic ratio {res['realistic_ratio_to_anchor']:.2f} (≥ {GOALS['ratio']}) "
              f"{_verdict(res['realistic_ratio_to_anchor'] >= GOALS['ratio'])}; "
              f"realistic p99 {res['realistic_p99_ms']:.0f} ms (≤ {p99_goal:.0f}) "
              f"{_verdict(res['realistic_p99_ms'] <= p99_goal)}; "
              f"easy p99 {res['booking_p99_ms']:.0f} ms "
              f"{_verdict(res['booking_p99_ms'] <= p99_goal)}; "
              f"search p99 {search_p99:.0f} ms (≤ {GOALS['search_p99_ms']:.0f}) "
              f"{_verdict(search_p99 <= GOALS['search_p99_ms'])}; "
              f"growth {res['growth_1m_over_10k']:.2f}× ({worst}; ≤ {GOALS['growth']}) "
              f"{_verdict(res['growth_1m_over_10k'] <= GOALS['growth'])}; "
              f"server errors logged {res['server_errors_logged']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="10k and 20k existing bookings, 2 s per route (under a minute a database)")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--postgres-url", default=os.environ.get("COPOOL_BENCH_POSTGRES_URL"),
                        help="PostgreSQL server (default $COPOOL_BENCH_POSTGRES_URL)")
    parser.add_argument("--scrape-metrics", action="store_true",
                        help="scrape copool's /metrics around each phase and compare its request "
                             "counts with the load generator's (goal: within 1 %%)")
    args = parser.parse_args(argv)

    plan = replace(QUICK if args.quick else FULL, scrape_metrics=args.scrape_metrics)
    sizes = plan.sizes
    databases = ["sqlite"]
    if args.postgres_url:
        databases.append("postgresql")
    else:
        print("PostgreSQL skipped: give --postgres-url or set COPOOL_BENCH_POSTGRES_URL",
              file=sys.stderr)
    if args.quick:
        print(f"quick mode: {sizes[0]:,} and {sizes[1]:,} existing bookings (not 1,000,000), "
              f"{plan.seconds:g} s per route, up to {plan.searches} searches per calendar",
              file=sys.stderr)
    results = {db: bench_database(db, args.postgres_url, plan) for db in databases}
    print_table(results, sizes)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "booking", "quick": args.quick, "existing_bookings": sizes,
            "connections": CONNECTIONS, "experts": EXPERTS, "calendars": ["mornings", "busy"],
            "routes": list(ROUTES), "seconds_per_route": plan.seconds, "workers": 1, "commit_on_loop": False,
            "as_shipped": True, "goals": GOALS, "scrape_metrics": args.scrape_metrics,
            "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
            **results,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
