"""A run's progress as server-sent events (``GET /allocation-runs/{id}/events``).

The stream polls the run's row every ``POLL_SECONDS`` in a read-only transaction of its
own (no connection is held between polls, no thread while it waits) and sends one
``progress`` event, a JSON object of ``FIELDS``, whenever any of them changed; the first
event is the state at connection. It ends after the event that shows the run ended (done,
failed or cancelled), or when the run is gone. While nothing changes it sends a comment
every ``HEARTBEAT_SECONDS``, so proxies keep the connection open. Whatever worker or host
solves the run, the row is the one truth the stream reads.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from litestar.response import ServerSentEventMessage
from sqlalchemy import select, text
from sqlalchemy.orm import Session, sessionmaker

from app.allocation.models import AllocationRun

POLL_SECONDS = 0.5
HEARTBEAT_SECONDS = 15.0
MAX_STREAM_SECONDS = 3600.0
"""A stream ends after an hour at most (an EventSource reconnects on its own)."""
FIELDS = ("status", "stage", "best_objective", "bound", "gap", "placed", "requests", "elapsed_s")
ENDED = frozenset({"done", "failed", "cancelled"})


def read_state(factory: sessionmaker[Session], run_id: uuid.UUID) -> dict[str, Any] | None:
    """The run's status and progress fields (None: no such run), read in a read-only
    transaction."""
    with factory() as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SET TRANSACTION READ ONLY"))
        row = session.execute(
            select(AllocationRun.status, AllocationRun.progress, AllocationRun.error).where(
                AllocationRun.id == run_id
            )
        ).one_or_none()
        session.rollback()
    if row is None:
        return None
    progress = row.progress or {}
    state = {field: progress.get(field) for field in FIELDS}
    state["status"] = row.status
    if row.error:
        state["error"] = row.error.splitlines()[0]
    return state


async def run_events(
    factory: sessionmaker[Session],
    run_id: uuid.UUID,
    *,
    poll: float = POLL_SECONDS,
    heartbeat: float = HEARTBEAT_SECONDS,
) -> AsyncIterator[ServerSentEventMessage]:
    """The run's ``progress`` events as they change, then the end (see the module)."""
    last: dict[str, Any] | None = None
    began = quiet_since = time.monotonic()
    while time.monotonic() - began < MAX_STREAM_SECONDS:
        state = await anyio.to_thread.run_sync(read_state, factory, run_id)
        if state is None:
            return
        now = time.monotonic()
        if state != last:
            yield ServerSentEventMessage(data=json.dumps(state), event="progress")
            last, quiet_since = state, now
            if state["status"] in ENDED:
                return
        elif now - quiet_since >= heartbeat:
            yield ServerSentEventMessage(data=None, comment="heartbeat")
            quiet_since = now
        await anyio.sleep(poll)
