"""The dashboard's routes under ``/ui``: one router, with its own actor, CSRF, errors and CSP."""

from __future__ import annotations

from typing import Any

from litestar import Response, Router
from litestar.di import Provide
from litestar.static_files import create_static_files_router

from app.ui.audit_pages import AuditPageController
from app.ui.booking_pages import (
    ApprovalController,
    BookingActionController,
    ResourceController,
)
from app.ui.inbox_pages import InboxController
from app.ui.money_pages import FundsController, ReportPagesController
from app.ui.pages import HomeController
from app.ui.run_pages import RunController
from app.ui.signin import SignInController
from app.ui.web import EXCEPTION_HANDLERS, HERE, PAGE_HEADERS, provide_signed, provide_ui_actor


async def _as_served(response: Response[Any]) -> Response[Any]:
    """Static files leave as read (no app-wide hook rewrites a file answer)."""
    return response


def ui_routers() -> list[Router]:
    """The dashboard's pages and its static assets (served from the package)."""
    pages = Router(
        path="/ui",
        route_handlers=[
            SignInController,
            HomeController,
            ResourceController,
            ApprovalController,
            BookingActionController,
            FundsController,
            ReportPagesController,
            RunController,
            AuditPageController,
            InboxController,
        ],
        dependencies={
            "signed": Provide(provide_signed),
            "actor": Provide(provide_ui_actor, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        response_headers=PAGE_HEADERS,
        include_in_schema=False,
    )
    static = create_static_files_router(
        path="/ui/static",
        directories=[HERE / "static"],
        name="ui-static",
        include_in_schema=False,
        after_request=_as_served,
    )
    return [pages, static]
