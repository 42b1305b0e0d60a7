"""Schemathesis against a running copool on SQLite and PostgreSQL (issue 12, input hygiene).

The pinned ``st`` command runs every check but one against a live server on the seeded
demo, as its admin, with a fixed seed and a bounded number of examples per operation, in
the examples, coverage (boundary and negative values of every parameter) and fuzzing
phases: positive and negative data. The run must find nothing: no 5xx, no response that
breaks its documented schema or status codes, no schema-violating request accepted, no
405 without ``Allow``.

Left out: ``positive_data_acceptance``. It expects every schema-valid request to succeed,
but the API refuses, with 400 naming the field, input that breaks rules an OpenAPI schema
cannot state (``end`` after ``start``, shares summing to 10,000, a slot in the past, …).
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.agreements.models import SharingAgreement
from app.auth.models import ApiKey, User
from app.catalog.models import DeviceType, Resource, Skill, Unavailability
from app.db import make_engine, make_session_factory, session_scope
from app.projects.models import Project
from app.seed import seed_demo
from app.units.models import Unit
from tests.app.live_server import live_server

SCHEMATHESIS = "4.32.5"
"""The pinned version (``pyproject.toml``'s test extras): other versions generate other cases."""
SEED = 4242
MAX_EXAMPLES = 15
"""Examples per operation and phase: about a minute and a half per engine on 2 cores."""
EXCLUDED_CHECKS = "positive_data_acceptance"


def _existing_ids(session: Session, admin_email: str) -> dict[str, list[str]]:
    """Ids of the seeded demo by path parameter name (never the admin's own user or keys:
    a generated PATCH or revoke would take the run's own access away)."""
    admin = session.scalar(select(User.id).where(User.email == admin_email))
    resources = session.execute(select(Resource.id, Resource.kind)).all()
    ids = {
        "unit_id": session.scalars(select(Unit.id)),
        "user_id": session.scalars(select(User.id).where(User.id != admin)),
        "key_id": session.scalars(select(ApiKey.id).where(ApiKey.user_id != admin)),
        "skill_id": session.scalars(select(Skill.id)),
        "type_id": session.scalars(select(DeviceType.id)),
        "expert_id": [r for r, kind in resources if kind == "expert"],
        "device_id": [r for r, kind in resources if kind == "device"],
        "resource_id": [r for r, _ in resources],
        "period_id": session.scalars(select(Unavailability.id)),
        "agreement_id": session.scalars(select(SharingAgreement.id)),
        "project_id": session.scalars(select(Project.id)),
    }
    found = {name: [str(i) for i in values] for name, values in ids.items()}
    return {name: values for name, values in found.items() if values}


def _config(ids: dict[str, list[str]]) -> str:
    """A ``schemathesis.toml``: half of the generated path ids are ids that exist, so that
    requests reach the services and not only the 404 of an unknown id."""
    lines = []
    for name, values in ids.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(values)}", ""]
    lines.append("[parameters]")
    for name in ids:
        lines.append(f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}')
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def served(
    module_db_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str, Path]]:
    """The demo seeded into the module's database, served live: base URL, the admin's key,
    and the run's config file."""
    engine = make_engine(module_db_url)
    try:
        with session_scope(make_session_factory(engine)) as session:
            token = seed_demo(session).admin_token
            ids = _existing_ids(session, "admin@copool.example")
    finally:
        engine.dispose()
    where = tmp_path_factory.mktemp("schemathesis")
    config = where / "schemathesis.toml"
    config.write_text(_config(ids))
    with pytest.MonkeyPatch.context() as patch:
        # the throttle is not under test here: negative auth cases would trip it (429)
        patch.setenv("COPOOL_AUTH_FAILURE_LIMIT", "0")
        patch.setenv("COPOOL_WRITE_LIMIT_PER_KEY", "0")
        with live_server(module_db_url, workers=1, log=where / "server.log") as base:
            yield base, token, config


def test_schemathesis_is_the_pinned_version() -> None:
    assert importlib.metadata.version("schemathesis") == SCHEMATHESIS


def test_schemathesis_finds_nothing(served: tuple[str, str, Path], tmp_path: Path) -> None:
    base, token, config = served
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(config),
        "run",
        f"{base}/schema/openapi.json",
        "--header",
        f"Authorization: Bearer {token}",
        "--checks",
        "all",
        "--exclude-checks",
        EXCLUDED_CHECKS,
        # 503 is its right answer on PostgreSQL without a copool worker (tests/app/test_ops.py)
        "--exclude-path",
        "/health/ready",
        "--phases",
        "examples,coverage,fuzzing",
        "--mode",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--no-color",
    ]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"}
    done = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    output = done.stdout + done.stderr
    tested = re.search(r"Tested: (\d+)", output)
    assert tested is not None and int(tested.group(1)) > 80, output[-3000:]  # every route
    assert done.returncode == 0, output[-20_000:]
    print(re.findall(r"\d+ generated, .*|=+ .* in [\d.]+s =+", output))  # shown with -s
