"""Log lines as text or JSON (``COPOOL_LOG_FORMAT``), each with the request id.

``configure`` gives the ``copool`` loggers one handler of their own (stderr) and, in JSON,
reformats uvicorn's too, so a deployment's log collector reads one format. A JSON line is
one object: ``ts`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``request_id`` (when
written while a request is served), ``exc`` (a traceback, when there is one).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Literal

from app.ops.observe import REQUEST_ID

Format = Literal["json", "text"]
TEXT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Puts the current request's id on every record (``record.request_id``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = getattr(record, "request_id", "")
        if request_id:
            line["request_id"] = request_id
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def formatter(fmt: Format) -> logging.Formatter:
    """The formatter of ``fmt``."""
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT)


def configure(level: str, fmt: Format, stream: IO[str] | None = None) -> logging.Handler:
    """Send the ``copool`` loggers' lines to ``stream`` (stderr) in ``fmt``; returns the handler."""
    logger = logging.getLogger("copool")
    logger.setLevel(level)
    for old in [h for h in logger.handlers if getattr(h, "copool_ops", False)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.copool_ops = True  # type: ignore[attr-defined]
    handler.setFormatter(formatter(fmt))
    handler.addFilter(RequestIdFilter())
    logger.addHandler(handler)
    # still propagated: uvicorn leaves the root logger without handlers, and a root handler
    # someone adds (pytest's capture, an embedding app) sees copool's lines too
    if fmt == "json":
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
            for other in logging.getLogger(name).handlers:
                other.setFormatter(handler.formatter)
                other.addFilter(RequestIdFilter())
    return handler
