"""Tamper evidence benchmark (issue 12): what the audit chain and the ledger checks cost.

Each database (SQLite; PostgreSQL when ``COPOOL_BENCH_POSTGRES_URL`` is set) gets a fresh,
migrated database. Reported:

- ``hash µs``: computing one audit row's content hash in Python (the only work the write
  path gained), over a realistic before/after snapshot;
- ``insert/s``: audit rows written through ``app.audit.services.record`` (100 per
  transaction), hash included;
- ``seal/s`` and ``verify/s``: rows linked by ``seal_all`` and checked by ``verify_audit``;
- ``ledger verify s``: ``verify_ledger`` over the postings of ``--entries`` contributions
  and holds;
- ``entry µs``: writing one ledger entry through ``ledger`` (a contribution or a hold,
  two per transaction);
- SQLite only, ``guard µs``: the extra time per two-posting entry of migration 0007's
  cache guards, by raw SQL (3,000 entries with the guards, 3,000 without, four rounds
  alternately, best of each), beside ``raw µs``, such an entry with the guards.

    python benchmarks/tamper.py --events 20000 --entries 1000 --json var/bench/tamper.json
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ledger
from app.audit import services as audit
from app.audit.chain import seal_all, verify_audit
from app.audit.hashing import content_hash
from app.audit.models import AuditEvent
from app.auth.actor import SYSTEM
from app.db import make_engine, make_session_factory
from app.funds.verify import verify_ledger
from app.migrate import upgrade

GUARDS = (
    "ledger_accounts_balance_guard",
    "ledger_account_flows_insert_guard",
    "ledger_account_flows_update_guard",
)
BASE = 1_000_000_000
"""Ids of the raw guard measurement's ledger, accounts and entries (clear of the rest)."""
SNAPSHOT = {
    "id": str(uuid.uuid4()), "status": "confirmed", "resource_id": str(uuid.uuid4()),
    "project_id": str(uuid.uuid4()), "start": "2027-03-01T09:00:00+00:00",
    "end": "2027-03-01T11:00:00+00:00", "price": 18_000, "notes": "Hydrology survey, site B",
}  # fmt: skip


class _Thing:
    __tablename__ = "bookings"

    def __init__(self) -> None:
        self.id = uuid.uuid4()


@contextmanager
def _database(engine_name: str) -> Iterator[str]:
    if engine_name == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
            upgrade(url)
            yield url
        return
    server = os.environ["COPOOL_BENCH_POSTGRES_URL"]
    name = f"copool_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _hash_us(n: int = 20_000) -> float:
    event = AuditEvent(
        id=uuid.uuid4(), at=datetime.now(UTC), action="booking.confirmed",
        object_type="bookings", object_id=str(uuid.uuid4()), unit_id=uuid.uuid4(),
        actor_user_id=uuid.uuid4(), actor_unit_id=uuid.uuid4(),
        before=SNAPSHOT, after={**SNAPSHOT, "status": "cancelled"}, reason="",
    )  # fmt: skip
    start = time.perf_counter()
    for _ in range(n):
        content_hash(event)
    return (time.perf_counter() - start) / n * 1e6


def _audit(factory: Any, events: int) -> dict[str, float]:
    start = time.perf_counter()
    for _ in range(events // 100):
        with factory() as session:
            for _ in range(100):
                audit.record(
                    session, SYSTEM, "booking.confirmed", _Thing(), unit_id=None,
                    before=SNAPSHOT, after={**SNAPSHOT, "status": "cancelled"},
                )  # fmt: skip
            session.commit()
    inserted = time.perf_counter() - start
    with factory() as session:
        start = time.perf_counter()
        sealed = seal_all(session)
        session.commit()
        sealing = time.perf_counter() - start
        start = time.perf_counter()
        report = verify_audit(session)
        verifying = time.perf_counter() - start
    assert report.ok and sealed == events, report.summary()
    return {
        "insert_per_s": events / inserted,
        "seal_per_s": events / sealing,
        "verify_per_s": events / verifying,
    }


def _entries(factory: Any, project: uuid.UUID, n: int, tag: str) -> float:
    """Seconds to write ``n`` entries (a contribution then a hold, alternately)."""
    deadline = datetime.now(UTC) + timedelta(days=30)
    start = time.perf_counter()
    for i in range(n // 2):
        with factory() as session:
            ledger.contribute(session, project, uuid.uuid4(), ledger.Money(500, "EUR"),
                              key=f"{tag}-c{i}")  # fmt: skip
            ledger.place_hold(
                session, project, ledger.Money(300, "EUR"), key=f"{tag}-h{i}",
                reference=f"b{i}", deadline=deadline, lender_unit_id=uuid.uuid4(),
            )  # fmt: skip
            session.commit()
    return time.perf_counter() - start


def _raw_entries(conn: sqlite3.Connection, first: int, n: int) -> float:
    """µs per entry: ``n`` two-posting entries by raw SQL in one transaction."""
    conn.execute("BEGIN")
    start = time.perf_counter()
    for entry in range(first, first + n):
        for account, amount in ((BASE + 1, 100), (BASE + 2, -100)):
            conn.execute(
                "INSERT INTO ledger_postings (entry_id, account_id, amount, flow) "
                "VALUES (?, ?, ?, 'contribution')",
                (entry, account, amount),
            )
        conn.execute(
            "INSERT INTO ledger_entries (id, ledger_id, kind, idempotency_key, request_hash, "
            "effective_at, memo) VALUES (?, ?, 'contribution', ?, '', '2026-01-01', '')",
            (entry, BASE, str(entry)),
        )
    elapsed = time.perf_counter() - start
    conn.execute("COMMIT")
    return elapsed / n * 1e6


def _guard_cost(url: str, n: int, rounds: int = 4) -> dict[str, float]:
    """SQLite: entries written with and without 0007's cache guards, alternately; best of each."""
    conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
    conn.execute(
        "INSERT INTO ledger_ledgers (id, project_id, currency, scale, created_at) "
        "VALUES (?, x'00', 'EUR', 2, '2026-01-01')",
        (BASE,),
    )
    conn.execute(
        "INSERT INTO ledger_accounts (id, ledger_id, key, kind, category, non_negative, balance)"
        " VALUES (?, ?, 'cash', 'cash', '', 1, 0), (?, ?, 'in', 'contributions', '', 0, 0)",
        (BASE + 1, BASE, BASE + 2, BASE),
    )
    query = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
    sql = {name: text_ for name, text_ in conn.execute(query)}
    guarded, bare, first = [], [], BASE
    for _ in range(rounds):
        guarded.append(_raw_entries(conn, first, n))
        first += n
        for name in GUARDS:
            conn.execute(f"DROP TRIGGER {name}")
        bare.append(_raw_entries(conn, first, n))
        first += n
        for name in GUARDS:
            conn.execute(sql[name])
    conn.close()
    return {"raw_entry_us": min(guarded), "guard_us_per_entry": min(guarded) - min(bare)}


def _ledger(factory: Any, engine: Any, n: int) -> dict[str, float]:
    """Entries written through ``ledger``, then ``verify_ledger`` over them."""
    project = uuid.uuid4()
    with factory() as session:
        ledger.open_ledger(session, project, "EUR")
        session.commit()
    result = {"entries": n, "write_us_per_entry": _entries(factory, project, n, "e") / n * 1e6}
    with factory() as session:
        start = time.perf_counter()
        report = verify_ledger(session)
        result["verify_s"] = time.perf_counter() - start
    assert report.ok, report.summary()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=5_000)
    parser.add_argument("--json", type=Path, metavar="PATH", help="also write results as JSON")
    parser.add_argument("--quick", action="store_true", help="2,000 events and 200 entries")
    args = parser.parse_args()
    if args.quick:
        args.events, args.entries = 2_000, 200
    engines = ["sqlite"] + (["postgresql"] if os.environ.get("COPOOL_BENCH_POSTGRES_URL") else [])
    results: dict[str, Any] = {"hash_us": _hash_us(), "events": args.events}
    for name in engines:
        with _database(name) as url:
            engine = make_engine(url)
            factory = make_session_factory(engine)
            results[name] = {
                **_audit(factory, args.events),
                **_ledger(factory, engine, args.entries),
            }
            if name == "sqlite":
                results[name].update(_guard_cost(url, 3_000))
            engine.dispose()
    print(f"content hash: {results['hash_us']:.1f} µs per audit row")
    print(
        f"{'db':<11}{'insert/s':>10}{'seal/s':>10}{'verify/s':>10}"
        f"{'entry µs':>10}{'raw µs':>8}{'guard µs':>10}{'ledger verify s':>17}"
    )
    for name in engines:
        r = results[name]
        guard = f"{r['guard_us_per_entry']:.0f}" if "guard_us_per_entry" in r else "-"
        raw = f"{r['raw_entry_us']:.0f}" if "raw_entry_us" in r else "-"
        print(
            f"{name:<11}{r['insert_per_s']:>10.0f}{r['seal_per_s']:>10.0f}"
            f"{r['verify_per_s']:>10.0f}{r['write_us_per_entry']:>10.0f}{raw:>8}{guard:>10}"
            f"{r['verify_s']:>17.2f}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
