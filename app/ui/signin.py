"""Signing in and out of the dashboard: an API key, or a one-time login link."""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from litestar import Controller, Request
from litestar.datastructures import Cookie
from litestar.enums import RequestEncodingType
from litestar.exceptions import TooManyRequestsException
from litestar.params import Body
from litestar.response import Redirect, Template
from sqlalchemy.orm import Session

from app.errors import NotAuthenticated, PermissionDenied
from app.routing import get, post
from app.throttle import client_address
from app.ui import sessions
from app.ui.sessions import SESSION_HOURS, SignedIn
from app.ui.web import COOKIE, LOGIN_CSRF_COOKIE, see_other, session_cookie

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
AnyRequest = Request[Any, Any, Any]


def _login_page(request: AnyRequest, template: str, status: int = 200, **context: Any) -> Template:
    """A sign-in page with a fresh double-submit CSRF token (cookie + hidden field)."""
    token = secrets.token_urlsafe(24)
    return Template(
        template_name=template,
        context={"me": None, "login_csrf": token, **context},
        status_code=status,
        cookies=[
            Cookie(key=LOGIN_CSRF_COOKIE, value=token, path="/ui/login", httponly=True,
                   samesite="strict", secure=request.url.scheme == "https", max_age=3600)
        ],
    )


def _check_login_csrf(request: AnyRequest, data: dict[str, str]) -> None:
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not (cookie and sessions.csrf_matches(cookie, data.get("csrf"))):
        raise PermissionDenied("csrf: the form's CSRF token is missing or wrong", field="csrf")


def _refused(request: AnyRequest, db_session: Session, detail: str) -> Template:
    """The sign-in form again, saying why; the failure counts against the client's address
    as a wrong API key does (``app.throttle``: past the limit, 429 until the window ends)."""
    db_session.rollback()
    throttle = request.app.state.throttle
    if throttle.failure_limit:
        throttle.fail(client_address(request.scope))
    return _login_page(request, "login.html", 401, problem=detail)


def _check_blocked(request: AnyRequest) -> None:
    throttle = request.app.state.throttle
    if throttle.failure_limit and throttle.is_blocked(client_address(request.scope)):
        raise TooManyRequestsException(
            "too many failed sign-ins from this address; try again later",
            headers={"Retry-After": str(throttle.retry_after())},
        )


def _signed_in(request: AnyRequest, db_session: Session, token: str) -> Redirect:
    forget = Cookie(key=LOGIN_CSRF_COOKIE, value="", path="/ui/login", max_age=0, expires=0)
    return see_other(
        db_session, "/ui/", [session_cookie(request, token, SESSION_HOURS * 3600), forget]
    )


class SignInController(Controller):
    """``/ui/login``: the API key form, the login link's confirmation, and signing out."""

    path = "/"

    @get("/login")
    def login_form(self, request: AnyRequest) -> Template:
        """The sign-in form."""
        return _login_page(request, "login.html")

    @post("/login", status_code=303)
    def login(self, request: AnyRequest, db_session: Session, data: Form) -> Redirect | Template:
        """Sign in with an API key: a session cookie, or the form again with the reason."""
        _check_login_csrf(request, data)
        _check_blocked(request)
        try:
            token = sessions.sign_in_with_key(db_session, sessions.check_key_field(data.get("api_key", "")))
        except NotAuthenticated as exc:
            return _refused(request, db_session, exc.detail)
        return _signed_in(request, db_session, token)

    @get("/login/{token:str}")
    def link_form(self, request: AnyRequest, token: str) -> Template:
        """A login link's page: one button that uses it (a GET never uses it up, so mail
        scanners that open links do not burn it)."""
        return _login_page(request, "login_link.html", token=token)

    @post("/login/{token:str}", status_code=303)
    def use_link(self, request: AnyRequest, db_session: Session, token: str, data: Form) -> Redirect | Template:
        """Use a login link once: a session cookie, or the sign-in form with the reason."""
        _check_login_csrf(request, data)
        _check_blocked(request)
        try:
            session_token = sessions.redeem_login_link(db_session, token)
        except NotAuthenticated as exc:
            return _refused(request, db_session, exc.detail)
        return _signed_in(request, db_session, session_token)

    @post("/logout", status_code=303)
    def logout(self, request: AnyRequest, db_session: Session, signed: SignedIn) -> Redirect:
        """End the session and forget its cookie."""
        sessions.sign_out(db_session, request.cookies.get(COOKIE, ""))
        return see_other(db_session, "/ui/login", [session_cookie(request, "", 0)])
