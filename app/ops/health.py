"""Health for load balancers and orchestrators, and the metrics route.

- ``/health/live``: the process answers (no database, never refused by the admission gate):
  restart it when this fails.
- ``/health/ready``: it can serve — the database answers, its schema is at the code's
  migration heads (a database *ahead* of the code, mid rolling upgrade, counts as ready),
  and, where workers are required (PostgreSQL without ``COPOOL_JOBS_IN_PROCESS``), some
  ``copool worker`` has sent procrastinate a heartbeat within ``WORKER_SILENCE``. Else 503
  with the reasons (problem details, one ``errors`` item per failed check, ``field`` naming
  it: ``database``, ``migrations``, ``worker``): take it out of rotation.
- ``/health`` stays as it was (liveness).
"""

from __future__ import annotations

from datetime import timedelta
from functools import cache
from typing import Any

from alembic.script import ScriptDirectory
from litestar import Request, Response, get
from sqlalchemy import Connection, text

from app.migrate import alembic_config
from app.ops.metrics import CONTENT_TYPE
from app.problems import PROBLEM_JSON, RETRY_AFTER_SECONDS, FieldError, Problem, problems
from app.settings import Settings

WORKER_SILENCE = timedelta(minutes=1)
"""A worker whose last heartbeat is older than this does not count as alive."""


@cache
def _script() -> tuple[frozenset[str], frozenset[str]]:
    """The code's migration heads and every revision it knows."""
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    known = frozenset(rev.revision for rev in script.walk_revisions())
    return frozenset(script.get_heads()), known


def _migrations(conn: Connection) -> str | None:
    versions = set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())
    heads, known = _script()
    if versions - known or versions == heads:  # at head, or ahead of this code
        return None
    return (
        f"the database is at migration {', '.join(sorted(versions)) or 'none'}, the code "
        f"needs {', '.join(sorted(heads))}: run copool db upgrade"
    )


def _worker(conn: Connection) -> str | None:
    alive = conn.scalar(
        text(
            "SELECT count(*) FROM procrastinate_workers "
            "WHERE last_heartbeat > now() - make_interval(secs => :silence)"
        ),
        {"silence": WORKER_SILENCE.total_seconds()},
    )
    if alive:
        return None
    return (
        f"no copool worker has sent a heartbeat in the last {int(WORKER_SILENCE.total_seconds())}"
        " s: allocation runs and periodic jobs wait (start copool worker, or set "
        "COPOOL_JOBS_IN_PROCESS=true on a single host)"
    )


def workers_required(settings: Settings) -> bool:
    """Whether jobs need a ``copool worker`` (PostgreSQL, not run inside ``serve``)."""
    return not settings.runs_jobs_in_process


def readiness(engine: Any, settings: Settings) -> list[FieldError]:
    """What keeps this server from serving (empty: ready)."""
    failed: list[FieldError] = []
    try:
        with engine.connect() as conn:
            if (why := _migrations(conn)) is not None:
                failed.append(FieldError(field="migrations", message=why))
            if workers_required(settings) and (why := _worker(conn)) is not None:
                failed.append(FieldError(field="worker", message=why))
    except Exception as exc:  # an unreachable database is an answer here, not an error
        failed.append(
            FieldError(field="database", message=f"the database did not answer ({type(exc).__name__})")
        )
    return failed


@get("/health/live", sync_to_thread=False, tags=["service"], summary="Liveness", security=[{}])
def live() -> dict[str, str]:
    """Answers while the process is up; no database access, no auth."""
    return {"status": "ok"}


@get(
    "/health/ready",
    sync_to_thread=True,
    tags=["service"],
    summary="Readiness: database, migrations, workers",
    security=[{}],
    responses=problems(503),
)
def ready(request: Request[Any, Any, Any]) -> Response[Any]:
    """200 when this server can serve; 503 naming every check that failed."""
    state = request.app.state
    failed = readiness(state.read_engine, state.settings)
    if not failed:
        return Response({"status": "ready"})
    body = Problem(
        title="Not ready",
        status=503,
        detail="; ".join(f"{f.field}: {f.message}" for f in failed),
        code="not_ready",
        errors=failed,
    ).model_dump(mode="json")
    return Response(
        body,
        status_code=503,
        media_type=PROBLEM_JSON,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Cache-Control": "no-store"},
    )


@get(
    "/metrics",
    sync_to_thread=True,
    tags=["service"],
    summary="Prometheus metrics (all workers of this server)",
    security=[{}],
    media_type=CONTENT_TYPE,
)
def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The Prometheus text exposition."""
    return Response(
        request.app.state.metrics.render(),
        media_type=CONTENT_TYPE,
        headers={"Cache-Control": "no-store"},
    )


ROUTES = [live, ready, metrics]
"""The operations routes, for ``app.main``."""
