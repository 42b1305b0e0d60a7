"""The dashboard in a real browser (chromium) against a live server, on both databases."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import expect

from tests.ui.browser import Visitor


def test_book_a_free_slot_approve_it_as_the_lender_and_see_it_confirmed(visitor: Visitor) -> None:
    lending, page = visitor.site.lending, visitor.page
    visitor.sign_in("req")
    visitor.check("home")
    page.get_by_role("link", name="Resources").click()
    visitor.check("resources")
    page.get_by_role("link", name="Eva Expert").first.click()
    if page.get_by_role("button", name="Book this slot").count() == 0:
        page.get_by_role("link", name="Try the next week").click()
    visitor.check("resource")
    page.get_by_label("Title").first.fill("Flood survey")
    page.get_by_role("button", name="Book this slot").first.click()
    page.wait_for_url(re.compile(r".*done=pending_approval"))
    at = re.search(r"at=([\d-]+)", page.url)
    assert at, page.url
    assert page.get_by_role("status").inner_text().startswith("Booked")
    visitor.sign_out()

    visitor.sign_in("rm")
    page.get_by_role("link", name="Approvals").click()
    visitor.check("approvals")
    page.get_by_role("button", name="Approve Flood survey on Eva Expert").click()
    page.wait_for_url(re.compile(r".*done=approved"))
    assert page.get_by_role("button", name=re.compile("Approve")).count() == 0
    visitor.sign_out()

    visitor.sign_in("req")
    visitor.go(f"/ui/?at={at.group(1)}", "home-week")
    mine = page.locator("table", has_text="Bookings I made")
    row = mine.locator("tr", has_text="Flood survey")
    assert "confirmed" in row.inner_text()
    assert str(lending.expert) in (row.get_by_role("link").get_attribute("href") or "")


def test_a_staff_member_subscribes_to_their_feed(visitor: Visitor) -> None:
    live, page = visitor.site, visitor.page
    visitor.sign_in("req")
    page.get_by_role("link", name="Subscribe in your calendar").click()
    visitor.check("feeds")
    page.get_by_role("button", name="Subscribe to My bookings").click()
    visitor.check("feed-issued")
    webcal = page.locator("#webcal").get_attribute("href") or ""
    assert re.fullmatch(r"webcal://[^/]+/feeds/[\w-]+\.ics", webcal), webcal
    assert "cid=webcal" in (page.locator("#google").get_attribute("href") or "")
    assert page.locator("svg.qr").count() == 1
    feed = page.get_by_label("Address (https)").input_value()
    answer = page.request.get(feed.replace(feed.split("/feeds/")[0], live.base))
    assert answer.status == 200 and "BEGIN:VCALENDAR" in answer.text()


def test_every_page_loads_only_from_copool(visitor: Visitor) -> None:
    visitor.sign_in("boss")
    lending = visitor.site.lending
    for path, name in [
        ("/ui/", "home"),
        ("/ui/?view=month", "home-month"),
        ("/ui/feeds", "feeds"),
        ("/ui/resources", "resources"),
        (f"/ui/resources/{lending.device}", "resource-device"),
        ("/ui/approvals", "approvals"),
        ("/ui/projects", "projects"),
        (f"/ui/projects/{lending.project}/funds", "funds"),
        ("/ui/reports?name=utilisation", "report-utilisation"),
        ("/ui/reports?name=fulfilment", "report-fulfilment"),
        ("/ui/reports?name=reciprocity", "report-reciprocity"),
        ("/ui/reports?name=caps", "report-caps"),
        ("/ui/reports?name=money", "report-money"),
        ("/ui/reports?name=no-shows", "report-no-shows"),
        ("/ui/runs", "runs"),
        ("/ui/notifications", "inbox"),
    ]:
        visitor.go(path, name)
    missing = visitor.page.request.get(visitor.site.base + "/ui/resources/00000000-0000-0000-0000-000000000000")
    assert missing.status == 404
    visitor.sign_out()
    visitor.sign_in("aud")
    visitor.go("/ui/audit", "audit")
    visitor.go("/ui/audit?object_type=projects", "audit-filtered")
    assert "project.create" in visitor.page.locator("table").inner_text()


def test_a_project_lead_reaches_the_fund_statement_and_downloads_a_report(visitor: Visitor) -> None:
    page = visitor.page
    visitor.sign_in("lead")  # clicks 1-2: paste the key, sign in
    page.get_by_role("link", name="Funds").click()  # 3
    page.get_by_role("link", name="Fund statement of J1").click()  # 4
    visitor.check("funds-statement")
    assert page.locator("#available").inner_text() == "1000000.00 EUR"
    statement = page.locator("table", has_text="running cash balance")
    assert "1000000.00" in statement.locator("tbody tr").last.inner_text()
    assert page.get_by_role("img", name="Cash balance of J1 over time, in EUR").count() == 1
    page.get_by_role("link", name="Reports").click()
    page.get_by_role("link", name="Project money").click()
    visitor.check("report-money-lead")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    saved = download.value
    assert saved.suggested_filename == "money.csv"
    header, *rows = Path(saved.path()).read_text(encoding="utf-8").splitlines()
    assert header.startswith("project_id,project,currency,unit_id,unit,pledged,received")
    assert any(",J1," in row or "Joint" in row for row in rows), rows


def _ask(visitor: Visitor, title: str, level: int) -> None:
    """The requester asks for a Hydrology expert at ``level`` through the API."""
    site, start = visitor.site, datetime.now(UTC) + timedelta(days=1)
    answer = visitor.page.request.post(
        site.base + "/requests",
        headers={"Authorization": f"Bearer {site.world.tokens['req']}"},
        data={
            "project_id": str(site.lending.project), "title": title, "duration_minutes": 60,
            "requirements": [{"kind": "skill", "skill_id": str(site.lending.skill), "min_level": level}],
            "window_start": start.isoformat(), "window_end": (start + timedelta(days=14)).isoformat(),
        },
    )
    assert answer.status == 201, answer.text()


def test_start_a_run_watch_it_and_apply_its_plan(visitor: Visitor) -> None:
    page = visitor.page
    _ask(visitor, "Gauge check", 2)
    _ask(visitor, "Master hydrologist", 5)  # Eva is level 4: left out, with the reason
    visitor.sign_in("lead")
    page.get_by_role("link", name="Runs").click()
    visitor.check("runs")
    page.get_by_label("To (included)").fill((datetime.now(UTC) + timedelta(days=16)).date().isoformat())
    page.get_by_label("Time limit (s)").fill("3")
    page.get_by_role("button", name="Start run").click()
    page.wait_for_url(re.compile(r".*/ui/runs/[0-9a-f-]+$"))
    expect(page.locator("#run-status")).to_have_text("done", timeout=90_000)  # polled, reloaded
    visitor.check("run-plan")
    plan = page.locator("table", has_text="Proposed bookings")
    assert "Eva Expert" in plan.inner_text()
    left_out = page.locator("table", has_text="Reasons")
    assert "Master hydrologist" in left_out.inner_text()
    assert "Gauge check" not in left_out.inner_text()
    page.get_by_role("button", name="Apply this plan").click()
    expect(page.locator("#applied")).to_contain_text("1 applied")
