"""RFC 9457 problem details: the one place where errors become HTTP answers."""

from __future__ import annotations

import logging
import re
from typing import Any

from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi.datastructures import ResponseSpec
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR
from pydantic import BaseModel, model_validator
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from app import errors
from app.db import LOCK_SQLSTATES, is_lock_failure
from ledger import errors as ledger_errors

log = logging.getLogger("copool")

PROBLEM_JSON = "application/problem+json"
RETRY_AFTER_SECONDS = 1
"""``Retry-After`` of a 503: locks are held for one transaction, which is short."""

STATUS: dict[type[errors.CopoolError], int] = {
    errors.NotFound: 404,
    errors.NotAuthenticated: 401,
    errors.PermissionDenied: 403,
    errors.Unprocessable: 422,  # before its base class: the first match wins
    errors.InvalidInput: 400,
    errors.Conflict: 409,
    errors.PreconditionFailed: 412,
    errors.IdempotencyMismatch: 422,
    errors.Busy: 503,
}
"""Domain exception → HTTP status. Business code never raises an HTTP exception."""


DEFAULT_CODES: dict[int, str] = {
    400: "invalid_input",
    401: "not_authenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "unprocessable",
    429: "too_many_requests",
    500: "internal_error",
    503: "busy",
}
"""The ``code`` of a problem that names no more precise one: every problem has a code."""


def snake_case(name: str) -> str:
    """``InsufficientFunds`` → ``insufficient_funds`` (codes are snake_case everywhere)."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class FieldError(BaseModel):
    """One input problem: where (``field``, a dotted path) and what."""

    field: str
    message: str


class Problem(BaseModel):
    """An RFC 9457 problem details object, with copool's extension members."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str = ""
    field: str | None = None
    code: str | None = None
    """A machine-readable reason (e.g. ``overlap``, ``lending_cap``, ``outside_working_hours``)."""
    errors: list[FieldError] = []
    conflicts: list[dict[str, Any]] = []
    shortfall: int | None = None
    """Minor units a project lacks (code ``budget_short``)."""

    @model_validator(mode="after")
    def _default_code(self) -> Problem:
        if not self.code:
            self.code = DEFAULT_CODES.get(self.status, f"http_{self.status}")
        return self


def problem_response(status: int, title: str, detail: str, **members: Any) -> Response[Any]:
    """A problem details response."""
    body = Problem(title=title, status=status, detail=detail, **members).model_dump(
        mode="json", exclude_defaults=False
    )
    headers: dict[str, str] = {}
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="copool"'
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return Response(content=body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


def _domain(_: Request[Any, Any, Any], exc: errors.CopoolError) -> Response[Any]:
    status = next(code for cls, code in STATUS.items() if isinstance(exc, cls))
    members: dict[str, Any] = {}
    if exc.field:
        members["field"] = exc.field
        members["errors"] = [FieldError(field=exc.field, message=exc.detail)]
    for key in ("code", "conflicts", "skipped", "shortfall"):
        if key in exc.extra:
            members[key] = exc.extra[key]
    return problem_response(status, exc.title, exc.detail, **members)


LEDGER_STATUS: dict[type[ledger_errors.LedgerError], int] = {
    ledger_errors.NotFound: 404,
    ledger_errors.IdempotencyConflict: 422,
    ledger_errors.InsufficientFunds: 409,
    ledger_errors.CurrencyMismatch: 409,
    ledger_errors.InvalidOperation: 409,
    ledger_errors.LedgerError: 400,
}
"""Ledger exception → HTTP status (the most specific class listed first wins)."""


def _ledger(_: Request[Any, Any, Any], exc: ledger_errors.LedgerError) -> Response[Any]:
    status = next(code for cls, code in LEDGER_STATUS.items() if isinstance(exc, cls))
    field = getattr(exc, "field", None)
    members: dict[str, Any] = {"code": snake_case(type(exc).__name__)}
    if field:
        members["field"] = field
        members["errors"] = [FieldError(field=field, message=str(exc))]
    if isinstance(exc, ledger_errors.InsufficientFunds):
        members["shortfall"] = exc.shortfall
    return problem_response(status, "Ledger refused", str(exc), **members)


def _field_name(item: dict[str, Any]) -> str:
    # Query, path and header parameters are named by their own name; body fields by path.
    return str(item.get("key") or "") or "body"


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    items = [
        FieldError(field=_field_name(e), message=str(e.get("message", "")))
        for e in extra
        if isinstance(e, dict)
    ]
    detail = "; ".join(f"{i.field}: {i.message}" for i in items) or str(exc.detail)
    return problem_response(
        400, "Invalid input", detail, field=items[0].field if items else None, errors=items
    )


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    title = exc.detail if isinstance(exc, NotFoundException) else type(exc).__name__
    response = problem_response(exc.status_code, str(title), str(exc.detail))
    for name, value in (exc.headers or {}).items():  # e.g. a 405's Allow (RFC 9110)
        response.headers[name] = value
    return response


def _integrity(_: Request[Any, Any, Any], exc: IntegrityError) -> Response[Any]:
    # A constraint the services did not foresee caught a conflicting write: never a 500.
    log.warning("integrity error mapped to 409: %s", exc.orig)
    return problem_response(409, "Conflict", "the change conflicts with existing data")


def _database(_: Request[Any, Any, Any], exc: DBAPIError) -> Response[Any]:
    # A lock wait that timed out, a deadlock or a serialization failure is the load, not a
    # bug: the same request may succeed in a moment (app.db.is_lock_failure).
    if is_lock_failure(exc):
        sqlstate = str(getattr(exc.orig, "sqlstate", ""))
        log.info("lock failure mapped to 503: %s", LOCK_SQLSTATES.get(sqlstate) or exc.orig)
        return problem_response(503, "Service busy", "the database is busy; retry shortly")
    log.exception("database error", exc_info=exc)
    return problem_response(HTTP_500_INTERNAL_SERVER_ERROR, "Internal error", "database error")


def _pool_timeout(_: Request[Any, Any, Any], exc: PoolTimeout) -> Response[Any]:
    log.warning("no database connection free in time: %s", exc)
    return problem_response(503, "Service busy", "no database connection is free; retry shortly")


def _unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.exception("unhandled error", exc_info=exc)
    return problem_response(HTTP_500_INTERNAL_SERVER_ERROR, "Internal error", "unexpected error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    errors.CopoolError: _domain,
    ledger_errors.LedgerError: _ledger,
    ValidationException: _validation,
    HTTPException: _http,
    IntegrityError: _integrity,
    DBAPIError: _database,
    PoolTimeout: _pool_timeout,
    Exception: _unexpected,
}

_DESCRIPTIONS = {
    400: "Invalid input: the problem names the field at fault",
    401: "Missing, unknown or revoked API key",
    403: "The caller's roles do not allow this",
    404: "No such object, or not visible to the caller",
    409: "Conflicts with the current state",
    412: "The `If-Match` names a version the object no longer has: read it again",
    422: "Idempotency-Key reused with a different request, or input the rules cannot "
    "carry out as asked (e.g. `operator_required`); the problem names the field",
    429: "Too many failed authentications from this address, or writes with this key; "
    "retry after the `Retry-After` seconds",
    503: "Database busy (a lock wait timed out, a deadlock, no free connection); retry "
    "after the `Retry-After` seconds",
}


def problems(*codes: int) -> dict[int, ResponseSpec]:
    """OpenAPI entries for the problem statuses a route can answer with."""
    return {
        code: ResponseSpec(
            data_container=Problem, description=_DESCRIPTIONS[code], media_type=PROBLEM_JSON
        )
        for code in codes
    }


READ = problems(400, 401, 404, 429, 503)
"""Statuses of an authenticated read of one object."""
LIST = problems(400, 401, 403, 429, 503)
"""Statuses of an authenticated list."""
WRITE = problems(400, 401, 403, 404, 409, 422, 429, 503)
"""Statuses of an authenticated change."""

__all__ = ["EXCEPTION_HANDLERS", "LIST", "PROBLEM_JSON", "READ", "WRITE", "MediaType", "problems"]
