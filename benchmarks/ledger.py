"""Benchmark of the ledger (issue 5): posting throughput and fund-statement latency.

For each database (SQLite in a temporary file; PostgreSQL in a fresh database on the server
named by ``--postgres-url`` or ``COPOOL_BENCH_POSTGRES_URL``, dropped afterwards), migrated
with Alembic and opened with ``app.db.make_engine``:

- ``postings_per_s``: one writer, one transaction per call (contributions and expenses
  through the public functions, two postings each);
- ``concurrent_postings_per_s``: four threads, each its own session and project, at once;
- ``statement_p99_ms``: ``fund_statement`` of one project (three contributing units) once
  the database holds 1,000,000 postings (``--quick``: 20,000), loaded in bulk as balanced
  entries through the same triggers that keep the cached balances.

Goal: statement p99 ≤ 50 ms at 1,000,000 postings on both engines.

    python benchmarks/ledger.py --quick --json var/bench/ledger.json
    python benchmarks/ledger.py --postgres-url postgresql+psycopg://copool@127.0.0.1:55432/postgres
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Run as a script, Python puts benchmarks/ first on sys.path, where benchmarks/ledger.py
# would shadow the ledger package: drop it, and put the project root first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "benchmarks"]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app.db import make_engine, make_session_factory  # noqa: E402
from app.migrate import upgrade  # noqa: E402
from ledger import (  # noqa: E402
    Money,
    contribute,
    fund_statement,
    open_ledger,
    record_expense,
)
from ledger.models import Account, Entry, Ledger, Posting  # noqa: E402

UNITS = [uuid.UUID(int=i) for i in (1, 2, 3)]
SHARES = {UNITS[0]: 5000, UNITS[1]: 3000, UNITS[2]: 2000}
BULK_BATCH = 5_000  # entries per bulk transaction


def eur(cents: int) -> Money:
    return Money(cents, "EUR")


def single_writer(engine: Engine, calls: int) -> float:
    """Postings per second of one writer calling the public functions."""
    factory = make_session_factory(engine)
    with factory() as s:
        project = uuid.uuid4()
        open_ledger(s, project, "EUR")
        s.commit()
        started = time.perf_counter()
        for i in range(calls):
            if i % 2 == 0:
                contribute(s, project, UNITS[i % 3], eur(1_000), key=f"c{i}")
            else:
                record_expense(s, project, [("travel", eur(900))], key=f"x{i}")
            s.commit()
        elapsed = time.perf_counter() - started
    return 2 * calls / elapsed


def concurrent_writers(engine: Engine, calls: int, workers: int = 4) -> float:
    """Postings per second of ``workers`` threads, each on its own project."""
    factory = make_session_factory(engine)
    projects = []
    with factory() as s:
        for _ in range(workers):
            projects.append(uuid.uuid4())
            open_ledger(s, projects[-1], "EUR")
        s.commit()
    barrier = threading.Barrier(workers + 1)
    errors: list[BaseException] = []

    def work(project: uuid.UUID) -> None:
        with factory() as s:
            barrier.wait()
            try:
                for i in range(calls):
                    if i % 2 == 0:
                        contribute(s, project, UNITS[i % 3], eur(1_000), key=f"c{i}")
                    else:
                        record_expense(s, project, [("travel", eur(900))], key=f"x{i}")
                    s.commit()
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=work, args=(p,)) for p in projects]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    if errors:
        raise errors[0]
    return 2 * calls * workers / elapsed


def bulk_load(engine: Engine, postings: int, projects: int = 20) -> uuid.UUID:
    """Fill the database with ``postings`` postings of balanced entries; returns the project
    whose statement is measured (it holds 1/``projects`` of them)."""
    factory = make_session_factory(engine)
    ids: list[uuid.UUID] = []
    with factory() as s:
        for _ in range(projects):
            ids.append(uuid.uuid4())
            open_ledger(s, ids[-1], "EUR")
            for u in UNITS:
                contribute(s, ids[-1], u, eur(1_000_000), key=f"seed-{u}")
            record_expense(s, ids[-1], [("travel", eur(1)), ("materials", eur(1))], key="seed-x")
        s.commit()
        accounts = {
            (r.project_id, r.key): r.id
            for r in s.execute(
                select(Ledger.project_id, Account.key, Account.id).join(
                    Ledger, Ledger.id == Account.ledger_id
                )
            )
        }
        ledgers = dict(s.execute(select(Ledger.project_id, Ledger.id)).all())
    is_pg = engine.dialect.name == "postgresql"
    entries = postings // 2
    done = 0
    while done < entries:
        batch = min(BULK_BATCH, entries - done)
        with engine.begin() as conn:
            if is_pg:
                new_ids = list(
                    conn.execute(
                        text("SELECT nextval('ledger_entry_ids') FROM generate_series(1, :n)"),
                        {"n": batch},
                    ).scalars()
                )
            else:
                top = conn.execute(
                    text("SELECT coalesce(max(id), 0) FROM ledger_entries")
                ).scalar_one()
                new_ids = list(range(top + 1, top + 1 + batch))
            posting_rows, entry_rows = [], []
            for k, entry_id in enumerate(new_ids):
                n = done + k
                project = ids[n % projects]
                unit = UNITS[(n // projects) % 3]
                if (n // projects) % 2 == 0:  # contribution: cash in
                    kind, debit, credit = "contribution", "cash", f"contributions:{unit}"
                else:  # expense: the same amount out again, so cash never goes negative
                    kind, debit, credit = "expense", "expense:travel", "cash"
                posting_rows.append(
                    {
                        "entry_id": entry_id,
                        "account_id": accounts[(project, debit)],
                        "amount": 100,
                        "flow": kind,
                    }
                )
                posting_rows.append(
                    {
                        "entry_id": entry_id,
                        "account_id": accounts[(project, credit)],
                        "amount": -100,
                        "flow": kind,
                    }
                )
                entry_rows.append(
                    {
                        "id": entry_id, "ledger_id": ledgers[project], "kind": kind,
                        "idempotency_key": f"bulk{entry_id}", "request_hash": "bulk",
                        "effective_at": Entry.effective_at.type.process_bind_param(  # type: ignore[attr-defined]
                            _now(), conn.dialect
                        ),
                        "memo": "", "unit_id": unit if kind == "contribution" else None,
                    }
                )  # fmt: skip
            conn.execute(insert(Posting), posting_rows)
            conn.execute(insert(Entry.__table__), entry_rows)
        done += batch
    return ids[0]


def _now():  # type: ignore[no-untyped-def]
    from datetime import UTC, datetime

    return datetime.now(UTC)


def statement_latency(engine: Engine, project: uuid.UUID, runs: int) -> dict[str, float]:
    """Milliseconds per ``fund_statement`` (each in its own short transaction)."""
    factory = make_session_factory(engine)
    samples = []
    with factory() as s:
        fund_statement(s, project, SHARES)  # warm up
        s.rollback()
        for _ in range(runs):
            started = time.perf_counter()
            fund_statement(s, project, SHARES)
            s.rollback()
            samples.append((time.perf_counter() - started) * 1000)
    samples.sort()
    return {
        "statement_p50_ms": round(statistics.median(samples), 3),
        "statement_p99_ms": round(samples[max(0, int(len(samples) * 0.99) - 1)], 3),
    }


def run(url: str, args: argparse.Namespace) -> dict[str, object]:
    """Every measurement on the migrated, empty database at ``url``."""
    upgrade(url)
    engine = make_engine(url)
    try:
        result: dict[str, object] = {
            "postings_per_s": round(single_writer(engine, args.calls)),
            "concurrent_postings_per_s": round(concurrent_writers(engine, args.calls // 4)),
        }
        started = time.perf_counter()
        project = bulk_load(engine, args.postings)
        result["bulk_load_s"] = round(time.perf_counter() - started, 1)
        with engine.connect() as conn:
            result["postings_in_database"] = conn.execute(
                text("SELECT count(*) FROM ledger_postings")
            ).scalar_one()
        result.update(statement_latency(engine, project, args.statements))
        return result
    finally:
        engine.dispose()


def fresh_postgres(server_url: str) -> tuple[str, Engine, str]:
    server = make_url(server_url)
    name = f"copool_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return server.set(database=name).render_as_string(hide_password=False), admin, name


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the process exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 postings, fewer calls")
    parser.add_argument("--postings", type=int, help="postings in the database (default 1M)")
    parser.add_argument("--calls", type=int, help="posting calls per throughput run")
    parser.add_argument("--statements", type=int, default=300, help="statements timed")
    parser.add_argument("--postgres-url", default=os.environ.get("COPOOL_BENCH_POSTGRES_URL", ""))
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--json", type=Path, help="write results here")
    args = parser.parse_args(argv)
    args.postings = args.postings or (20_000 if args.quick else 1_000_000)
    args.calls = args.calls or (400 if args.quick else 2_000)
    if args.quick:
        print(
            f"quick mode: {args.postings:,} postings in the database (goal is stated at 1,000,000)"
        )
    results: dict[str, object] = {"quick": args.quick, "postings_target": args.postings}
    if args.only != "postgresql":
        with tempfile.TemporaryDirectory() as tmp:
            results["sqlite"] = run(f"sqlite:///{tmp}/ledger.db", args)
    if args.only != "sqlite":
        if not args.postgres_url:
            print("PostgreSQL skipped: set --postgres-url or COPOOL_BENCH_POSTGRES_URL")
        else:
            url, admin, name = fresh_postgres(args.postgres_url)
            try:
                results["postgresql"] = run(url, args)
            finally:
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin.dispose()
    keys = [
        "postings_per_s", "concurrent_postings_per_s", "postings_in_database", "bulk_load_s",
        "statement_p50_ms", "statement_p99_ms",
    ]  # fmt: skip
    engines = [e for e in ("sqlite", "postgresql") if e in results]
    print(f"{'metric':<28}" + "".join(f"{e:>14}" for e in engines))
    for key in keys:
        row = "".join(f"{results[e][key]:>14,}" for e in engines)  # type: ignore[index]
        print(f"{key:<28}{row}")
    for e in engines:
        p99 = results[e]["statement_p99_ms"]  # type: ignore[index]
        verdict = "met" if p99 <= 50 else "NOT met"
        print(
            f"goal statement p99 <= 50 ms on {e}: {verdict} ({p99} ms at {args.postings:,} postings)"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
