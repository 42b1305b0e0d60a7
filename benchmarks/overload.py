"""Overload benchmark (issue 12): copool as shipped under 200, 600 and 2,000 closed-loop
clients of ``POST /bookings``; 2,000 wrong API keys from one address; a 300 MB body.

Each database (SQLite; PostgreSQL when given) gets a fresh, migrated database seeded as
``benchmarks/booking.py`` seeds it (8 requesters with keys, funded projects, lent priced
experts), and ``copool serve`` runs on it with only ``COPOOL_DATABASE_URL`` set (every
other setting at its default: one worker, ``COPOOL_MAX_IN_FLIGHT`` 24, 20 failed
authentications per address and minute).

- **Overload.** N clients (200, 600, 2,000), each with its own keep-alive connection, book
  in a closed loop for a fixed time: send ``POST /bookings`` (the realistic route of
  booking.py: a lent, priced expert, a fresh slot, an ``Idempotency-Key``), wait for the
  answer, send the next. A 503 or 429 is retried with the same request after its
  ``Retry-After`` (as the server sends it), as HTTP client libraries do (urllib3's ``Retry``);
  ``--impatient`` retries at once instead. Clients arrive over the first second; the first
  5 s (2 s quick) are a warm-up and not measured. Reported per N: the status histogram (0 =
  a transport error), *useful* throughput (2xx and 409 per second), all answers per second,
  p50/p99 of 2xx, p99 of 503s, the largest ``Retry-After`` sent, the p99 of ``GET /health``
  probed every 50 ms meanwhile (never refused: the process's own scheduling delay, against
  which to read the 503s), the generator's and the server's CPU.
- **Wrong keys.** 2,000 ``GET /users/me`` with distinct wrong keys from one address
  (``X-Forwarded-For``, which ``copool serve`` believes from 127.0.0.1 by default) on 16
  connections, interleaved with 400 requests of a valid key from another address: how many
  401s before the 429s, and the other address's statuses.
- **Big bodies.** A 300 MB ``POST /bookings`` with a junk token, with and without
  ``Idempotency-Key``, announced by ``Content-Length`` or sent chunked: the time to the
  answer's status line and the server's RSS growth (``/proc``); then 1,000 junk-token
  keyed POSTs and the rows they left (bookings, idempotency records).

Goals: 0 answers outside 2xx/409/429/503; useful throughput at 600 and 2,000 ≥ 70 % of
that at 200; 503 p99 ≤ 50 ms; wrong keys get 429 after the limit while the other address
gets only 200s; 300 MB: 413 or 401 within 50 ms and RSS growth < 20 MB; 0 rows written.

    python benchmarks/overload.py --quick --json var/bench/overload.json
    python benchmarks/overload.py --postgres-url postgresql+psycopg://copool@127.0.0.1:5432/postgres

On a small machine the load generator shares the cores with the server and PostgreSQL:
``gen cpu`` near 1.0 means the generator, not the server, set the pace.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import platform
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, text

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from benchmarks import _load as load  # noqa: E402
from benchmarks import booking  # noqa: E402

CLIENTS = (200, 600, 2000)
GOALS: dict[str, Any] = {"useful_ratio": 0.7, "p99_503_ms": 50.0, "big_body_ms": 50.0,
                         "rss_growth_mb": 20.0}
ALLOWED = {409, 429, 503}


@dataclass(frozen=True)
class Plan:
    """How long each level runs."""

    seconds: float
    """Measured time per level, after ``warmup``."""
    warmup: float
    most: int
    """Requests prepared per level (each books a fresh slot)."""
    wrong_keys: int
    junk_posts: int


QUICK = Plan(seconds=4.0, warmup=2.0, most=6_000, wrong_keys=2000, junk_posts=1000)
FULL = Plan(seconds=20.0, warmup=5.0, most=20_000, wrong_keys=2000, junk_posts=1000)
RAMP_S = 1.0


# --- a closed loop ----------------------------------------------------------------------


@dataclass
class Tally:
    """What one closed-loop run measured."""

    wall_s: float = 0.0
    gen_cpu: float = 0.0
    statuses: dict[int, int] = field(default_factory=dict)
    ok_ms: list[float] = field(default_factory=list)
    busy_ms: list[float] = field(default_factory=list)
    waits: list[float] = field(default_factory=list)
    """``Retry-After`` of each 503 and 429, in seconds."""

    def note(self, status: int, ms: float) -> None:
        """Count one answer."""
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if 200 <= status < 300:
            self.ok_ms.append(ms)
        elif status == 503:
            self.busy_ms.append(ms)


def _header(head: bytes, name: bytes) -> bytes | None:
    at = head.find(b"\r\n" + name + b":")
    if at < 0:
        return None
    end = head.index(b"\r\n", at + 2)
    return head[at + len(name) + 3:end].strip()


async def _answer(reader: asyncio.StreamReader) -> tuple[int, float, bool]:
    """Read one answer (copool sends a Content-Length with each): its status, its
    ``Retry-After`` in seconds (0 when absent) and whether the server closes."""
    head = (await reader.readuntil(b"\r\n\r\n")).lower()
    await reader.readexactly(int(_header(head, b"content-length") or 0))
    retry_after = float(_header(head, b"retry-after") or 0)
    return int(head[9:12]), retry_after, _header(head, b"connection") == b"close"


async def _connect(host: str, port: int, n: int) -> list[tuple[Any, Any]]:
    streams = []
    for start in range(0, n, 200):  # not all at once: the listen backlog is finite
        streams += await asyncio.gather(*(asyncio.open_connection(host, port)
                                          for _ in range(start, min(n, start + 200))))
    return streams


async def _closed_loop(host: str, port: int, requests: list[bytes], clients: int,
                       seconds: float, patient: bool, warmup: float) -> Tally:
    tally = Tally()
    cursor = iter(requests)
    streams = await _connect(host, port, clients)

    async def exchange(stream: list[Any], request: bytes) -> tuple[int, float]:
        """Send one request and read its answer, as an HTTP client library does: on a
        fresh connection when the server has closed the idle one (uvicorn closes keep-alive
        connections after 5 s, shorter than a long ``Retry-After``), and once more on a
        fresh connection when a reused one fails (status 0: a transport error)."""
        for attempt in range(2):
            if attempt or stream[0].at_eof():
                stream[1].close()
                stream[:] = await asyncio.open_connection(host, port)
            try:
                stream[1].write(request)
                status, retry_after, close = await _answer(stream[0])
            except (OSError, asyncio.IncompleteReadError):
                continue
            if close:
                stream[1].close()
                stream[:] = await asyncio.open_connection(host, port)
            return status, retry_after
        return 0, 0.0

    async def client(i: int, reader: Any, writer: Any) -> None:
        await asyncio.sleep(RAMP_S * i / clients)  # clients arrive over RAMP_S, not at once
        stream = [reader, writer]
        request = next(cursor, None)
        while request is not None and time.perf_counter() < deadline:
            t0 = time.perf_counter()
            status, retry_after = await exchange(stream, request)
            if t0 >= measured_from:
                tally.note(status, (time.perf_counter() - t0) * 1000)
            if status in (429, 503):
                if t0 >= measured_from:
                    tally.waits.append(retry_after)
                if patient:
                    await asyncio.sleep(retry_after)
                continue  # the same request again: it was not served
            request = next(cursor, None)
        stream[1].close()

    t0 = time.perf_counter()
    measured_from, deadline = t0 + warmup, t0 + warmup + seconds
    loop = asyncio.get_running_loop()
    loop.call_at(loop.time() + warmup, lambda: cpu0.append(time.process_time()))
    cpu0: list[float] = []
    await asyncio.gather(*(client(i, r, w) for i, (r, w) in enumerate(streams)))
    tally.wall_s = time.perf_counter() - measured_from
    tally.gen_cpu = (time.process_time() - cpu0[0]) / tally.wall_s
    return tally


def closed_loop(base: str, requests: list[bytes], clients: int, seconds: float,
                patient: bool, warmup: float = 0.0) -> Tally:
    """``clients`` keep-alive clients sending ``requests`` in a closed loop: ``warmup``
    seconds unmeasured (they arrive over the first RAMP_S), then ``seconds`` measured."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with asyncio.Runner(loop_factory=load._loop_factory) as runner:
        return runner.run(_closed_loop(host, int(port), requests, clients, seconds, patient,
                                       warmup))


class HealthProbe:
    """``GET /health`` every 50 ms from a thread of its own while a level runs: the
    server's own scheduling delay (it is never refused), to read the 503 figures against."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.ms: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as client:
            while not self._stop.wait(0.05):
                t0 = time.perf_counter()
                client.get("/health")
                self.ms.append((time.perf_counter() - t0) * 1000)

    def __enter__(self) -> HealthProbe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def overload(server: booking.Server, requests: booking.Requests, plan: Plan, clients: int,
             patient: bool) -> dict[str, Any]:
    """One level of closed-loop load, with its figures."""
    batch = requests.make("realistic", plan.most, server.base)
    cpu0, wall0 = server.cpu_seconds(), time.perf_counter()
    with HealthProbe(server.base) as probe:
        tally = closed_loop(server.base, batch, clients, plan.seconds, patient, plan.warmup)
    server_cpu = (server.cpu_seconds() - cpu0) / (time.perf_counter() - wall0)
    useful = sum(v for k, v in tally.statuses.items() if 200 <= k < 300 or k == 409)
    answers = sum(tally.statuses.values())
    pct = load.percentile
    return {
        "clients": clients,
        "useful_rps": round(useful / tally.wall_s, 1),
        "answers_rps": round(answers / tally.wall_s, 1),
        "ok_p50_ms": round(pct(tally.ok_ms, 0.5), 1) if tally.ok_ms else None,
        "ok_p99_ms": round(pct(tally.ok_ms, 0.99), 1) if tally.ok_ms else None,
        "p99_503_ms": round(pct(tally.busy_ms, 0.99), 1) if tally.busy_ms else None,
        "retry_after_p50_s": pct(tally.waits, 0.5) if tally.waits else None,
        "retry_after_max_s": max(tally.waits, default=None),
        "statuses": {str(k): v for k, v in sorted(tally.statuses.items())},
        "unexpected": sum(v for k, v in tally.statuses.items()
                          if not (200 <= k < 300 or k in ALLOWED)),
        "gen_cpu": round(tally.gen_cpu, 3),
        "server_cpu": round(server_cpu, 3),
        "health_p99_ms": round(pct(probe.ms, 0.99), 1) if probe.ms else None,
    }


# --- wrong keys from one address ---------------------------------------------------------


async def _tagged(host: str, port: int, items: list[tuple[str, bytes]], connections: int
                  ) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    cursor = iter(items)
    streams = await _connect(host, port, connections)

    async def client(reader: Any, writer: Any) -> None:
        for tag, request in cursor:
            try:
                writer.write(request)
                status, _, close = await load._read_answer(reader)
            except (OSError, asyncio.IncompleteReadError):
                status, close = 0, True
            out.setdefault(tag, []).append(status)
            if close:
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
        writer.close()

    await asyncio.gather(*(client(r, w) for r, w in streams))
    return out


def wrong_keys(server: booking.Server, world: booking.World, n: int) -> dict[str, Any]:
    """``n`` wrong keys from one address interleaved with a valid key from another."""
    host = server.base.removeprefix("http://")
    bad = [("attacker", load.encode("GET", "/users/me", host, {
        "authorization": f"Bearer cpl_wrong{uuid.uuid4().hex}",
        "x-forwarded-for": "203.0.113.7"})) for _ in range(n)]
    good = [("other", load.encode("GET", "/users/me", host, {
        "authorization": f"Bearer {world.tokens[0]}",
        "x-forwarded-for": "198.51.100.2"})) for _ in range(n // 5)]
    items = [x for pair in itertools.zip_longest(bad, good, [None] * 4) for x in pair
             if x is not None]
    host_, port = host.rsplit(":", 1)
    with asyncio.Runner(loop_factory=load._loop_factory) as runner:
        seen = runner.run(_tagged(host_, int(port), items, 16))  # under the in-flight bound
    attacker, other = seen.get("attacker", []), seen.get("other", [])
    return {
        "wrong_keys": len(attacker),
        "attacker_401": attacker.count(401),
        "attacker_429": attacker.count(429),
        "attacker_other": len(attacker) - attacker.count(401) - attacker.count(429),
        "other_requests": len(other),
        "other_200": other.count(200),
    }


# --- big bodies --------------------------------------------------------------------------


def rss_mb(pid: int) -> tuple[float, float]:
    """The process's resident set and its peak (VmRSS, VmHWM) in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


async def _big_body(host: str, port: int, head: bytes, total: int, chunked: bool
                    ) -> tuple[int, float]:
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(head)
    started = time.perf_counter()
    answer = asyncio.ensure_future(reader.readuntil(b"\r\n"))
    piece = b" " * (1 << 20)
    framed = b"%x\r\n" % len(piece) + piece + b"\r\n" if chunked else piece
    sent = 0
    while not answer.done() and sent < total:
        writer.write(framed)
        sent += len(piece)
        drained = asyncio.ensure_future(writer.drain())
        await asyncio.wait({answer, drained}, return_when=asyncio.FIRST_COMPLETED)
        if not drained.done():
            drained.cancel()
    line = await answer
    elapsed = (time.perf_counter() - started) * 1000
    writer.transport.abort()
    return int(line[9:12]), elapsed


def big_bodies(server: booking.Server, size: int) -> list[dict[str, Any]]:
    """A ``size``-byte POST with a junk token: keyed or not, announced or chunked."""
    host = server.base.removeprefix("http://")
    host_, port = host.rsplit(":", 1)
    out = []
    for keyed, chunked in itertools.product((True, False), (False, True)):
        lines = ["POST /bookings HTTP/1.1", f"host: {host}", "content-type: application/json",
                 "authorization: Bearer cpl_junk"]
        lines.append("transfer-encoding: chunked" if chunked else f"content-length: {size}")
        if keyed:
            lines.append(f"idempotency-key: big-{uuid.uuid4().hex}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        Path(f"/proc/{server.proc.pid}/clear_refs").write_text("5")  # reset the peak (VmHWM)
        rss0, _ = rss_mb(server.proc.pid)
        with asyncio.Runner(loop_factory=load._loop_factory) as runner:
            status, ms = runner.run(_big_body(host_, int(port), head, size, chunked))
        time.sleep(0.5)  # let the server finish with the connection before reading RSS
        rss1, peak = rss_mb(server.proc.pid)
        out.append({"keyed": keyed, "chunked": chunked, "status": status,
                    "ms": round(ms, 1), "rss_growth_mb": round(max(rss1, peak) - rss0, 1),
                    "rss_before_mb": round(rss0, 1)})
    return out


def junk_posts(server: booking.Server, requests: booking.Requests, url: str, n: int
               ) -> dict[str, Any]:
    """``n`` keyed POST /bookings with junk tokens from one address; rows written."""
    batch = []
    for raw in requests.make("realistic", n, server.base):
        head, _, body = raw.partition(b"\r\n\r\n")
        lines = [ln for ln in head.split(b"\r\n") if not ln.startswith(b"authorization")]
        lines += [f"authorization: Bearer cpl_junk{uuid.uuid4().hex}".encode(),
                  b"x-forwarded-for: 192.0.2.50"]
        batch.append(b"\r\n".join(lines) + b"\r\n\r\n" + body)
    before = rows(url)
    run = load.run(server.base, batch, 16)
    after = rows(url)
    return {"posts": run.requests, "statuses": {str(k): v for k, v in sorted(run.statuses.items())},
            "rows_written": {k: after[k] - before[k] for k in before}}


def rows(url: str) -> dict[str, int]:
    """Rows of the tables a junk request must not write."""
    engine = create_engine(url)
    with engine.connect() as conn:
        out = {t: int(conn.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
               for t in ("bookings", "idempotency_records")}
    engine.dispose()
    return out


# --- per database ------------------------------------------------------------------------


def bench_database(kind: str, pg_url: str | None, plan: Plan, patient: bool
                   ) -> dict[str, Any]:
    """Every figure of one database."""
    with tempfile.TemporaryDirectory(prefix="copool-overload-") as tmp, \
            booking.fresh_database(kind, pg_url, Path(tmp)) as url:
        world = booking.seed(url)
        requests = booking.Requests(world)
        log = Path(tmp) / "server.log"
        out: dict[str, Any] = {}
        with booking.serve("copool", url, log) as server:
            closed_loop(server.base, requests.make("realistic", 64, server.base), 16, 2.0, True)
            out["big_bodies"] = big_bodies(server, 300 * 1024 * 1024)
            out["junk_posts"] = junk_posts(server, requests, url, plan.junk_posts)
            out["wrong_keys"] = wrong_keys(server, world, plan.wrong_keys)
            print(f"  {kind}: attacks done", file=sys.stderr)
            out["levels"] = []
            for clients in CLIENTS:
                level = overload(server, requests, plan, clients, patient)
                print(f"  {kind}: {clients} clients: {level['statuses']}", file=sys.stderr)
                out["levels"].append(level)
        errors = [line for line in log.read_text(errors="replace").splitlines()
                  if "Error" in line or "Traceback" in line]
        out["server_errors_logged"] = len(errors)
    base = out["levels"][0]["useful_rps"] or 1e-9
    for level in out["levels"]:
        level["ratio_to_200"] = round(level["useful_rps"] / base, 3)
    return out


# --- the report --------------------------------------------------------------------------


def _ok(flag: bool) -> str:
    return "ok" if flag else "MISSED"


def print_table(results: dict[str, Any]) -> None:
    """One row per database and level; then the attacks; then the goals."""
    header = (f"{'database':<11}{'clients':>8}{'useful/s':>10}{'ratio':>7}{'answers/s':>11}"
              f"{'2xx p50':>9}{'2xx p99':>9}{'503 p99':>9}{'RA max':>7}{'health99':>9}"
              f"{'gen cpu':>9}{'srv cpu':>9}"
              f"  statuses")
    print(header)
    print("-" * (len(header) + 30))
    for db, res in results.items():
        for lv in res["levels"]:
            print(f"{db:<11}{lv['clients']:>8}{lv['useful_rps']:>10.1f}{lv['ratio_to_200']:>7.2f}"
                  f"{lv['answers_rps']:>11.1f}{lv['ok_p50_ms'] or 0:>9.1f}"
                  f"{lv['ok_p99_ms'] or 0:>9.1f}{lv['p99_503_ms'] or 0:>9.1f}"
                  f"{lv['retry_after_max_s'] or 0:>7.0f}{lv['health_p99_ms'] or 0:>9.1f}"
                  f"{lv['gen_cpu']:>9.2f}{lv['server_cpu']:>9.2f}  {lv['statuses']}")
    print()
    for db, res in results.items():
        wk, junk = res["wrong_keys"], res["junk_posts"]
        print(f"{db}: {wk['wrong_keys']} wrong keys from one address: {wk['attacker_401']} × 401, "
              f"{wk['attacker_429']} × 429, {wk['attacker_other']} other; the other address: "
              f"{wk['other_200']}/{wk['other_requests']} × 200")
        for big in res["big_bodies"]:
            print(f"{db}: 300 MB, {'keyed' if big['keyed'] else 'unkeyed'}, "
                  f"{'chunked' if big['chunked'] else 'Content-Length'}: {big['status']} in "
                  f"{big['ms']:.1f} ms, RSS +{big['rss_growth_mb']:.1f} MB")
        print(f"{db}: {junk['posts']} junk-token keyed POSTs: {junk['statuses']}, rows written "
              f"{junk['rows_written']}")
    print()
    for db, res in results.items():
        levels = res["levels"]
        worst_ratio = min(lv["ratio_to_200"] for lv in levels[1:])
        unexpected = sum(lv["unexpected"] for lv in levels)
        p99s = [lv["p99_503_ms"] for lv in levels if lv["p99_503_ms"] is not None]
        big_ms = max(b["ms"] for b in res["big_bodies"])
        big_rss = max(b["rss_growth_mb"] for b in res["big_bodies"])
        big_status = all(b["status"] in (401, 413) for b in res["big_bodies"])
        wk = res["wrong_keys"]
        print(f"{db}: unexpected answers {unexpected} {_ok(unexpected == 0)}; "
              f"worst ratio to 200 clients {worst_ratio:.2f} (≥ {GOALS['useful_ratio']}) "
              f"{_ok(worst_ratio >= GOALS['useful_ratio'])}; "
              f"503 p99 {max(p99s, default=0):.1f} ms (≤ {GOALS['p99_503_ms']:.0f}) "
              f"{_ok(max(p99s, default=0) <= GOALS['p99_503_ms'])}; "
              f"wrong keys throttled {_ok(wk['attacker_429'] > 0 and wk['other_200'] == wk['other_requests'])}; "
              f"300 MB {big_ms:.1f} ms, +{big_rss:.1f} MB "
              f"{_ok(big_status and big_ms <= GOALS['big_body_ms'] and big_rss < GOALS['rss_growth_mb'])}; "
              f"junk rows {_ok(not any(res['junk_posts']['rows_written'].values()))}; "
              f"server errors logged {res['server_errors_logged']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 s per level instead of 20 s")
    parser.add_argument("--impatient", action="store_true",
                        help="clients retry a 503/429 at once instead of after Retry-After")
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--postgres-url", default=os.environ.get("COPOOL_BENCH_POSTGRES_URL"),
                        help="PostgreSQL server (default $COPOOL_BENCH_POSTGRES_URL)")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    databases = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    if not args.postgres_url:
        print("PostgreSQL skipped: give --postgres-url or set COPOOL_BENCH_POSTGRES_URL",
              file=sys.stderr)
    results = {db: bench_database(db, args.postgres_url, plan, not args.impatient)
               for db in databases}
    print_table(results)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "benchmark": "overload", "quick": args.quick, "clients": list(CLIENTS),
            "seconds_per_level": plan.seconds, "retry_after_honoured": not args.impatient,
            "goals": GOALS, "machine": {"python": platform.python_version(),
                                        "cpus": os.cpu_count()},
            **results,
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
