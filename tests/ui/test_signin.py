"""Signing in to the dashboard: API key or one-time link, the session cookie, CSRF, and the
API's authorization (another unit's objects answer 404)."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient
from sqlalchemy import update

from app.auth import services as auth
from app.auth.actor import SYSTEM
from app.auth.models import Role, User
from app.base import utcnow
from app.cli import main
from app.main import create_app
from app.settings import Settings, get_settings
from app.ui.models import LoginLink
from tests.app import booking_world
from tests.app.conftest import World
from tests.ui.conftest import csrf_of, sign_in


def test_an_api_key_signs_in_with_an_httponly_samesite_cookie(client: TestClient[Any], world: World) -> None:
    world.user("ann", "A", Role.REQUESTER)
    assert client.get("/ui/", follow_redirects=False).headers["location"] == "/ui/login"
    form = client.get("/ui/login")
    answer = client.post(
        "/ui/login", data={"csrf": csrf_of(form.text), "api_key": world.tokens["ann"]},
        follow_redirects=False,
    )
    cookie = next(v for k, v in answer.headers.multi_items()
                  if k == "set-cookie" and v.startswith("copool_session="))
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie  # plain http in the test; Secure when served over https
    home = client.get("/ui/")
    assert home.status_code == 200 and "ann" in home.text
    policy = home.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert home.headers["cache-control"] == "no-store"


def test_a_wrong_key_shows_the_form_again_with_the_reason(client: TestClient[Any], world: World) -> None:
    form = client.get("/ui/login")
    answer = client.post("/ui/login", data={"csrf": csrf_of(form.text), "api_key": "cpl_nope"})
    assert answer.status_code == 401
    assert "unknown API key" in answer.text
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def test_a_post_without_the_csrf_token_is_refused(client: TestClient[Any], world: World) -> None:
    world.user("ann", "A", Role.REQUESTER)
    csrf = sign_in(client, world.tokens["ann"])
    for data in ({}, {"csrf": "forged"}):
        refused = client.post("/ui/feeds", data={**data, "kind": "mine"})
        assert refused.status_code == 403 and "csrf" in refused.text
        assert client.post("/ui/logout", data=data).status_code == 403
    form = client.get("/ui/login")
    assert client.post("/ui/login", data={"api_key": world.tokens["ann"]}).status_code == 403
    assert csrf_of(form.text)
    made = client.post("/ui/feeds", data={"csrf": csrf, "kind": "mine", "target_id": ""})
    assert made.status_code == 200 and "webcal://" in made.text
    feed = re.search(r'value="(https?://[^"]+/feeds/[^"]+\.ics)"', made.text)
    assert feed and client.get(feed.group(1)).status_code == 200
    feed_id = re.search(r"/ui/feeds/([0-9a-f-]{36})/revoke", client.get("/ui/feeds").text)
    assert feed_id
    assert client.post(f"/ui/feeds/{feed_id.group(1)}/revoke", data={}).status_code == 403
    client.post(f"/ui/feeds/{feed_id.group(1)}/revoke", data={"csrf": csrf})
    assert client.get(feed.group(1)).status_code == 404


def test_revoking_the_key_ends_the_session(client: TestClient[Any], world: World) -> None:
    world.user("ann", "A", Role.REQUESTER)
    sign_in(client, world.tokens["ann"])
    with world.session() as s:
        key = auth.list_keys(s, SYSTEM, world.users["ann"])[0]
        auth.revoke_key(s, SYSTEM, key.id, "lost laptop")
    assert client.get("/ui/", follow_redirects=False).headers["location"] == "/ui/login"


def test_signing_out_ends_the_session(client: TestClient[Any], world: World) -> None:
    world.user("ann", "A", Role.REQUESTER)
    csrf = sign_in(client, world.tokens["ann"])
    cookie = client.cookies.get("copool_session")
    assert client.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False).status_code == 303
    client.cookies.set("copool_session", cookie or "", path="/ui")
    assert client.get("/ui/", follow_redirects=False).status_code == 303


def _link(db_url: str, email: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("COPOOL_DATABASE_URL", db_url)
    monkeypatch.setenv("COPOOL_DEMO_KEY_PATH", str(tmp_path / "demo.key"))
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["users", "login-link", email, "--base-url", "https://copool.example"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    link = result.output.strip()
    assert re.fullmatch(r"https://copool\.example/ui/login/[\w-]{40,}", link), link
    return link.removeprefix("https://copool.example")


def test_a_login_link_signs_in_once(
    client: TestClient[Any], world: World, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.user("ann", "A", Role.PROJECT_LEAD)
    path = _link(db_url, "ann@A.example.org", tmp_path, monkeypatch)
    page = client.get(path)  # opening the link uses nothing up (mail scanners open links)
    assert page.status_code == 200 and "Continue" in page.text
    used = client.post(path, data={"csrf": csrf_of(page.text)}, follow_redirects=False)
    assert used.status_code == 303 and "copool_session=" in used.headers["set-cookie"]
    assert "ann" in client.get("/ui/").text
    again = client.get(path)
    assert client.post(path, data={"csrf": csrf_of(again.text)}).status_code == 401


def test_an_expired_login_link_is_refused(
    client: TestClient[Any], world: World, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.user("ann", "A", Role.REQUESTER)
    path = _link(db_url, "ann@A.example.org", tmp_path, monkeypatch)
    with world.session() as s:
        s.execute(update(LoginLink).values(expires_at=utcnow() - timedelta(seconds=1)))
    page = client.get(path)
    refused = client.post(path, data={"csrf": csrf_of(page.text)})
    assert refused.status_code == 401 and "expired" in refused.text


def test_another_units_objects_answer_404(client: TestClient[Any], world: World) -> None:
    lending = booking_world.build(world, requires_approval=True)
    csrf = sign_in(client, world.tokens["out"])  # unit X: no agreement with the lender
    assert client.get(f"/ui/resources/{lending.expert}").status_code == 404
    booked = client.post(
        f"/ui/resources/{lending.expert}/book",
        data={"csrf": csrf, "start": "2030-01-07T10:00", "minutes": "60",
              "project_id": str(lending.project)},
    )
    assert booked.status_code == 404


def test_the_session_cookie_is_secure_behind_https(client: TestClient[Any], world: World) -> None:
    world.user("ann", "A", Role.REQUESTER)
    https = {"X-Forwarded-Proto": "https"}
    form = client.get("/ui/login", headers=https)
    answer = client.post(
        "/ui/login", data={"csrf": csrf_of(form.text), "api_key": world.tokens["ann"]},
        headers=https, follow_redirects=False,
    )
    cookie = next(v for k, v in answer.headers.multi_items()
                  if k == "set-cookie" and v.startswith("copool_session="))
    assert "Secure" in cookie and "HttpOnly" in cookie


def test_a_deactivated_user_is_signed_out(client: TestClient[Any], world: World) -> None:
    world.user("ann", "A", Role.REQUESTER)
    sign_in(client, world.tokens["ann"])
    with world.session() as s:
        s.get(User, world.users["ann"]).active = False
    assert client.get("/ui/", follow_redirects=False).headers["location"] == "/ui/login"


def test_wrong_keys_from_one_address_are_throttled(
    db_url: str, tmp_path: Path, world: World, client: TestClient[Any]
) -> None:
    world.user("ann", "A", Role.REQUESTER)
    app = create_app(Settings(database_url=db_url, demo_key_path=tmp_path / "k",
                              auth_failure_limit=2))
    try:
        with TestClient(app=app) as guarded:
            answers = []
            for _ in range(3):
                form = guarded.get("/ui/login")
                answers.append(guarded.post(
                    "/ui/login", data={"csrf": csrf_of(form.text), "api_key": "cpl_guess"}
                ).status_code)
            form = guarded.get("/ui/login")
            right = guarded.post("/ui/login", data={"csrf": csrf_of(form.text),
                                                    "api_key": world.tokens["ann"]})
    finally:
        app.state.engine.dispose()
    assert answers == [401, 401, 401]
    assert right.status_code == 429 and right.headers["retry-after"]


def test_an_auditor_reads_makes_their_own_feed_and_signs_out_but_writes_nothing_else(
    client: TestClient[Any], world: World
) -> None:
    lending = booking_world.build(world, requires_approval=True)
    world.user("aud", "A", Role.AUDITOR)
    csrf = sign_in(client, world.tokens["aud"])
    assert client.get(f"/ui/projects/{lending.project}/funds").status_code == 200
    made = client.post("/ui/feeds", data={"csrf": csrf, "kind": "mine", "target_id": ""})
    assert made.status_code == 200 and "webcal://" in made.text
    booked = client.post(
        f"/ui/resources/{lending.expert}/book",
        data={"csrf": csrf, "start": "2030-01-07T10:00", "minutes": "60",
              "project_id": str(lending.project)},
    )
    assert booked.status_code == 403 and "auditors only read" in booked.text
    out = client.post("/ui/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
