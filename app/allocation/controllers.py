"""HTTP routes for allocation runs."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from litestar import Controller, Request
from litestar.response import ServerSentEvent
from sqlalchemy.orm import Session

from app.allocation import services
from app.allocation.models import RunStatus
from app.allocation.schemas import RunCreate, RunRead
from app.auth.actor import Actor
from app.db import make_session_factory
from app.jobs.events import run_events
from app.pagination import Limit, Offset, page
from app.problems import LIST, READ, WRITE
from app.routing import get, post
from app.schemas import Page


class AllocationRunController(Controller):
    """Optimised allocation of the shared pool, run in the background."""

    path = "/allocation-runs"
    tags = ["allocation"]

    @post("/", status_code=202, responses=WRITE, summary="Start a run (answers at once: 202)")
    def start_run(
        self,
        actor: Actor,
        db_session: Session,
        data: RunCreate,
        request: Request[Any, Any, Any],
    ) -> RunRead:
        settings = request.app.state.settings
        recovery = services.Recovery(
            stale=timedelta(seconds=settings.run_stale_seconds),
            max_attempts=settings.run_max_attempts,
        )
        run = services.start_run(
            db_session, actor, data, recovery, max_active=settings.max_active_runs
        )
        db_session.commit()  # the worker must see the run
        request.app.state.jobs.enqueue(run.id)
        return RunRead.model_validate(run)

    @get("/", responses=LIST, summary="Runs of the caller's unit")
    def list_runs(
        self,
        actor: Actor,
        db_session: Session,
        limit: Limit = 20,
        offset: Offset = 0,
        status: RunStatus | None = None,
    ) -> Page[RunRead]:
        rows, total = services.list_runs(
            db_session, actor, limit=limit, offset=offset, status=status
        )
        return page(RunRead, rows, total, limit, offset)

    @get("/{run_id:uuid}", responses=READ, summary="Status, live progress and plan of a run")
    def get_run(self, actor: Actor, db_session: Session, run_id: uuid.UUID) -> RunRead:
        return RunRead.model_validate(services.get_run(db_session, actor, run_id))

    @get(
        "/{run_id:uuid}/events",
        responses=READ,
        media_type="text/event-stream",
        summary="Progress as server-sent events, while the run lasts",
        description=(
            "A `progress` event (JSON: status, stage, best_objective, bound, gap, placed, "
            "requests, elapsed_s) at connection and whenever one of them changes (the row is "
            "read every 0.5 s); a comment every 15 s while nothing changes; the stream ends "
            "after the event showing the run done, failed or cancelled."
        ),
    )
    def events(
        self, actor: Actor, db_session: Session, run_id: uuid.UUID, request: Request[Any, Any, Any]
    ) -> ServerSentEvent:
        services.get_run(db_session, actor, run_id)  # 404 unless the caller may read it
        factory = make_session_factory(request.app.state.engine)
        return ServerSentEvent(run_events(factory, run_id))

    @post(
        "/{run_id:uuid}/apply",
        status_code=200,
        responses=WRITE,
        summary="Turn the plan into tentative bookings; report what could not apply",
    )
    def apply(self, actor: Actor, db_session: Session, run_id: uuid.UUID) -> RunRead:
        return RunRead.model_validate(services.apply_run(db_session, actor, run_id))

    @post(
        "/{run_id:uuid}/cancel",
        status_code=200,
        responses=WRITE,
        summary="Cancel a queued or running run: its solve stops and it no longer counts",
    )
    def cancel(self, actor: Actor, db_session: Session, run_id: uuid.UUID) -> RunRead:
        return RunRead.model_validate(services.cancel_run(db_session, actor, run_id))
