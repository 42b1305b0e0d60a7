"""From ``make run``'s demo: the five-click paths of issue 14, in the browser, both databases.

A project lead opens the one-time link ``copool seed-demo`` prints and reaches the
project's fund statement; a staff member subscribes to their own bookings. Clicks are
counted; each path must take fewer than five.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app.db import make_engine, make_session_factory, session_scope
from app.seed import seed_demo
from app.ui.sessions import issue_login_link
from tests.app.live_server import live_server
from tests.ui.browser import WIDE, Site, Visitor


@pytest.fixture
def demo(db_url: str, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    """A live server over the seeded demo, and fresh login links of two demo users."""
    engine = make_engine(db_url)
    with session_scope(make_session_factory(engine)) as s:
        seed_demo(s)
        links = {who: f"/ui/login/{issue_login_link(s, email)}" for who, email in (
            ("lead", "project_lead@fea.copool.example"), ("staff", "requester@fea.copool.example"))}
    engine.dispose()
    with live_server(db_url, 1, tmp_path / "uvicorn.log") as base:
        yield base, links


@pytest.fixture
def tab(chromium: Any, demo: tuple[str, dict[str, str]], db_url: str) -> Iterator[Visitor]:
    """A browser tab on the demo that checks every page it opens."""
    base, _ = demo
    context = chromium.new_context(viewport=WIDE)
    page = context.new_page()
    site = Site(base, None, None, "demo-" + db_url.split(":", 1)[0].split("+")[0])  # type: ignore[arg-type]
    seen = Visitor(site, page)
    page.on("request", lambda r: None if r.url.startswith(base) else seen.foreign.append(r.url))
    yield seen
    context.close()


def test_a_project_lead_reaches_the_fund_statement_in_three_clicks(
    tab: Visitor, demo: tuple[str, dict[str, str]]
) -> None:
    base, links = demo
    page, clicks = tab.page, 0
    page.goto(base + links["lead"])  # opened from the terminal or a mail: not a click here
    page.get_by_role("button", name="Continue to copool").click()
    clicks += 1
    page.get_by_role("link", name="Funds").click()
    clicks += 1
    page.get_by_role("link", name="Fund statement of RFR-2027").click()
    clicks += 1
    page.wait_for_url(re.compile(r".*/funds$"))
    assert page.get_by_role("heading", level=1).inner_text().startswith("Funds of RFR-2027")
    assert re.fullmatch(r"-?\d+\.\d\d EUR", page.locator("#available").inner_text())
    tab.check("funds")
    assert clicks < 5


def test_a_staff_member_subscribes_to_their_feed_in_four_clicks(
    tab: Visitor, demo: tuple[str, dict[str, str]]
) -> None:
    base, links = demo
    page, clicks = tab.page, 0
    page.goto(base + links["staff"])
    page.get_by_role("button", name="Continue to copool").click()
    clicks += 1
    tab.check("home")
    page.get_by_role("link", name="Subscribe in your calendar").click()
    clicks += 1
    page.get_by_role("button", name="Subscribe to My bookings").click()
    clicks += 1
    webcal = page.get_by_role("link", name="Open in my calendar app")
    assert (webcal.get_attribute("href") or "").startswith("webcal://")
    clicks += 1  # the calendar app takes it from here
    tab.check("feed-issued")
    assert clicks < 5
