"""Input that no route may see: the NUL character in a path or query string.

PostgreSQL cannot store NUL in text (it answered 500), SQLite would store it silently.
Bodies are checked by the schemas (``app.schemas.Schema``); this middleware refuses a
request whose path or query string carries a NUL (raw or ``%00``) with 400 before routing.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from litestar import Litestar
from litestar.datastructures import MutableScopeHeaders
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Scope
from pydantic import BaseModel

from app.problems import PROBLEM_JSON, Problem


class RejectNul:
    """ASGI middleware: 400 for a NUL in the path or the query string."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            raw = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
            query = scope.get("query_string", b"")
            if any(b"\x00" in part or b"%00" in part for part in (raw, query)) or (
                "\x00" in scope["path"]
            ):
                body = Problem(
                    title="Invalid input",
                    status=400,
                    detail="the path and the query string must not contain the NUL character",
                    field="query" if b"%00" in query or b"\x00" in query else "path",
                ).model_dump_json(exclude_none=True).encode()
                headers = [
                    (b"content-type", PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({"type": "http.response.start", "status": 400, "headers": headers})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return
        await self.app(scope, receive, send)


def _subclasses(cls: type[BaseModel]) -> list[type[BaseModel]]:
    out: list[type[BaseModel]] = []
    for sub in cls.__subclasses__():
        out.extend([sub, *_subclasses(sub)])
    return out


def forbid_unknown_fields(app: Any) -> None:
    """Make the OpenAPI document say what validation does: input schemas refuse unknown
    fields (``additionalProperties: false``). Litestar builds the document itself and leaves
    pydantic's ``extra="forbid"`` out."""
    from app.schemas import Schema

    forbidding = {
        cls.__name__ for cls in _subclasses(Schema) if cls.model_config.get("extra") == "forbid"
    }
    components = app.openapi_schema.components
    for name, schema in (components.schemas or {}).items():
        if name in forbidding and schema.properties is not None:
            schema.additional_properties = False


@lru_cache(maxsize=8)
def _methods_by_path(app: Litestar) -> dict[str, str]:
    return {
        route.path_format: ", ".join(sorted(route.methods))
        for route in app.routes
        if isinstance(route, HTTPRoute)
    }


def allow_every_method(message: Message, scope: Scope) -> None:
    """``before_send`` hook: an OPTIONS answer's ``Allow`` lists every method of the path.

    Litestar builds a path's OPTIONS handler when the path's first handler is registered,
    so its ``Allow`` misses the methods of handlers added later (``GET /units`` answered
    ``Allow: OPTIONS, POST``); RFC 9110 wants them all.
    """
    if (
        message["type"] != "http.response.start"
        or scope["type"] != "http"
        or scope.get("method") != "OPTIONS"
        or message["status"] != 204
    ):
        return
    methods = _methods_by_path(scope["app"]).get(scope.get("path_template", ""))
    if methods:
        MutableScopeHeaders.from_message(message)["allow"] = methods
