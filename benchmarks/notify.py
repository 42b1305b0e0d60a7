"""Notification benchmark (issue 15): what the outbox costs a transaction, and how fast the
worker's deliverer empties it.

Each database (SQLite; PostgreSQL with ``--postgres-url`` or ``COPOOL_BENCH_POSTGRES_URL``)
gets a fresh, migrated database with one unit, one resource manager and one webhook
endpoint; a local receiver (threaded ``http.server`` on 127.0.0.1, keep-alive) verifies
nothing and answers 204, or 500 to each event's first ``--fail-first`` attempts; a local
SMTP server (aiosmtpd) takes the e-mails. Reported:

- ``emit ms``: one ``outbox.emit`` in a transaction of 100 (an event, an inbox entry, an
  e-mail row and a webhook row);
- ``deliveries/s``: webhook and e-mail deliveries made per second by ``deliver_due`` (one
  worker, retries included, backoff shortened to milliseconds) until nothing is due.

    python benchmarks/notify.py --events 2000 --json var/bench/notify.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.auth.schemas import UserCreate
from app.auth.services import create_user
from app.db import make_engine, make_session_factory
from app.migrate import upgrade
from app.notifications import kinds
from app.notifications.delivery import deliver_due
from app.notifications.models import NotificationDelivery, WebhookEndpoint
from app.notifications.outbox import emit
from app.notifications.signing import new_secret
from app.settings import Settings
from app.units.models import Unit
from benchmarks._databases import fresh_postgres


@contextmanager
def _database(kind: str, pg: str | None) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            url = f"sqlite:///{tmp}/bench.db"
            upgrade(url)
            yield url
        return
    assert pg
    with fresh_postgres(pg) as url:
        yield url


@contextmanager
def _receiver(fail_first: int) -> Iterator[str]:
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length", "0")))
            with lock:
                seen[self.headers["webhook-id"]] += 1
                failing = seen[self.headers["webhook-id"]] <= fail_first
            self.send_response(500 if failing else 204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()


class _Sink:
    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return "250 OK"


def _world(factory: Any, url: str) -> uuid.UUID:
    with factory() as s:
        unit = Unit(name="Bench", code="BENCH", description="")
        s.add(unit)
        s.flush()
        user = create_user(
            s,
            SYSTEM,
            UserCreate(
                unit_id=unit.id, name="RM", email="rm@bench.example", roles=[Role.RESOURCE_MANAGER]
            ),
        )
        s.add(WebhookEndpoint(unit_id=unit.id, created_by=user.id, url=url, secret=new_secret()))
        s.commit()
        return unit.id


def run(kind: str, pg: str | None, events: int, fail_first: int) -> dict[str, Any]:
    """Emit ``events`` and deliver them all; the figures of one database."""
    with _database(kind, pg) as db, _receiver(fail_first) as hook:
        port = 20000 + os.getpid() % 20000
        smtp = Controller(_Sink(), hostname="127.0.0.1", port=port)
        smtp.start()
        settings = Settings(
            database_url=db,
            webhook_allow_private=True,
            notify_backoff_base_seconds=0.001,
            notify_backoff_max_seconds=0.005,
            smtp_host="127.0.0.1",
            smtp_port=port,
            smtp_starttls=False,
        )
        engine = make_engine(db)
        factory = make_session_factory(engine)
        unit_id = _world(factory, hook)
        started = time.perf_counter()
        for first in range(0, events, 100):
            with factory() as s:
                for i in range(first, min(events, first + 100)):
                    emit(
                        s,
                        kinds.APPROVAL_NEEDED,
                        subject_type="request",
                        subject_id=uuid.uuid4(),
                        unit_ids=[unit_id],
                        data={"n": i},
                    )
                s.commit()
        emit_s = time.perf_counter() - started
        started = time.perf_counter()
        attempts = 0
        while True:
            attempts += deliver_due(factory, settings)["attempts"]
            with factory() as s:
                left = s.scalar(
                    select(func.count())
                    .select_from(NotificationDelivery)
                    .where(NotificationDelivery.status == "pending")
                )
            if not left:
                break
        deliver_s = time.perf_counter() - started
        smtp.stop()
        engine.dispose()
    return {
        "database": kind,
        "events": events,
        "emit_ms": round(emit_s / events * 1000, 3),
        "deliveries": 2 * events,
        "attempts": attempts,
        "deliver_s": round(deliver_s, 2),
        "deliveries_per_s": round(2 * events / deliver_s, 1),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table (``--json`` writes the same)."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--quick", action="store_true", help="200 events")
    parser.add_argument("--fail-first", type=int, default=0, help="500s per event first")
    parser.add_argument("--postgres-url", default=os.environ.get("COPOOL_BENCH_POSTGRES_URL"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    events = 200 if args.quick else args.events
    kinds_ = ["sqlite"] + (["postgresql"] if args.postgres_url else [])
    rows = [run(k, args.postgres_url, events, args.fail_first) for k in kinds_]
    print(
        f"{'database':<11}{'events':>8}{'emit ms':>9}{'attempts':>10}{'deliver s':>11}{'deliveries/s':>14}"
    )
    for r in rows:
        print(
            f"{r['database']:<11}{r['events']:>8}{r['emit_ms']:>9}{r['attempts']:>10}"
            f"{r['deliver_s']:>11}{r['deliveries_per_s']:>14}"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
