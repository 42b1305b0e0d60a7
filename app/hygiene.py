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
    models = {cls.__name__: cls for cls in _subclasses(Schema)}
    components = app.openapi_schema.components
    for name, schema in (components.schemas or {}).items():
        if name in forbidding and schema.properties is not None:
            schema.additional_properties = False
        if name in models and schema.properties is not None:
            _carry_optional_bounds(models[name], schema)
        _plain_tuples(schema)


def _plain_tuples(schema: Any) -> None:
    """Write a pair of like items (``tuple[datetime, datetime]``) as ``items`` with two
    items exactly, not ``prefixItems``, which validators of OpenAPI 3.0 tooling (and
    schemathesis) read as a schema and reject."""
    if not hasattr(schema, "prefix_items"):
        return
    items = schema.prefix_items
    if items and all(item == items[0] for item in items):
        schema.prefix_items = None
        schema.items = items[0]
        schema.min_items = schema.max_items = len(items)
    for child in (*(schema.properties or {}).values(), schema.items, *(schema.one_of or [])):
        if child is not None:
            _plain_tuples(child)


_BOUNDS = {
    "minLength": "min_length",
    "maxLength": "max_length",
    "pattern": "pattern",
    "minimum": "minimum",
    "maximum": "maximum",
    "minItems": "min_items",
    "maxItems": "max_items",
}
"""JSON Schema keywords of a bound, and the attribute Litestar's ``Schema`` keeps it in."""


def _carry_optional_bounds(model: type[BaseModel], schema: Any) -> None:
    """Give an optional field's non-null branch the bounds pydantic validates.

    Litestar renders ``name: Name | None`` as ``oneOf: [string, null]`` and drops the
    ``Name``'s ``minLength``/``maxLength`` (and patterns, ranges, item counts), so the
    document let through what validation refuses. Pydantic's own JSON schema keeps them.
    """
    properties = model.model_json_schema(ref_template="{model}")["properties"]
    for field, rendered in schema.properties.items():
        branches = [b for b in (getattr(rendered, "one_of", None) or []) if hasattr(b, "type")]
        source = [b for b in properties.get(field, {}).get("anyOf", []) if b.get("type") != "null"]
        if len(source) != 1:
            continue
        for branch in branches:
            if branch.type is not None and str(branch.type.value) == source[0].get("type"):
                for keyword, attribute in _BOUNDS.items():
                    if keyword in source[0] and getattr(branch, attribute) is None:
                        setattr(branch, attribute, source[0][keyword])


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
