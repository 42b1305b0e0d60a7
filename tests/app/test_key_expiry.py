"""API keys with an expiry, and the deployment's maximum lifetime."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from litestar.testing import TestClient

from app.auth import services
from app.auth.models import Role
from app.base import utcnow
from app.cli import main
from app.main import create_app
from app.settings import Settings, get_settings
from tests.app.conftest import World


def _issue(client: Any, world: Any, **body: Any) -> Any:
    return client.post(
        f"/users/{world.users['ann']}/api-keys", json=body, headers=world.headers("ann")
    )


def test_a_key_works_until_it_expires_cached_or_not(
    client: Any, world: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.user("ann", "FEA", Role.REQUESTER)
    expires = utcnow() + timedelta(hours=1)
    issued = _issue(client, world, name="short", expires_at=expires.isoformat())
    assert issued.status_code == 201, issued.text
    assert issued.json()["expires_at"] is not None
    key = {"Authorization": f"Bearer {issued.json()['token']}"}
    assert client.get("/users/me", headers=key).status_code == 200  # now in the auth cache
    later = expires + timedelta(seconds=1)
    monkeypatch.setattr(services, "utcnow", lambda: later)  # the clock, not the database
    for refused in (
        client.get("/users/me", headers=key),
        client.post(f"/users/{world.users['ann']}/api-keys", json={}, headers=key),
    ):
        assert refused.status_code == 401
        assert "expired" in refused.json()["detail"]
    services.KEYS.forget(user_id=world.users["ann"])  # read from the database: still expired
    assert client.get("/users/me", headers=key).status_code == 401
    # ann's first key has no expiry and keeps working
    assert client.get("/users/me", headers=world.headers("ann")).status_code == 200


def test_an_expiry_in_the_past_is_refused(client: Any, world: Any) -> None:
    world.user("ann", "FEA", Role.REQUESTER)
    answer = _issue(client, world, expires_at=(utcnow() - timedelta(minutes=1)).isoformat())
    assert answer.status_code == 400
    assert answer.json()["field"] == "expires_at"


@pytest.fixture
def capped(settings: Settings) -> Iterator[TestClient[Any]]:
    """A client of an app whose keys live at most 30 days."""
    app = create_app(settings.model_copy(update={"api_key_max_days": 30}))
    with TestClient(app=app) as client:
        yield client
    app.state.engine.dispose()


def test_keys_beyond_the_maximum_lifetime_are_refused(capped: Any) -> None:
    world = World(app=capped.app)
    world.user("ann", "FEA", Role.REQUESTER)
    for body in ({}, {"expires_at": (utcnow() + timedelta(days=31)).isoformat()}):
        answer = _issue(capped, world, **body)
        assert answer.status_code == 400, body
        assert answer.json()["field"] == "expires_at"
        assert "30 days" in answer.json()["detail"]
    ok = _issue(capped, world, expires_at=(utcnow() + timedelta(days=29)).isoformat())
    assert ok.status_code == 201


def test_copool_keys_issue_expires_in(
    client: Any, world: Any, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.user("ann", "FEA", Role.REQUESTER)
    monkeypatch.setenv("COPOOL_DATABASE_URL", db_url)
    monkeypatch.setenv("COPOOL_API_KEY_MAX_DAYS", "30")
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        email = "ann@FEA.example.org"
        refused = runner.invoke(main, ["keys", "issue", "--email", email])
        assert refused.exit_code == 1 and "expires_at" in refused.output
        too_long = runner.invoke(main, ["keys", "issue", "--email", email, "--expires-in", "31"])
        assert too_long.exit_code == 1 and "30 days" in too_long.output
        done = runner.invoke(main, ["keys", "issue", "--email", email, "--expires-in", "7"])
        assert done.exit_code == 0, done.output
        token = done.stdout.strip().splitlines()[-1]
    finally:
        get_settings.cache_clear()
    assert client.get("/users/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    keys = client.get(f"/users/{world.users['ann']}/api-keys", headers=world.headers("ann"))
    expiring = [k for k in keys.json()["items"] if k["expires_at"]]
    assert len(expiring) == 1
