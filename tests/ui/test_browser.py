"""The dashboard in a real browser (chromium) against a live server, on both databases."""

from __future__ import annotations

import re

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
    ]:
        visitor.go(path, name)
    missing = visitor.page.request.get(visitor.site.base + "/ui/resources/00000000-0000-0000-0000-000000000000")
    assert missing.status == 404
