"""Security headers on every answer, the docs page without a CDN, and no server banner."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.auth.models import Role
from tests.app.live_server import ROOT, _free_port, _stop


def _secure(answer: httpx.Response) -> None:
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "default-src 'none'" in answer.headers["content-security-policy"]


def test_json_answers_are_not_stored_and_not_sniffed(client: Any, world: Any) -> None:
    user = world.user("ann", "FEA", Role.REQUESTER)
    answers = [
        client.get("/users/me", headers=user),  # 200
        client.get("/users/me"),  # 401
        client.get("/no-such-route"),  # 404 from the router
        client.get("/users/not-a-uuid", headers=user),  # 404/400 from validation
        client.post("/units", json={"name": "x"}, headers=user),  # 400 or 403
    ]
    for answer in answers:
        _secure(answer)
        assert answer.headers["cache-control"] == "no-store", answer.request.url
    assert client.get("/health").headers["x-content-type-options"] == "nosniff"


def test_answers_that_carry_a_secret_are_never_stored(client: Any, world: Any) -> None:
    user = world.user("ann", "FEA", Role.REQUESTER)
    me = world.users["ann"]
    issued = client.post(f"/users/{me}/api-keys", json={"name": "laptop"}, headers=user)
    assert issued.status_code == 201 and issued.json()["token"]
    feed = client.post("/feed-subscriptions", json={"kind": "mine"}, headers=user)
    assert feed.status_code == 201 and feed.json()["url"]
    rotated = client.post(f"/feed-subscriptions/{feed.json()['id']}/rotate", headers=user)
    assert rotated.status_code == 200
    for answer in (issued, feed, rotated):
        assert answer.headers["cache-control"] == "no-store"
        _secure(answer)


def test_feeds_keep_their_own_caching(client: Any, world: Any) -> None:
    user = world.user("ann", "FEA", Role.REQUESTER)
    feed = client.post("/feed-subscriptions", json={"kind": "mine"}, headers=user).json()
    path = urlsplit(feed["url"]).path
    first = client.get(path)
    assert first.status_code == 200
    assert first.headers["cache-control"] == "private, no-cache"
    assert first.headers["x-content-type-options"] == "nosniff"
    again = client.get(path, headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    assert again.headers["cache-control"] == "private, no-cache"


def test_the_docs_page_loads_everything_from_copool(client: Any) -> None:
    page = client.get("/schema")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "default-src 'none'" in policy
    html = page.text
    assert not re.search(r"https?://", html), "the page names another origin"
    assert "<script>" not in html, "inline script (the CSP would block it)"
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        answer = client.get(asset)
        assert answer.status_code == 200, asset
        assert answer.content, asset
    openapi = re.search(r'data-openapi-url="([^"]+)"', html)
    assert openapi is not None
    assert client.get(openapi.group(1)).json()["info"]["title"] == "copool"


def test_copool_serve_sends_no_server_banner(db_url: str, tmp_path: Path) -> None:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("COPOOL_")}
    env |= {"COPOOL_DATABASE_URL": db_url, "COPOOL_LOG_LEVEL": "WARNING"}
    command = [sys.executable, "-c", "from app.cli import main; main()", "serve",
               "--host", "127.0.0.1", "--port", str(port)]
    with (tmp_path / "serve.log").open("wb") as log:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                                stderr=log, start_new_session=True)
    try:
        answer = _wait_for_health(proc, f"http://127.0.0.1:{port}")
        assert "server" not in answer.headers
        assert answer.headers["x-content-type-options"] == "nosniff"
    finally:
        _stop(proc)


def _wait_for_health(proc: subprocess.Popen[bytes], base: str) -> httpx.Response:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"copool serve exited with {proc.returncode}")
        try:
            return httpx.get(f"{base}/health", timeout=1)
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail("copool serve did not answer /health within 60 s")
