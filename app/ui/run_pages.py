"""Requests and allocation runs: start a run, watch it solve, see its plan, apply it."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any

import anyio.to_thread
import litestar
from litestar import Controller, Request
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.allocation import services as runs
from app.allocation.models import AllocationRun, RunStatus
from app.allocation.schemas import RunCreate, RunProgress
from app.auth.actor import Actor
from app.bookings.requests import list_requests
from app.catalog.models import Resource
from app.errors import InvalidInput
from app.projects.services import list_projects
from app.routing import get, post
from app.ui.sessions import SignedIn
from app.ui.views import Window, names, rows_by
from app.ui.web import render, see_other

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
AnyRequest = Request[Any, Any, Any]
ACTIVE = {RunStatus.QUEUED.value, RunStatus.RUNNING.value}


def _run_input(data: dict[str, str], projects: list[str]) -> RunCreate:
    try:
        first = date.fromisoformat(data.get("from", ""))
        last = date.fromisoformat(data.get("to", ""))
    except ValueError as exc:
        field = "from" if "from" not in data or not data["from"] else "to"
        raise InvalidInput(f"{field}: give a date", field=field) from exc
    try:
        return RunCreate(
            horizon_start=datetime.combine(first, datetime.min.time(), UTC),
            horizon_end=datetime.combine(last + timedelta(days=1), datetime.min.time(), UTC),
            project_ids=[uuid.UUID(p) for p in projects],
            time_limit_s=int(data.get("time_limit_s") or 10),
        )
    except (ValidationError, ValueError) as exc:
        errors = exc.errors() if isinstance(exc, ValidationError) else []
        field = {"horizon_end": "to", "horizon_start": "from"}.get(
            str(errors[0]["loc"][0]) if errors and errors[0]["loc"] else "", "time_limit_s")
        detail = errors[0]["msg"] if errors else str(exc)
        raise InvalidInput(f"{field}: {detail}", field=field) from exc


def plan_view(session: Session, run: AllocationRun) -> dict[str, Any]:
    """A done run's plan as a timeline by resource, and what it left out with the reasons."""
    result = run.result or {}
    assignments = result.get("assignments", [])
    found = names(session, Resource, (uuid.UUID(r) for a in assignments for r in a["resource_ids"]))
    resources = {str(k): v for k, v in found.items()}
    win = Window(run.horizon_start, run.horizon_end, "plan")
    lanes = rows_by(win, (
        (resources.get(r, r), f"/ui/resources/{r}", datetime.fromisoformat(a["start"]),
         datetime.fromisoformat(a["end"]), "bar-proposed", f"request {a['request_id']}")
        for a in assignments for r in a["resource_ids"]
    ))
    return {"win": win, "lanes": lanes, "assignments": assignments,
            "left_out": result.get("unallocated", []), "resources": resources}


class RunController(Controller):
    """``/ui/runs``: the unit's requests and runs, a run's progress, plan and apply."""

    path = "/runs"

    @get("/")
    def runs_page(self, signed: SignedIn, actor: Actor, db_session: Session,
                  requested: uuid.UUID | None = None) -> Template:
        """Open requests, recent runs, and the form that starts one."""
        found, _ = runs.list_runs(db_session, actor, limit=20, offset=0)
        requests, total = list_requests(db_session, actor, limit=50, offset=0)
        projects, _ = list_projects(db_session, actor, limit=100, offset=0, unit_id=actor.unit_id)
        today = datetime.now(UTC).date()
        return render("runs.html", signed, "runs", runs=found, requests=requests, total=total,
                      projects=projects, start=today + timedelta(days=1), end=today + timedelta(days=28),
                      requested=requested)

    @litestar.post("/", status_code=303)
    async def start(self, request: AnyRequest, actor: Actor, db_session: Session, data: Form) -> Redirect:
        """Start a run over the chosen projects (the API's service), then show it."""
        projects = (await request.form()).getall("project_id", [])
        create = _run_input(data, [p for p in projects if p])
        settings = request.app.state.settings
        recovery = runs.Recovery(stale=timedelta(seconds=settings.run_stale_seconds),
                                 max_attempts=settings.run_max_attempts)
        run = await _in_thread(runs.start_run, db_session, actor, create, recovery,
                               settings.max_active_runs)
        answer = await _in_thread(see_other, db_session, f"/ui/runs/{run.id}")
        request.app.state.jobs.enqueue(run.id)  # after the commit: the worker must see it
        return answer

    @get("/{run_id:uuid}")
    def run_page(self, signed: SignedIn, actor: Actor, db_session: Session, run_id: uuid.UUID) -> Template:
        """A run: live progress while it solves; its plan and what it left out when done."""
        run = runs.get_run(db_session, actor, run_id)
        plan = plan_view(db_session, run) if run.status == RunStatus.DONE.value else None
        return render("run.html", signed, "runs", run=run, plan=plan, active=ACTIVE,
                      progress=RunProgress.model_validate(run.progress or {}))

    @get("/{run_id:uuid}/progress")
    def progress(self, signed: SignedIn, actor: Actor, db_session: Session, run_id: uuid.UUID) -> Template:
        """The progress fragment the run's page polls every 2 s."""
        run = runs.get_run(db_session, actor, run_id)
        return render("run_progress.html", signed, "runs", run=run, active=ACTIVE,
                      progress=RunProgress.model_validate(run.progress or {}))

    @post("/{run_id:uuid}/apply", status_code=303)
    def apply(self, actor: Actor, db_session: Session, run_id: uuid.UUID) -> Redirect:
        """Apply a done run's plan: tentative bookings, re-checked (the API's service)."""
        runs.apply_run(db_session, actor, run_id)
        return see_other(db_session, f"/ui/runs/{run_id}")


async def _in_thread(fn: Any, *args: Any) -> Any:
    return await anyio.to_thread.run_sync(fn, *args)
