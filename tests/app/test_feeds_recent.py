"""A client polling with its ETag gets 304 from the worker's memory, without a database
read, for at most ``RECENT_ETAG_SECONDS``; then a change shows; revoking forgets at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import event

from app.feeds.services import RECENT_ETAG_SECONDS
from tests.app.booking_world import build
from tests.app.test_feeds import book, make_feed, monday, path, uid


def test_a_polling_client_gets_304_without_a_read_until_the_lifetime_ends(
    app: Any, client: Any, world: Any
) -> None:
    w = build(world)
    feed = make_feed(client, w.requester, "expert", w.expert)
    url = path(feed)
    now = datetime.now(UTC)
    app.state.feeds_clock = lambda: now
    first = client.get(url)
    etag = first.headers["etag"]
    statements: list[str] = []

    def count(_c: Any, _cur: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(app.state.engine, "before_cursor_execute", count)
    try:
        again = client.get(url, headers={"If-None-Match": etag})
    finally:
        event.remove(app.state.engine, "before_cursor_execute", count)
    assert again.status_code == 304 and again.headers["etag"] == etag
    assert statements == []
    booking = book(client, w, monday(), 10, 12, "Survey")
    # within the lifetime the worker still answers from memory ...
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    # ... and once it is over, the change shows
    app.state.feeds_clock = lambda: now + timedelta(seconds=RECENT_ETAG_SECONDS)
    later = client.get(url, headers={"If-None-Match": etag})
    assert later.status_code == 200 and later.headers["etag"] != etag
    assert uid(booking) in later.text


def test_revoking_a_feed_forgets_its_etag_at_once(app: Any, client: Any, world: Any) -> None:
    w = build(world)
    feed = make_feed(client, w.requester, "expert", w.expert)
    url = path(feed)
    etag = client.get(url).headers["etag"]
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    revoked = client.post(
        f"/feed-subscriptions/{feed['id']}/revoke", json={"reason": "lost"}, headers=w.requester
    )
    assert revoked.status_code in (200, 201), revoked.text
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 404
