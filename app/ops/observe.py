"""The pure ASGI middleware in front of everything: request id, counts and timings.

It wraps the app's whole handler (outside the admission gate, so refused requests are
counted too) and does no database work, no parsing and no allocation beyond the id: per
request a header scan, a ``perf_counter`` pair and a cached counter and histogram child.

The request id: a sane ``X-Request-Id`` from the client (1-128 of ``A-Z a-z 0-9 . _ : -``,
e.g. a load balancer's) is kept, anything else replaced by a fresh one; it is returned in
the ``X-Request-Id`` header of the answer and is in every log line written while the
request is served (``REQUEST_ID``, a context variable that Litestar's worker threads
inherit; ``app.ops.logs``).
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterable
from contextvars import ContextVar

from litestar.types import ASGIApp, Message, Receive, Scope, Send

from app.ops.metrics import NO_ROUTE, Metrics

REQUEST_ID: ContextVar[str] = ContextVar("copool_request_id", default="")
"""The id of the request being served ("" outside a request)."""
HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")


def request_id_of(headers: Iterable[tuple[bytes, bytes]]) -> str:
    """The client's ``X-Request-Id`` when it is sane, else a new one."""
    for name, value in headers:
        if name == HEADER:
            if _SANE.fullmatch(value):
                return value.decode("ascii")
            break
    return uuid.uuid4().hex


class ObservedRequests:
    """ASGI middleware: a request id in and out, and the request's metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id_of(scope["headers"])
        header = (HEADER, rid.encode("ascii"))
        status = 500  # what the server answers when the app fails before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        token = REQUEST_ID.set(rid)
        metrics = self.metrics
        metrics.in_flight.inc()
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("path_template") or NO_ROUTE
            metrics.observe(str(scope.get("method", "")), route, status, time.perf_counter() - started)
            # counted before it leaves the in-flight gauge: a scrape that sees no other
            # request in flight has every answered one counted
            metrics.in_flight.dec()
            REQUEST_ID.reset(token)
