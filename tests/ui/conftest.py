"""Dashboard fixtures: the app's in-process client and world (tests/app), and a signed-in
browser session helper for plain HTTP tests."""

from __future__ import annotations

import re
from typing import Any

from litestar.testing import TestClient

from tests.app.conftest import app, client, settings, world  # noqa: F401  (fixtures)
from tests.ui.browser import chromium, site, visitor  # noqa: F401  (fixtures)

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token a page's forms carry."""
    found = CSRF.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def sign_in(http: TestClient[Any], api_key: str) -> str:
    """Sign in through the form with an API key; returns the session's CSRF token."""
    form = http.get("/ui/login")
    answer = http.post(
        "/ui/login", data={"csrf": csrf_of(form.text), "api_key": api_key}, follow_redirects=False
    )
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/ui/"
    return csrf_of(http.get("/ui/").text)
