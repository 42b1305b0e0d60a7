"""API papercuts a newcomer hits first (issue 15): each has its test here.

Action POSTs without a body, ``HEAD`` wherever ``GET``, the list headers, snake_case
problem codes, units' time zones, ``q`` search, feed URLs from the served host.
"""

from __future__ import annotations

import re
from typing import Any

from app.auth.models import Role
from tests.app.booking_world import build
from tests.app.conftest import World

MON = "2027-03-01"  # a Monday
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def _book(client: Any, w: Any, start: str, end: str, title: str = "") -> dict[str, Any]:
    body = {
        "resource_id": str(w.expert),
        "project_id": str(w.project),
        "start": f"{MON}T{start}:00+01:00",
        "end": f"{MON}T{end}:00+01:00",
        **({"title": title} if title else {}),
    }
    r = client.post("/bookings", json=body, headers=w.requester)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_action_posts_take_an_empty_body(client: Any, world: World) -> None:
    w = build(world, requires_approval=True)
    booking = _book(client, w, "10:00", "12:00")
    approved = client.post(f"/bookings/{booking['id']}/approve", headers=w.manager)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "confirmed"
    # an action whose reason is required names the field, not "no body"
    cancel = client.post(f"/bookings/{booking['id']}/cancel", headers=w.requester)
    assert cancel.status_code == 400, cancel.text
    assert cancel.json()["field"] == "reason" and cancel.json()["code"] == "invalid_input"
    assert client.get(f"/bookings/{booking['id']}", headers=w.requester).json()["status"] == (
        "confirmed"
    )


def test_revoke_a_key_with_an_empty_body(client: Any, world: World) -> None:
    admin = world.user("root", "HQ", Role.ADMIN)
    world.user("k", "HQ", Role.REQUESTER)
    key = client.post(f"/users/{world.users['k']}/api-keys", json={"name": "k"}, headers=admin)
    assert key.status_code == 201, key.text
    revoked = client.post(f"/api-keys/{key.json()['id']}/revoke", headers=admin)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None


def test_head_answers_wherever_get_does(client: Any, world: World) -> None:
    w = build(world)
    booking = _book(client, w, "10:00", "12:00")
    for path in ("/units", "/bookings", f"/bookings/{booking['id']}", "/projects", "/requests"):
        got = client.get(path, headers=w.requester)
        head = client.head(path, headers=w.requester)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b""
        assert head.headers["content-length"] == got.headers["content-length"], path
        assert head.headers.get("etag") == got.headers.get("etag")
    assert client.head("/bookings/00000000-0000-0000-0000-000000000000").status_code == 401
    # POST-only paths still refuse HEAD as they refuse GET
    assert client.head("/bookings/x/approve", headers=w.requester).status_code in (404, 405)


def test_lists_carry_total_and_link_headers(client: Any, world: World) -> None:
    w = build(world)
    for hour in range(9, 14):
        _book(client, w, f"{hour:02d}:00", f"{hour:02d}:30")
    r = client.get(
        "/bookings",
        params={"limit": 2, "offset": 2, "resource_id": str(w.expert)},
        headers=w.requester,
    )
    assert r.headers["x-total-count"] == "5" == str(r.json()["total"])
    links = dict(
        (rel, url) for url, rel in re.findall(r'<([^>]+)>; rel="(\w+)"', r.headers["link"])
    )
    assert set(links) == {"first", "prev", "next", "last"}
    assert links["next"].endswith("offset=4") and "limit=2" in links["next"]
    assert f"resource_id={w.expert}" in links["next"]  # the filters are kept
    assert links["last"].endswith("offset=4") and links["first"].endswith("offset=0")
    last = client.get(links["last"], headers=w.requester)
    assert len(last.json()["items"]) == 1
    assert "next" not in last.headers["link"] and 'rel="prev"' in last.headers["link"]
    # following next from the first page visits every booking once
    seen, url = [], "/bookings?limit=2"
    while url:
        page = client.get(url, headers=w.requester)
        seen += [b["id"] for b in page.json()["items"]]
        nxt = re.search(r'<([^>]+)>; rel="next"', page.headers["link"])
        url = nxt.group(1) if nxt else ""
    assert len(seen) == len(set(seen)) == 5


def test_every_problem_has_a_snake_case_code(client: Any, world: World) -> None:
    w = build(world)
    booking = _book(client, w, "10:00", "12:00")
    answers = [
        client.get("/bookings"),  # 401
        client.get("/bookings/00000000-0000-0000-0000-000000000000", headers=w.requester),
        client.get("/bookings", params={"limit": 0}, headers=w.requester),  # 400
        client.post("/units", json={"name": "X", "code": "X"}, headers=w.requester),  # 403
        client.put("/units", headers=w.requester),  # 405
        client.post(
            "/bookings",
            json={
                "resource_id": str(w.expert),
                "project_id": str(w.project),
                "start": booking["start"],
                "end": booking["end"],
            },
            headers=w.requester,
        ),  # 409 overlap
    ]
    statuses = [a.status_code for a in answers]
    assert statuses == [401, 404, 400, 403, 405, 409], statuses
    codes = [a.json()["code"] for a in answers]
    assert all(SNAKE.match(c or "") for c in codes), codes
    assert codes[1] == "not_found" and codes[-1] == "overlap"


def test_units_carry_their_time_zone(client: Any, world: World) -> None:
    admin = world.user("root", "HQ", Role.ADMIN)
    r = client.post(
        "/units",
        json={"name": "Lisbon Office", "code": "LIS", "time_zone": "Europe/Lisbon"},
        headers=admin,
    )
    assert r.status_code == 201 and r.json()["time_zone"] == "Europe/Lisbon"
    unit = r.json()["id"]
    bad = client.patch(f"/units/{unit}", json={"time_zone": "Mars/Olympus"}, headers=admin)
    assert bad.status_code == 400 and bad.json()["field"] == "time_zone"
    ok = client.patch(f"/units/{unit}", json={"time_zone": "Atlantic/Azores"}, headers=admin)
    assert ok.json()["time_zone"] == "Atlantic/Azores"
    default = client.post("/units", json={"name": "Plain", "code": "PL"}, headers=admin)
    assert default.json()["time_zone"] == "UTC"


def test_q_searches_projects_users_bookings_requests(client: Any, world: World) -> None:
    w = build(world)
    _book(client, w, "10:00", "11:00", title="River survey 100%")
    _book(client, w, "11:00", "12:00", title="Lab audit")
    titles = lambda r: [b["title"] for b in r.json()["items"]]  # noqa: E731
    r = client.get("/bookings", params={"q": "RIVER"}, headers=w.requester)
    assert titles(r) == ["River survey 100%"] and r.headers["x-total-count"] == "1"
    # % and _ are literal characters, not wildcards
    assert titles(client.get("/bookings", params={"q": "100%"}, headers=w.requester)) == [
        "River survey 100%"
    ]
    assert titles(client.get("/bookings", params={"q": "1_0"}, headers=w.requester)) == []
    project = client.get(f"/projects/{w.project}", headers=w.requester).json()
    found = client.get("/projects", params={"q": project["name"][2:6].upper()}, headers=w.requester)
    assert [p["id"] for p in found.json()["items"]] == [str(w.project)]
    assert (
        client.get("/projects", params={"q": "zzz-none"}, headers=w.requester).json()["total"] == 0
    )
    admin = world.user("AdaRoot", "HQ", Role.ADMIN)
    users = client.get("/users", params={"q": "adar"}, headers=admin).json()["items"]
    assert [u["name"] for u in users] == ["AdaRoot"]
    req = {
        "project_id": str(w.project),
        "title": "Need a hydrologist",
        "duration_minutes": 60,
        "window_start": f"{MON}T08:00:00+01:00",
        "window_end": f"{MON}T18:00:00+01:00",
        "requirements": [{"kind": "skill", "skill_id": str(w.skill), "min_level": 1}],
    }
    assert client.post("/requests", json=req, headers=w.requester).status_code == 201
    assert (
        client.post(
            "/requests", json={**req, "title": "Drone flight"}, headers=w.requester
        ).status_code
        == 201
    )
    r = client.get("/requests", params={"q": "hydro"}, headers=w.requester)
    assert [x["title"] for x in r.json()["items"]] == ["Need a hydrologist"]
    too_long = client.get("/requests", params={"q": "x" * 101}, headers=w.requester)
    assert too_long.status_code == 400 and too_long.json()["field"] == "q"


def test_feed_urls_use_the_served_host_unless_configured(client: Any, world: World) -> None:
    w = build(world)
    r = client.post("/feed-subscriptions", json={"kind": "mine"}, headers=w.requester)
    assert r.status_code == 201, r.text
    assert r.json()["url"].startswith("http://testserver.local/feeds/")
    assert r.json()["webcal_url"].startswith("webcal://testserver.local/feeds/")
    other = client.post(
        "/feed-subscriptions",
        json={"kind": "mine"},
        headers={**w.requester, "host": "copool.example.gov:8443"},
    )
    assert other.json()["url"].startswith("http://copool.example.gov:8443/feeds/")


def test_the_document_says_which_bodies_may_be_left_out(client: Any) -> None:
    paths = client.get("/schema/openapi.json").json()["paths"]
    assert paths["/bookings/{booking_id}/approve"]["post"]["requestBody"]["required"] is False
    assert paths["/bookings/{booking_id}/cancel"]["post"]["requestBody"]["required"] is True
    assert paths["/bookings"]["post"]["requestBody"]["required"] is True


def test_short_lists_answer_the_same_envelope(client: Any, world: World) -> None:
    w = build(world)
    me = client.get("/users/me", headers=w.manager).json()["id"]
    for path in (
        f"/users/{me}/api-keys",
        f"/experts/{w.expert}/leave",
        f"/devices/{w.device}/blackouts",
        "/feed-subscriptions",
    ):
        r = client.get(path, params={"limit": 1}, headers=w.manager)
        assert r.status_code == 200, (path, r.text)
        body = r.json()
        assert set(body) == {"items", "total", "limit", "offset"}, path
        assert r.headers["x-total-count"] == str(body["total"]) and len(body["items"]) <= 1


def test_slot_search_gives_several_slots_per_resource_and_pages(client: Any, world: World) -> None:
    w = build(world)
    _book(client, w, "10:00", "11:00")
    query = {
        "skill_id": str(w.skill),
        "duration_minutes": 60,
        "start": f"{MON}T09:00:00+01:00",
        "end": f"{MON}T13:00:00+01:00",
    }
    one = client.get("/availability/slots", params=query, headers=w.requester).json()
    assert [s["start"][11:16] for s in one] == ["08:00"]  # 09:00 Berlin, in UTC
    three = client.get(
        "/availability/slots", params={**query, "per_resource": 3}, headers=w.requester
    ).json()
    assert [s["start"][11:16] for s in three] == ["08:00", "10:00", "11:00"]  # 10–11 booked
    paged = client.get(
        "/availability/slots",
        params={**query, "per_resource": 3, "offset": 1, "limit": 1},
        headers=w.requester,
    ).json()
    assert paged == three[1:2]
    bad = client.get(
        "/availability/slots", params={**query, "per_resource": 0}, headers=w.requester
    )
    assert bad.status_code == 400 and bad.json()["field"] == "per_resource"
