"""The ``copool`` command, run through click's CliRunner against each test database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from litestar.testing import TestClient
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from app.agreements.models import SharingAgreement
from app.catalog.models import Device, Expert, Unavailability
from app.cli import main
from app.main import create_app
from app.projects.models import Project, ProjectShare
from app.settings import Settings, get_settings
from app.units.models import Unit

Invoke = Callable[..., Result]


@pytest.fixture
def cli(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Invoke]:
    """Run ``copool …`` with ``COPOOL_DATABASE_URL`` set to the test database."""
    monkeypatch.setenv("COPOOL_DATABASE_URL", db_url)
    monkeypatch.setenv("COPOOL_DEMO_KEY_PATH", str(tmp_path / "var" / "demo-admin.key"))
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True) -> Result:
        result = runner.invoke(main, list(args))
        if ok:
            assert result.exit_code == 0, (result.output, result.exception)
        return result

    yield invoke
    get_settings.cache_clear()


@pytest.fixture
def api(db_url: str, tmp_path: Path) -> Iterator[TestClient[Any]]:
    """A client of the app on the same database."""
    app = create_app(Settings(database_url=db_url, api_key_touch_seconds=0))
    with TestClient(app=app) as client:
        yield client
    app.state.engine.dispose()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token.strip()}"}


def test_db_upgrade_creates_a_fresh_sqlite_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "new" / "dir" / "copool.db"
    monkeypatch.setenv("COPOOL_DATABASE_URL", f"sqlite:///{path}")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(main, ["db", "upgrade"])
        assert result.exit_code == 0, result.output
        assert path.exists()
        engine = create_engine(f"sqlite:///{path}")
        with Session(engine) as s:
            assert s.scalar(select(func.count()).select_from(Unit)) == 0
        engine.dispose()
    finally:
        get_settings.cache_clear()


def test_db_upgrade_is_idempotent(cli: Invoke) -> None:
    cli("db", "upgrade")
    cli("db", "upgrade")


def test_seed_demo(cli: Invoke, db_url: str, tmp_path: Path, api: TestClient[Any]) -> None:
    result = cli("seed-demo", "--if-empty")
    key_file = tmp_path / "var" / "demo-admin.key"
    token = key_file.read_text().strip()
    assert token.startswith("cpl_") and token in result.output
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"
    engine = create_engine(db_url)
    with Session(engine) as s:
        units = s.scalar(select(func.count()).select_from(Unit)) or 0
        assert units >= 4
        pairs = set(
            s.execute(
                select(SharingAgreement.lender_unit_id, SharingAgreement.borrower_unit_id)
            ).all()
        )
        assert 0 < len(pairs) < units * (units - 1)  # agreements between some units, not all
        experts = s.scalars(select(Expert)).all()
        assert 25 <= len(experts) <= 40
        assert len({e.time_zone for e in experts}) >= 2
        assert all(e.working_hours for e in experts)
        devices = s.scalars(select(Device)).all()
        assert 12 <= len(devices) <= 20
        assert len({d.device_type_id for d in devices}) >= 3
        kinds = dict(
            s.execute(select(Unavailability.kind, func.count()).group_by(Unavailability.kind)).all()
        )
        assert kinds.get("leave", 0) > 0 and kinds.get("maintenance", 0) > 0
        projects = s.scalars(select(Project.id)).all()
        assert len(projects) >= 3
        for project_id in projects:
            shares = s.scalars(
                select(ProjectShare.share_bp).where(ProjectShare.project_id == project_id)
            ).all()
            assert sum(shares) == 10_000 and len(shares) >= 2
        counts = (units, len(experts), len(devices), len(projects))
    # the demo key works at once: an authenticated catalog query
    r = api.get("/experts", params={"limit": 5}, headers=_bearer(token))
    assert r.status_code == 200 and r.json()["total"] == counts[1]
    # a second run leaves everything as it is
    again = cli("seed-demo", "--if-empty")
    assert "not seeded" in again.output
    assert key_file.read_text().strip() == token
    with Session(engine) as s:
        assert s.scalar(select(func.count()).select_from(Unit)) == counts[0]
        assert s.scalar(select(func.count()).select_from(Project)) == counts[3]
    engine.dispose()
    refused = cli("seed-demo", ok=False)
    assert refused.exit_code == 1 and "not empty" in refused.output


def test_users_and_keys(cli: Invoke, api: TestClient[Any]) -> None:
    cli("units", "create", "--name", "Water Board", "--code", "WB")
    result = cli(
        "users",
        "create",
        "--unit",
        "WB",
        "--name",
        "Ada",
        "--email",
        "Ada@WB.org",
        "--role",
        "requester",
        "--role",
        "project_lead",
    )
    user_id = result.output.strip()
    issued = cli("keys", "issue", "--email", "ada@wb.org", "--name", "laptop")
    token = issued.stdout.strip()
    assert token.startswith("cpl_") and "key id:" in issued.stderr
    key_id = issued.stderr.split("key id:")[1].strip()
    me = api.get("/users/me", headers=_bearer(token))
    assert me.status_code == 200
    assert me.json()["id"] == user_id
    assert me.json()["roles"] == ["project_lead", "requester"]
    revoked = cli("keys", "revoke", key_id, "--reason", "lost")
    assert key_id in revoked.output
    assert api.get("/users/me", headers=_bearer(token)).status_code == 401
    # revoking by the printed prefix works too
    second = cli("keys", "issue", "--email", "ada@wb.org").stdout.strip()
    assert api.get("/users/me", headers=_bearer(second)).status_code == 200
    cli("keys", "revoke", second[:12])
    assert api.get("/users/me", headers=_bearer(second)).status_code == 401


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            (
                "users",
                "create",
                "--unit",
                "NOPE",
                "--name",
                "A",
                "--email",
                "a@b.org",
                "--role",
                "requester",
            ),
            "no unit",
        ),
        (
            (
                "users",
                "create",
                "--unit",
                "WB",
                "--name",
                "A",
                "--email",
                "taken@wb.org",
                "--role",
                "requester",
            ),
            "exists",
        ),
        (
            (
                "users",
                "create",
                "--unit",
                "WB",
                "--name",
                "A",
                "--email",
                "not-an-email",
                "--role",
                "requester",
            ),
            "email",
        ),
        (
            (
                "users",
                "create",
                "--unit",
                "WB",
                "--name",
                "A",
                "--email",
                "a@b.org",
                "--role",
                "king",
            ),
            "king",
        ),
        (("keys", "issue", "--email", "nobody@wb.org"), "no user"),
        (("keys", "revoke", "cpl_missing"), "no key"),
        (("keys", "revoke", "00000000-0000-0000-0000-000000000000"), "no such"),
        (("units", "create", "--name", "Water Board", "--code", "WB2"), "exists"),
    ],
)
def test_cli_errors_are_one_line_messages(cli: Invoke, args: tuple[str, ...], message: str) -> None:
    cli("units", "create", "--name", "Water Board", "--code", "WB")
    cli(
        "users",
        "create",
        "--unit",
        "WB",
        "--name",
        "T",
        "--email",
        "taken@wb.org",
        "--role",
        "requester",
    )
    result = cli(*args, ok=False)
    assert result.exit_code in (1, 2), result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
