"""Driving the dashboard in Debian's chromium: a live server per test, a seeded world, and a
visitor that checks every page it opens (status, axe-core, width at 360 px, own host only)
and keeps a screenshot of it under ``var/test-artifacts/ui/``."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.auth.models import Role
from app.db import make_engine
from tests.app import booking_world
from tests.app.booking_world import Lending
from tests.app.conftest import World
from tests.app.live_server import ROOT, live_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "var" / "test-artifacts" / "ui"
WIDE = {"width": 1440, "height": 900}
NARROW = {"width": 360, "height": 740}
SERIOUS = {"serious", "critical"}


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """Debian's chromium under Playwright (Playwright's own download is not used)."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium); browser tests skipped")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@dataclass
class Site:
    """A live copool on the test database, with the lending world seeded in it."""

    base: str
    world: World
    lending: Lending
    engine: str


def seed(db_url: str) -> tuple[World, Lending]:
    """The lending world (tests/app/booking_world) with approval required, written directly."""
    engine = make_engine(db_url)
    world = World(app=SimpleNamespace(state=SimpleNamespace(engine=engine)))  # type: ignore[arg-type]
    lending = booking_world.build(world, requires_approval=True)
    world.user("boss", "L", Role.UNIT_MANAGER, Role.RESOURCE_MANAGER)
    world.user("aud", "A", Role.AUDITOR)
    engine.dispose()
    return world, lending


@pytest.fixture
def site(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Site]:
    """A live server (uvicorn) over a seeded test database of each engine; it solves
    allocation runs itself (no separate worker on PostgreSQL)."""
    monkeypatch.setenv("COPOOL_JOBS_IN_PROCESS", "true")
    world, lending = seed(db_url)
    with live_server(db_url, 1, tmp_path / "uvicorn.log") as base:
        yield Site(base, world, lending, db_url.split(":", 1)[0].split("+")[0])


@dataclass
class Visitor:
    """A browser tab that checks each page it opens (see the module docstring)."""

    site: Site
    page: Any
    foreign: list[str] = field(default_factory=list)

    def go(self, path: str, name: str) -> Any:
        """Open ``path`` and check it as ``name``."""
        answer = self.page.goto(self.site.base + path)
        assert answer is not None and answer.status < 400, (path, answer and answer.status)
        self.check(name)
        return answer

    def check(self, name: str) -> None:
        """Check the page now shown: axe-core, 360 px width, screenshots at both widths."""
        from axe_playwright_python.sync_playwright import Axe

        page = self.page
        results = Axe().run(page)
        bad = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
               for v in results.response["violations"] if v["impact"] in SERIOUS]
        assert not bad, f"{name}: axe-core found {bad}"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{self.site.engine}-{name}-1440.png"), full_page=True)
        page.set_viewport_size(NARROW)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        page.screenshot(path=str(ARTIFACTS / f"{self.site.engine}-{name}-360.png"), full_page=True)
        page.set_viewport_size(WIDE)
        assert overflow <= 1, f"{name}: {overflow}px wider than a 360 px screen"
        assert not self.foreign, f"{name}: requests to other hosts {self.foreign}"

    def sign_in(self, who: str) -> None:
        """Sign in through the form with ``who``'s API key."""
        self.go("/ui/login", "login")
        self.page.get_by_label("API key").fill(self.site.world.tokens[who])
        self.page.get_by_role("button", name="Sign in").click()
        self.page.wait_for_url(re.compile(r".*/ui/$"))

    def sign_out(self) -> None:
        """Sign out with the header's button."""
        self.page.get_by_role("button", name="Sign out").click()
        self.page.wait_for_url(re.compile(r".*/ui/login$"))


@pytest.fixture
def visitor(chromium: Any, site: Site) -> Iterator[Visitor]:
    """A fresh browser context (no cookies) on the live site, watching every request."""
    context = chromium.new_context(viewport=WIDE, accept_downloads=True)
    page = context.new_page()
    seen = Visitor(site, page)
    own = re.compile(re.escape(site.base) + r"(/|$)")
    page.on("request", lambda r: None if own.match(r.url) else seen.foreign.append(r.url))
    yield seen
    context.close()
