"""The dashboard's plumbing: the session cookie, the signed-in actor, CSRF, HTML errors.

Every page's actor comes from the session cookie (``app.ui.sessions``), and every
non-GET request must carry the session's CSRF token in its ``csrf`` form field (403
otherwise) before any handler runs. Domain errors render as an HTML page with the status
the API would answer (``app.problems.STATUS``), so another unit's object is a 404 here too.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio.to_thread
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.datastructures import Cookie, ResponseHeader
from litestar.exceptions import HTTPException, ValidationException
from litestar.response import Redirect, Template
from litestar.template import TemplateConfig
from sqlalchemy.orm import Session

from app import errors
from app.auth.actor import Actor
from app.auth.policy import check_auditor_write
from app.base import utcnow
from app.db import READ_METHODS
from app.notifications import services as notifications
from app.problems import LEDGER_STATUS, STATUS
from app.ui import sessions
from app.ui.sessions import SignedIn
from ledger import errors as ledger_errors
from ledger.currency import format_minor

HERE = Path(__file__).parent
COOKIE = "copool_session"
LOGIN_CSRF_COOKIE = "copool_login_csrf"
PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
"""CSP of the dashboard's pages: scripts, styles and requests from copool only, nothing
inline (no 'unsafe-inline'), forms post only to copool."""
PAGE_HEADERS = [
    ResponseHeader(name="content-security-policy", value=PAGE_POLICY),
    ResponseHeader(name="cache-control", value="no-store"),
    ResponseHeader(name="referrer-policy", value="same-origin"),
]


AS_API = {
    "/ui/feeds": "/feed-subscriptions",
    "/ui/feeds/{feed_id}/rotate": "/feed-subscriptions/{feed_id}/rotate",
    "/ui/feeds/{feed_id}/revoke": "/feed-subscriptions/{feed_id}/revoke",
}
"""Dashboard writes that are an API write by another path, for the auditors' policy
(``app.auth.policy``: an auditor may manage their own feeds and nothing else)."""


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    """Jinja2 over ``app/ui/templates``, escaping every value."""
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html", "svg"], default=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["zone"] = ZoneInfo
    env.filters["money"] = format_minor
    return TemplateConfig(instance=JinjaTemplateEngine.from_environment(env))


def is_https(request: Request[Any, Any, Any]) -> bool:
    """Whether the browser talks https to copool (directly or through a proxy that says so)."""
    forwarded = request.headers.get("x-forwarded-proto", "")
    return request.url.scheme == "https" or forwarded.lower() == "https"


def session_cookie(request: Request[Any, Any, Any], token: str, max_age: int | None) -> Cookie:
    """The session cookie: HttpOnly, SameSite=Lax, Secure over https, only under /ui."""
    return Cookie(
        key=COOKIE,
        value=token,
        path="/ui",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
        max_age=max_age,
    )


def _lookup(db_session: Session, token: str, method: str) -> SignedIn:
    signed = sessions.signed_in(db_session, token)
    if method in READ_METHODS:
        _, unread = notifications.inbox(db_session, signed.actor, unread=True, limit=1, offset=0)
        return replace(signed, unread=unread)
    # as provide_actor does: give SQLite's writer lock back before the handler's hop
    db_session.commit()
    return signed


async def provide_signed(request: Request[Any, Any, Any], db_session: Session) -> SignedIn:
    """The signed-in user of a dashboard request; CSRF-checked for every non-GET."""
    token = request.cookies.get(COOKIE, "")
    if not token:
        raise errors.NotAuthenticated("not signed in")
    signed = await anyio.to_thread.run_sync(_lookup, db_session, token, request.method)
    if request.method not in READ_METHODS:
        form = await request.form()
        if not sessions.csrf_matches(signed.csrf, str(form.get("csrf") or "")):
            raise errors.PermissionDenied("csrf: the form's CSRF token is missing or wrong",
                                          field="csrf")
        template = request.scope.get("path_template", request.url.path)
        if template != "/ui/logout":  # signing out changes no data: anybody may
            check_auditor_write(signed.actor, request.method, AS_API.get(template, template))
    return signed


def provide_ui_actor(signed: SignedIn) -> Actor:
    """The actor of the signed-in user, for the same service calls as the API."""
    return signed.actor


def see_other(db_session: Session, url: str, cookies: list[Cookie] | None = None) -> Redirect:
    """Commit the request's work, then send the browser on (Post/Redirect/Get). The app's
    hook commits only 2xx answers, so a redirect after a change commits here."""
    db_session.commit()
    return Redirect(path=url, status_code=303, cookies=cookies or [])


def render(template: str, signed: SignedIn, nav: str, status: int = 200, **context: Any) -> Template:
    """A page with what every page needs: the signed-in user, their CSRF token, the menu."""
    return Template(
        template_name=template,
        context={"me": signed.actor, "csrf": signed.csrf, "nav": nav, "unread": signed.unread,
                 "now": utcnow(), **context},
        status_code=status,
    )


def _error_page(request: Request[Any, Any, Any], status: int, title: str, detail: str,
                field: str | None = None, headers: dict[str, str] | None = None) -> Response[Any]:
    return Template(
        template_name="error.html",
        context={"status": status, "title": title, "detail": detail, "field": field,
                 "me": None},
        status_code=status,
        headers={**{h.name: str(h.value) for h in PAGE_HEADERS}, **(headers or {})},
    )


def _domain(request: Request[Any, Any, Any], exc: errors.CopoolError) -> Response[Any]:
    if isinstance(exc, errors.NotAuthenticated) and request.method in READ_METHODS:
        response = Redirect(path="/ui/login", status_code=303)
        if request.cookies.get(COOKIE):
            response.delete_cookie(COOKIE, path="/ui")
        return response
    status = next(code for cls, code in STATUS.items() if isinstance(exc, cls))
    return _error_page(request, status, exc.title, exc.detail, exc.field)


def _ledger(request: Request[Any, Any, Any], exc: ledger_errors.LedgerError) -> Response[Any]:
    status = next(code for cls, code in LEDGER_STATUS.items() if isinstance(exc, cls))
    return _error_page(request, status, "Refused by the ledger", str(exc))


def _validation(request: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    fields = ", ".join(str(e.get("key", "")) for e in extra if isinstance(e, dict))
    detail = f"{fields}: missing or not valid" if fields else str(exc.detail)
    return _error_page(request, 400, "Invalid input", detail, fields or None)


def _http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    return _error_page(request, exc.status_code, "Error", str(exc.detail),
                       headers=dict(exc.headers or {}))


EXCEPTION_HANDLERS: dict[Any, Any] = {
    errors.CopoolError: _domain,
    ledger_errors.LedgerError: _ledger,
    ValidationException: _validation,
    HTTPException: _http,
}
