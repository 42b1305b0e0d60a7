"""App fixtures: a Litestar test client over each database, and a small world of units/users."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from app.auth import services as auth
from app.auth.actor import SYSTEM
from app.auth.models import Role
from app.auth.schemas import UserCreate
from app.db import make_session_factory, session_scope
from app.main import create_app
from app.migrate import upgrade
from app.settings import Settings
from app.units.models import Unit
from tests.conftest import PG_URL, REQUIRE_PG


@pytest.fixture
def settings(db_url: str, tmp_path: Any) -> Settings:
    """Settings for an app on the test database."""
    return Settings(
        database_url=db_url, demo_key_path=tmp_path / "demo.key", api_key_touch_seconds=0
    )


@pytest.fixture
def app(settings: Settings) -> Iterator[Litestar]:
    """The real app on the test database."""
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


@pytest.fixture
def client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    """An HTTP client speaking to the app in-process."""
    with TestClient(app=app) as c:
        yield c


@dataclass
class World:
    """Units and users made for a test, with their API keys as ready-made headers."""

    app: Litestar
    units: dict[str, uuid.UUID] = field(default_factory=dict)
    users: dict[str, uuid.UUID] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def session(self) -> Any:
        """A committed session scope on the app's database."""
        return session_scope(make_session_factory(self.app.state.engine))

    def unit(self, code: str) -> uuid.UUID:
        """Create (or return) a unit."""
        if code not in self.units:
            with self.session() as s:
                unit = Unit(name=f"Unit {code}", code=code, description="")
                s.add(unit)
                s.flush()
                self.units[code] = unit.id
        return self.units[code]

    def user(self, name: str, unit: str, *roles: Role) -> dict[str, str]:
        """Create a user with roles in a unit; returns its auth headers."""
        unit_id = self.unit(unit)
        with self.session() as s:
            user = auth.create_user(
                s,
                SYSTEM,
                UserCreate(
                    unit_id=unit_id,
                    name=name,
                    email=f"{name}@{unit}.example.org",
                    roles=list(roles),
                ),
            )
            _, token = auth.issue_key(s, SYSTEM, user.id)
            self.users[name] = user.id
            self.tokens[name] = token
        return self.headers(name)

    def headers(self, name: str) -> dict[str, str]:
        """Authorization header of a user."""
        return {"Authorization": f"Bearer {self.tokens[name]}"}


@pytest.fixture
def world(app: Litestar) -> World:
    """An empty world on the test app's database."""
    return World(app=app)


def session_of(app: Litestar) -> Session:
    """A plain session on the app's database (the caller closes it)."""
    return make_session_factory(app.state.engine)()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A migrated database of each engine shared by one test module (dropped afterwards).

    For modules that build one larger world and run many read-mostly requests against it;
    on PostgreSQL it is a database of its own, so function-scoped tests are not disturbed.
    """
    if request.param == "sqlite":
        template: Any = request.getfixturevalue("sqlite_template")
        path = tmp_path_factory.mktemp("module-db") / "copool.db"
        shutil.copyfile(template, path)
        yield f"sqlite:///{path}"
        return
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("COPOOL_TEST_REQUIRE_POSTGRES=1 but COPOOL_TEST_POSTGRES_URL is unset")
        pytest.skip("PostgreSQL not configured (set COPOOL_TEST_POSTGRES_URL or run `make test`)")
    name = f"copool_mod_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_url(PG_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        upgrade(url)
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="module")
def module_app(module_db_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Litestar]:
    """The real app on the module's database."""
    settings = Settings(
        database_url=module_db_url,
        demo_key_path=tmp_path_factory.mktemp("keys") / "demo.key",
        api_key_touch_seconds=0,
    )
    application = create_app(settings)
    yield application
    application.state.engine.dispose()


@pytest.fixture(scope="module")
def module_client(module_app: Litestar) -> Iterator[TestClient[Litestar]]:
    """An HTTP client for the module's app."""
    with TestClient(app=module_app) as c:
        yield c
