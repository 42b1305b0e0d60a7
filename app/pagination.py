"""List parameters shared by every list route, and the page they produce."""

from __future__ import annotations

from collections.abc import Sequence
from contextvars import ContextVar
from typing import Annotated, Any, TypeVar
from urllib.parse import parse_qsl, urlencode

from litestar import Response
from litestar.params import Parameter
from litestar.types import ASGIApp, Receive, Scope, Send
from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, or_, true
from sqlalchemy.orm import InstrumentedAttribute

from app.schemas import Page

Limit = Annotated[int, Parameter(ge=1, le=200, description="Page size (1–200)")]
Offset = Annotated[int, Parameter(ge=0, le=1_000_000, description="Rows to skip")]
DATE_TIME = {"format": "date-time"}
_INSTANT = "An RFC 3339 date-time with an offset, e.g. 2027-03-01T09:00:00Z"
Instant = Annotated[
    str,
    Parameter(min_length=1, max_length=64, schema_extra=DATE_TIME, description=_INSTANT),
]
"""A query-string instant; controllers pass it through ``app.schemas.aware``."""
OptionalInstant = Annotated[
    str | None, Parameter(max_length=64, schema_extra=DATE_TIME, description=_INSTANT)
]

S = TypeVar("S", bound=BaseModel)


def page(schema: type[S], rows: Sequence[Any], total: int, limit: int, offset: int) -> Page[S]:
    """Render ORM rows as one page of ``schema``."""
    return Page[schema](  # type: ignore[valid-type]
        items=[schema.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )


def page_of(schema: type[S], rows: Sequence[Any], limit: int, offset: int) -> Page[S]:
    """One page of a list that is short by nature (a user's keys, an expert's leave),
    read whole and cut here, so that every list answers the same envelope."""
    return page(schema, rows[offset : offset + limit], len(rows), limit, offset)


_SCOPE: ContextVar[Scope | None] = ContextVar("copool_list_scope", default=None)


class RememberScope:
    """ASGI wrapper: keeps the request's scope where :func:`page_headers` can read it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = _SCOPE.set(scope)
        try:
            await self.app(scope, receive, send)
        finally:
            _SCOPE.reset(token)


def page_headers(response: Response[Any]) -> Response[Any]:
    """``after_request`` hook: every list answer carries ``X-Total-Count`` and ``Link``.

    ``Link`` (RFC 8288) names the ``first``, ``prev``, ``next`` and ``last`` pages as
    references relative to the host, with the request's own filters kept.
    """
    content, scope = getattr(response, "content", None), _SCOPE.get()
    if not isinstance(content, Page) or scope is None:
        return response
    response.headers["X-Total-Count"] = str(content.total)
    response.headers["Link"] = ", ".join(
        f'<{_url(scope, offset)}>; rel="{rel}"' for rel, offset in _pages(content)
    )
    return response


def _pages(page: Page[Any]) -> list[tuple[str, int]]:
    last = max(0, (page.total - 1) // page.limit * page.limit)
    pages = [("first", 0)]
    if page.offset > 0:
        pages.append(("prev", max(0, page.offset - page.limit)))
    if page.offset + page.limit < page.total:
        pages.append(("next", page.offset + page.limit))
    pages.append(("last", last))
    return pages


def _url(scope: Scope, offset: int) -> str:
    query = [
        (k, v)
        for k, v in parse_qsl(
            scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True
        )
        if k != "offset"
    ]
    query.append(("offset", str(offset)))
    return f"{scope.get('root_path', '')}{scope['path']}?{urlencode(query)}"


Search = Annotated[
    str | None,
    Parameter(
        min_length=1,
        max_length=100,
        description="Text search: rows whose name, code, title or e-mail contains it "
        "(case-insensitive)",
    ),
]
"""The ``q`` parameter of a list."""


def matches(
    q: str | None, *columns: ColumnElement[str] | InstrumentedAttribute[str]
) -> ColumnElement[bool]:
    """Rows where one of ``columns`` contains ``q`` (case-insensitive; ``%``/``_`` literal)."""
    if not q:
        return true()
    needle = q.lower()
    return or_(*(func.lower(c).contains(needle, autoescape=True) for c in columns))
