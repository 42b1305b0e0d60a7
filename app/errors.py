"""Domain exceptions of the app; ``app.problems`` maps each to an HTTP status in one table.

CopoolError
├── NotFound            the object does not exist, or the actor may not know it exists
├── NotAuthenticated    no valid API key
├── PermissionDenied    the actor's roles do not allow the action
├── InvalidInput        a value breaks a domain rule (names the field)
│   └── Unprocessable   well-formed input the rules cannot carry out as asked (422)
├── Conflict            the change clashes with the current state (duplicate, overlap, retired)
├── PreconditionFailed  an If-Match names a version the object no longer has
├── IdempotencyMismatch the same Idempotency-Key was sent with another request
└── Busy                the database is locked for longer than the configured timeout
"""

from __future__ import annotations

from typing import Any


class CopoolError(Exception):
    """Base of every error the app raises on purpose."""

    title = "Error"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra


class NotFound(CopoolError):
    """The object does not exist or is invisible to the actor (never leaks existence)."""

    title = "Not found"


class NotAuthenticated(CopoolError):
    """No API key, or an unknown, revoked or inactive one."""

    title = "Not authenticated"


class PermissionDenied(CopoolError):
    """The actor is known but its roles do not grant the action."""

    title = "Forbidden"


class InvalidInput(CopoolError):
    """A value breaks a domain rule; ``field`` names it."""

    title = "Invalid input"


class Unprocessable(InvalidInput):
    """Well-formed input the rules cannot carry out as asked (a device that needs an operator
    booked without one, an operator without the skill); ``field`` names what to change."""

    title = "Unprocessable input"


class Conflict(CopoolError):
    """The change clashes with the current state of the data."""

    title = "Conflict"


class PreconditionFailed(CopoolError):
    """An ``If-Match`` names a version the object no longer has: it changed since it was read."""

    title = "Precondition failed"


class IdempotencyMismatch(CopoolError):
    """An Idempotency-Key was reused with a different request."""

    title = "Idempotency key reused"


class Busy(CopoolError):
    """The database stayed locked longer than the configured timeout; retry later."""

    title = "Service busy"
