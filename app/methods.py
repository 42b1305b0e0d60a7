"""Protocol niceties every route gets, as ASGI wrappers in front of the app.

- ``HEAD`` is answered wherever ``GET`` is (RFC 9110 §9.3.2): the request runs as a
  ``GET`` and its body is dropped, so the headers (``Content-Length``, ``ETag``, the
  page headers) are the ``GET``'s own. Calendar clients probe feeds with ``HEAD``.
- An action ``POST`` sent without a body (``approve``, ``complete``, ``revoke``…) is read
  as ``{}``: actions whose body fields are all optional then just work, and those with a
  required field answer 400 naming that field instead of "no body".

Both change the scope in place, never a copy: Litestar's send hooks (the commit of the
request's session among them) hold the scope the app was called with, so a handler run
on a copy would leave its session, and on SQLite the writer lock, behind.
"""

from __future__ import annotations

from typing import Any

from litestar.openapi.spec import OpenAPIType, Reference, Schema
from litestar.types import ASGIApp, Message, Receive, ReceiveMessage, Scope, Send

JSON = b"application/json"


class HeadAsGet:
    """Answer ``HEAD`` by running ``GET`` and sending its headers without the body."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return

        async def send_headers_only(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        scope["method"] = "GET"  # type: ignore[typeddict-unknown-key]
        await self.app(scope, receive, send_headers_only)


class EmptyBodyAsObject:
    """Read a ``POST`` whose body turns out empty as the JSON object ``{}``.

    Nothing is read ahead: the app's first ``receive`` gets ``{}`` in place of an empty,
    final body message, and any other message as sent (a refused request still reads
    nothing of its body)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST" or _announces_body(scope):
            await self.app(scope, receive, send)
            return
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        if not any(k == b"content-type" for k, _ in headers):
            headers.append((b"content-type", JSON))
        scope["headers"] = headers
        first = True

        async def receive_empty_as_object() -> ReceiveMessage:
            nonlocal first
            message = await receive()
            if first and message["type"] == "http.request":
                first = False
                if not message.get("body") and not message.get("more_body", False):
                    return {"type": "http.request", "body": b"{}", "more_body": False}
            return message

        await self.app(scope, receive_empty_as_object, send)


def _announces_body(scope: Scope) -> bool:
    """Whether the request says it carries a body (a length above 0, or chunked)."""
    for name, value in scope["headers"]:
        if name == b"transfer-encoding":
            return True
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
    return False


def document_empty_bodies(app: Any) -> None:
    """``on_startup``: the OpenAPI document says a ``POST`` body is optional where its
    schema requires no field (the body may then be left out, see
    :class:`EmptyBodyAsObject`)."""
    components = app.openapi_schema.components.schemas or {}
    for item in (app.openapi_schema.paths or {}).values():
        body = item.post.request_body if item.post is not None else None
        if body is None or isinstance(body, Reference) or not body.content:
            continue
        media = body.content.get("application/json")
        schema = media.schema if media is not None else None
        if isinstance(schema, Reference):
            schema = components.get(schema.ref.rsplit("/", 1)[-1])
        if isinstance(schema, Schema) and schema.type == OpenAPIType.OBJECT and not schema.required:
            body.required = False
