"""The per-process key cache: most requests skip the key lookup; revocation still holds."""

from __future__ import annotations

import dataclasses
import time

import pytest
from sqlalchemy import event, update

from app.auth.models import ApiKey, Role
from app.auth.services import KEYS
from app.base import utcnow
from app.main import create_app
from app.settings import Settings
from tests.app.conftest import session_of


@pytest.fixture
def cached_app(db_url, tmp_path):
    application = create_app(
        Settings(
            database_url=db_url,
            demo_key_path=tmp_path / "k",
            api_key_touch_seconds=3600,
            auth_cache_seconds=5,
        )
    )
    yield application
    application.state.engine.dispose()


def _key_lookups(app) -> list[str]:
    seen: list[str] = []

    @event.listens_for(app.state.engine, "before_cursor_execute")
    def count(conn, cursor, statement, *args):
        if statement.lstrip().startswith("SELECT") and "FROM api_keys" in statement:
            seen.append(statement)

    return seen


def test_a_known_key_is_not_looked_up_again_within_the_cache_time(cached_app, world):
    from litestar.testing import TestClient

    world.app = cached_app
    headers = world.user("reader", "A", Role.REQUESTER)
    lookups = _key_lookups(cached_app)
    with TestClient(app=cached_app) as client:
        for _ in range(5):
            assert client.get("/users/me", headers=headers).status_code == 200
    assert len(lookups) == 1


def test_revocation_elsewhere_holds_once_the_cache_time_passes(cached_app, world):
    from litestar.testing import TestClient

    world.app = cached_app
    headers = world.user("reader", "A", Role.REQUESTER)
    with TestClient(app=cached_app) as client:
        assert client.get("/users/me", headers=headers).status_code == 200
        # another worker revokes the key: this process is not told
        with session_of(cached_app) as s:
            s.execute(update(ApiKey).values(revoked_at=utcnow()))
            s.commit()
        for digest, known in list(KEYS._entries.items()):  # the cache time has passed
            KEYS._entries[digest] = dataclasses.replace(known, seen=time.monotonic() - 5)
        assert client.get("/users/me", headers=headers).status_code == 401


def test_revocation_here_holds_at_once(cached_app, world):
    from litestar.testing import TestClient

    world.app = cached_app
    headers = world.user("reader", "A", Role.REQUESTER)
    admin = world.user("root", "A", Role.ADMIN)
    with TestClient(app=cached_app) as client:
        assert client.get("/users/me", headers=headers).status_code == 200
        me = client.get("/users/me", headers=headers).json()
        [key] = client.get(f"/users/{me['id']}/api-keys", headers=admin).json()["items"]
        assert (
            client.post(f"/api-keys/{key['id']}/revoke", json={}, headers=admin).status_code == 200
        )
        assert client.get("/users/me", headers=headers).status_code == 401


def test_deactivating_a_user_here_stops_their_cached_keys_at_once(cached_app, world):
    from litestar.testing import TestClient

    world.app = cached_app
    headers = world.user("reader", "A", Role.REQUESTER)
    admin = world.user("root", "A", Role.ADMIN)
    with TestClient(app=cached_app) as client:
        assert client.get("/users/me", headers=headers).status_code == 200
        changed = client.patch(
            f"/users/{world.users['reader']}", json={"active": False}, headers=admin
        )
        assert changed.status_code == 200, changed.text
        assert client.get("/users/me", headers=headers).status_code == 401
