"""Security headers on every answer, set in one place (a ``before_send`` hook of the app).

- ``X-Content-Type-Options: nosniff`` everywhere, so that no answer is ever sniffed into
  something it is not (an uploaded calendar or an error echoing input rendered as HTML);
- ``Cache-Control: no-store`` on every JSON answer that does not set its own: API answers
  carry unit data and, on issuing, secrets (a new API key, a feed URL) that no proxy or
  browser cache may keep. Answers that issue a secret always get ``no-store``. Calendar
  feeds keep their own ``private, no-cache`` with ``ETag``/``Last-Modified`` (304 works);
- a Content-Security-Policy: ``default-src 'none'`` on everything (an API answer loads
  nothing), and for the API docs page only what it needs from copool itself (``app.docs``);
- no ``server`` banner: ``copool serve`` turns uvicorn's off.
"""

from __future__ import annotations

from litestar.datastructures import MutableScopeHeaders
from litestar.types import Message, Scope

from app.bookings.idempotency import SECRET_PATHS

NOSNIFF = "nosniff"
NO_STORE = "no-store"
API_POLICY = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
"""CSP of every answer but the docs page: an API answer loads and runs nothing."""
DOCS_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)
"""CSP of the API docs page: its scripts, styles and the OpenAPI document from copool only;
no inline script, no other origin."""
DOCS_PREFIX = "/schema"


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


def _issues_secret(scope: Scope) -> bool:
    return scope.get("method") == "POST" and any(p.match(scope["path"]) for p in SECRET_PATHS)


def security_headers(message: Message, scope: Scope) -> None:
    """Add the headers of the module docstring to an answer's start (``before_send`` hook)."""
    if message["type"] != "http.response.start" or scope["type"] != "http":
        return
    headers = MutableScopeHeaders.from_message(message)
    headers.setdefault("x-content-type-options", NOSNIFF)
    content_type = headers.get("content-type") or ""
    if _issues_secret(scope):
        headers["cache-control"] = NO_STORE
    elif _is_json(content_type):
        headers.setdefault("cache-control", NO_STORE)
    if "content-security-policy" not in headers:
        docs = scope["path"].startswith(DOCS_PREFIX) and content_type.startswith("text/html")
        headers["content-security-policy"] = DOCS_POLICY if docs else API_POLICY
