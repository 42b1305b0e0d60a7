"""The app that benchmarks/booking.py serves: copool's own app plus an anchor route.

The anchor is the smallest honest booking route: one SELECT for a clashing live booking,
then one INSERT, through the same session, engine and commit path as copool's routes (on
SQLite inside the same serialised ``BEGIN IMMEDIATE`` transaction; on PostgreSQL the
exclusion constraint still guards the INSERT). It checks no auth, no agreement, no working
hours, no caps: copool's booking throughput is reported as a ratio to it.

``COPOOL_BENCH_COMMIT_ON_LOOP=1`` makes the session's commit (advanced-alchemy's
``before_send`` hook) run on the event loop instead of in a worker thread. As shipped, a
transaction that holds SQLite's writer lock (or a PostgreSQL row lock) needs a free worker
thread to commit, while every worker thread may be waiting for that very lock: at 32
connections the server deadlocks until the lock wait times out. See the report in
benchmarks/booking.py's docstring.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime
from typing import Any

from litestar import Litestar, post
from litestar.utils.sync import AsyncCallable
from pydantic import BaseModel
from sqlalchemy import func, insert, literal_column, select
from sqlalchemy.orm import Session

from app.base import utcnow
from app.bookings.models import LIVE_STATUSES, Booking
from app.errors import Conflict
from app.main import create_app


class AnchorBooking(BaseModel):
    """What the anchor route needs to write one booking row."""

    resource_id: uuid.UUID
    project_id: uuid.UUID
    agreement_id: uuid.UUID
    borrower_unit_id: uuid.UUID
    lender_unit_id: uuid.UUID
    created_by: uuid.UUID
    start: datetime
    end: datetime


@post("/bench/anchor", sync_to_thread=True, include_in_schema=False)
def anchor(db_session: Session, data: AnchorBooking) -> dict[str, str]:
    """Check-then-insert: one SELECT, one INSERT."""
    query = select(Booking.id).where(
        Booking.resource_id == data.resource_id,
        Booking.status.in_(LIVE_STATUSES),
        Booking.block_start < data.end,
        Booking.block_end > data.start,
    )
    if db_session.get_bind().dialect.name == "postgresql":
        # the best index there is: the exclusion constraint's GiST (as copool's own check)
        query = query.where(
            literal_column("bookings.block").op("&&")(func.tstzrange(data.start, data.end, "[)"))
        )
    clash = db_session.scalar(query.limit(1))
    if clash is not None:
        raise Conflict("already booked", code="overlap")
    ident = uuid.uuid4()
    now = utcnow()
    db_session.execute(
        insert(Booking).values(
            id=ident, resource_id=data.resource_id, project_id=data.project_id,
            agreement_id=data.agreement_id, borrower_unit_id=data.borrower_unit_id,
            lender_unit_id=data.lender_unit_id, created_by=data.created_by, title="anchor",
            start=data.start, end=data.end, block_start=data.start, block_end=data.end,
            status="confirmed", status_reason="", sequence=0, created_at=now, updated_at=now,
        )
    )
    return {"id": str(ident)}


def _commit_on_loop(app: Litestar) -> None:
    hooks: list[Any] = []
    for hook in app.before_send:
        if isinstance(hook, AsyncCallable):
            sync_hook = hook.func

            async def inline(message: Any, scope: Any, sync_hook: Any = sync_hook) -> None:
                sync_hook(message, scope)

            hooks.append(inline)
        else:
            hooks.append(hook)
    app.before_send = hooks


def app_factory() -> Litestar:
    """copool's app on ``COPOOL_DATABASE_URL`` with the anchor route registered."""
    app = create_app()
    app.register(anchor)
    if os.environ.get("COPOOL_BENCH_COMMIT_ON_LOOP") == "1":
        _commit_on_loop(app)
    return app
