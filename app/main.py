"""The Litestar application: routes, session handling, auth, errors, OpenAPI."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from advanced_alchemy.extensions.litestar import (
    SQLAlchemyPlugin,
    SQLAlchemySyncConfig,
    SyncSessionConfig,
)
from litestar import Litestar, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import Scope
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.admission import install_gate, make_gate
from app.agreements.controllers import AgreementController
from app.allocation.controllers import AllocationRunController
from app.audit.controllers import AuditController
from app.auth.controllers import ApiKeyController, UserController
from app.auth.dependencies import provide_actor
from app.bookings.controllers import (
    AvailabilityController,
    BookingController,
    RequestController,
    SeriesController,
)
from app.bookings.idempotency import IdempotencyMiddleware, commit_before_answering
from app.bookings.offers import OfferController
from app.catalog.controllers import (
    DeviceController,
    DeviceTypeController,
    ExpertController,
    SkillController,
)
from app.db import READ_METHODS, make_engine, read_only_engine
from app.docs import render_plugins
from app.feeds.controllers import BusyImportController, FeedSubscriptionController, calendar_feed
from app.funds.controllers import PledgeController, ProjectFundsController, UnitFundsController
from app.headers import security_headers
from app.hygiene import RejectNul, allow_every_method, forbid_unknown_fields
from app.jobs.controllers import AdminJobController
from app.jobs.enqueue import job_queue
from app.methods import EmptyBodyAsObject, HeadAsGet, document_empty_bodies
from app.notifications.controllers import InboxController, WebhookController
from app.ops import logs
from app.ops.health import ROUTES as OPS_ROUTES
from app.ops.metrics import Metrics
from app.ops.observe import ObservedRequests
from app.pagination import RememberScope, page_headers
from app.problems import EXCEPTION_HANDLERS
from app.projects.controllers import ProjectController, ProjectInvitationController
from app.reports.controllers import ReportController, document_formats
from app.settings import Settings, get_settings
from app.throttle import ThrottleMiddleware, make_throttle
from app.ui.controllers import ui_routers
from app.ui.web import template_config
from app.units.controllers import UnitController


@get("/health", sync_to_thread=False, tags=["service"], summary="Liveness", security=[{}])
def health() -> dict[str, str]:
    """Answers while the process is up; no database access, no auth."""
    return {"status": "ok"}


@dataclass
class RequestSessions(SQLAlchemySyncConfig):
    """One session per request, as advanced-alchemy provides it, with GET and HEAD bound to
    the read-only engine: their transactions take no writer lock on SQLite and refuse
    writes on both engines (``app.db``). A GET that must write does so in a session of its
    own (e.g. ``app.auth.dependencies.touch_without_waiting``), or is not a GET."""

    read_engine: Engine | None = None

    def provide_session(self, state: State, scope: Scope) -> Session:
        """The request's session; read-only for GET and HEAD."""
        session = super().provide_session(state, scope)
        if (
            self.read_engine is not None
            and scope.get("method") in READ_METHODS
            and session.bind is not self.read_engine
            and not session.in_transaction()
        ):
            session.bind = self.read_engine
        return session


WORKER_THREADS = 256


async def _widen_thread_pools() -> None:
    """Give sync handlers and the session's commit hook plenty of threads.

    Both run in worker threads. With few threads (asyncio's default is CPU count + 4),
    every thread could end up waiting for a lock (SQLite's writer lock, a PostgreSQL row
    lock) held by a transaction whose commit is queued behind them for a thread — the
    HTTP race test found that deadlock. Locks also time out (``lock_timeout`` on
    PostgreSQL, the busy timeout on SQLite), so a pile-up ends in 503s, never a hang.
    """
    loop = asyncio.get_running_loop()
    loop.set_default_executor(
        ThreadPoolExecutor(max_workers=WORKER_THREADS, thread_name_prefix="copool")
    )
    anyio.to_thread.current_default_thread_limiter().total_tokens = WORKER_THREADS


def create_app(settings: Settings | None = None) -> Litestar:
    """Build the app for ``settings`` (from the environment when not given)."""
    settings = settings or get_settings()
    logs.configure(settings.log_level, settings.log_format)
    engine = make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        sqlite_busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        pgbouncer=settings.pgbouncer,
    )
    db = RequestSessions(
        engine_instance=engine,
        read_engine=read_only_engine(engine),
        session_config=SyncSessionConfig(expire_on_commit=False, autoflush=False),
        before_send_handler="autocommit",
        set_default_exception_handler=False,
    )
    db.before_send_handler = commit_before_answering(db.before_send_handler)

    jobs = job_queue(settings)

    gate = make_gate(settings.max_in_flight, engine, WORKER_THREADS)
    throttle = make_throttle(engine, settings)
    metrics = Metrics(engine)

    def provide_settings() -> Settings:
        return settings

    app = Litestar(
        route_handlers=[
            health,
            *OPS_ROUTES,
            UnitController,
            UserController,
            ApiKeyController,
            SkillController,
            DeviceTypeController,
            ExpertController,
            DeviceController,
            AgreementController,
            ProjectController,
            ProjectInvitationController,
            AuditController,
            BookingController,
            SeriesController,
            RequestController,
            AvailabilityController,
            AllocationRunController,
            AdminJobController,
            ProjectFundsController,
            PledgeController,
            UnitFundsController,
            ReportController,
            FeedSubscriptionController,
            calendar_feed,
            BusyImportController,
            OfferController,
            WebhookController,
            InboxController,
            *ui_routers(),
        ],
        template_config=template_config(),
        dependencies={
            "settings": Provide(provide_settings, sync_to_thread=False),
            "actor": Provide(provide_actor, sync_to_thread=True),
        },
        plugins=[SQLAlchemyPlugin(config=db)],
        middleware=[
            DefineMiddleware(ThrottleMiddleware, throttle=throttle),
            RejectNul,
            IdempotencyMiddleware,
        ],
        before_send=[security_headers, allow_every_method],
        after_request=page_headers,
        exception_handlers=EXCEPTION_HANDLERS,
        openapi_config=OpenAPIConfig(
            title="copool",
            version="0.1.0",
            description="Shared experts, devices and funds across joint projects of government units.",
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(type="http", scheme="bearer", description="API key")
                }
            ),
            security=[{"bearer": []}],
            render_plugins=render_plugins(),
        ),
        debug=settings.debug,
        on_startup=[
            _widen_thread_pools,
            forbid_unknown_fields,
            document_empty_bodies,
            document_formats,
            lambda: jobs.start(),
        ],
        on_shutdown=[lambda: jobs.stop(), metrics.close],
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_scope_key = db.session_scope_key
    app.state.gate = gate
    app.state.throttle = throttle
    install_gate(app, gate)  # in front of routing: a refused request costs nothing else
    app.state.jobs = jobs
    app.state.metrics = metrics
    app.state.read_engine = db.read_engine
    # outermost: every request gets its id and is counted, the gate's refusals too
    app.asgi_handler = ObservedRequests(
        HeadAsGet(EmptyBodyAsObject(RememberScope(app.asgi_handler))), metrics
    )
    return app


def app_factory() -> Litestar:
    """Entry point for ``uvicorn --factory app.main:app_factory``."""
    return create_app()


__all__: list[Any] = ["app_factory", "create_app"]
