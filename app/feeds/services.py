"""Calendar feeds: issuing, rotating and revoking secret feed URLs, and answering a fetch.

A feed's token carries 256 random bits and is stored only as its SHA-256, like an API key;
it is shown when the feed is made or rotated and never again. An unknown, rotated-away or
revoked token, an inactive owner, or a target the owner may no longer see: all are 404.

Whoever may see a target may make a feed of it: an expert or device their unit owns or an
agreement shows it; their own unit (any unit, for admins and auditors); a project their unit
takes part in; and "mine", the bookings they made and, if they are an expert, theirs.
Each fetch is answered as the owner sees things at that moment (see :mod:`app.feeds.content`).

A fetch first reads one aggregate "change stamp" over the feed's rows. If it matches the
stamp of a version this process computed, the version is reused: a client with that ETag
gets 304, and one without validators gets the body rendered for that version if it is
still kept (:data:`RENDERED_BODIES`). Otherwise the rows are read and the feed rendered.
A client that sends back the ETag this process answered for its token less than
:data:`RECENT_ETAG_SECONDS` ago gets 304 at once, without a database read
(:data:`RECENT_ETAGS`): a change made since, or a revocation or rotation in another worker,
reaches it at most that long afterwards (in this worker, rotating or revoking forgets the
token at once).
A body never passes :data:`MAX_FEED_BYTES`: a busier feed leaves out the bookings that
start last and says so in its description.
"""

from __future__ import annotations

import secrets
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.agreements.services import visible_resources
from app.audit.services import record, snapshot
from app.auth.actor import Actor
from app.auth.models import Role, User
from app.auth.services import hash_token
from app.base import utcnow
from app.catalog.models import Resource
from app.errors import Conflict, NotFound
from app.feeds.content import FeedScope, change_stamp, load_records, next_change
from app.feeds.models import FeedKind, FeedSubscription
from app.feeds.schemas import FeedCreate
from app.projects.services import get_project
from app.units.models import Unit
from calendars import FeedSpec, FeedVersion, feed_version, render_feed

TOKEN_PREFIX = "cpf_"
WINDOW_BACK = timedelta(days=90)
"""How far back a feed reaches."""
WINDOW_AHEAD = timedelta(days=548)
"""How far ahead a feed reaches (about 18 months)."""
REFRESH_INTERVAL = timedelta(hours=1)
"""How often clients are asked to poll (a 304 is cheap)."""
CANCELLED_GRACE = timedelta(days=7)
"""How long a cancelled booking stays in a feed as STATUS:CANCELLED before it leaves."""
MAX_FEED_BYTES = 800_000
"""Largest feed body: Google drops subscriptions over about 1 MB. A busier feed leaves out
the bookings that start last and says so in its description (see :mod:`calendars.feed`)."""


# --- issuing and managing feeds -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FeedLinks:
    """The addresses of a feed: as given by the service, for calendar apps, for Google."""

    url: str
    webcal_url: str
    google_url: str


def links(public_base_url: str, token: str) -> FeedLinks:
    """The URLs under which a token's feed is fetched."""
    url = f"{public_base_url.rstrip('/')}/feeds/{token}.ics"
    webcal = "webcal://" + url.split("://", 1)[-1]
    google = "https://calendar.google.com/calendar/render?cid=" + quote(webcal, safe="")
    return FeedLinks(url=url, webcal_url=webcal, google_url=google)


def _target(
    session: Session,
    owner: Actor,
    kind: FeedKind,
    target_id: uuid.UUID | None,
    *,
    names: bool = True,
) -> tuple[str, str]:
    """Check that ``owner`` may see the feed's target: its default name and display zone
    (empty where a check needs no query and ``names`` is False)."""
    if kind in (FeedKind.EXPERT, FeedKind.DEVICE):
        row = session.execute(
            select(Resource.name, Resource.time_zone).where(
                Resource.id == target_id, Resource.kind == kind.value, visible_resources(owner)
            )
        ).first()
        if row is None:
            raise NotFound(f"no such {kind.value}")
        return row.name, row.time_zone
    if kind is FeedKind.UNIT:
        if not names and target_id == owner.unit_id:
            return "", ""  # one's own unit is always there and always visible
        unit = session.get(Unit, target_id)
        if unit is None or not (owner.sees_everything or unit.id == owner.unit_id):
            raise NotFound("no such unit")
        return f"{unit.name}: bookings", "UTC"
    if kind is FeedKind.PROJECT:
        assert target_id is not None
        project = get_project(session, owner, target_id)
        return f"{project.code}: {project.name}", "UTC"
    return f"{owner.name}: my bookings", "UTC"


def create_feed(session: Session, actor: Actor, data: FeedCreate) -> tuple[FeedSubscription, str]:
    """A new feed of something the actor may see; the token is returned this once."""
    default_name, default_zone = _target(session, actor, data.kind, data.target_id)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    feed = FeedSubscription(
        user_id=actor.user_id,
        kind=data.kind.value,
        target_id=data.target_id,
        name=data.name or f"copool: {default_name}",
        time_zone=data.time_zone or default_zone,
        prefix=token[:12],
        token_sha256=hash_token(token),
    )
    session.add(feed)
    session.flush()
    record(session, actor, "feed.create", feed, unit_id=actor.unit_id, after=snapshot(feed))
    return feed, token


def _own_feed(session: Session, actor: Actor, feed_id: uuid.UUID) -> FeedSubscription:
    feed = session.get(FeedSubscription, feed_id)
    if feed is None or not (feed.user_id == actor.user_id or actor.is_admin):
        raise NotFound("no such feed")
    return feed


def get_feed(session: Session, actor: Actor, feed_id: uuid.UUID) -> FeedSubscription:
    """One of the actor's feeds (any feed, for admins)."""
    return _own_feed(session, actor, feed_id)


def list_feeds(session: Session, actor: Actor, *, include_revoked: bool) -> list[FeedSubscription]:
    """The actor's own feeds, newest first."""
    query = select(FeedSubscription).where(FeedSubscription.user_id == actor.user_id)
    if not include_revoked:
        query = query.where(FeedSubscription.revoked_at.is_(None))
    return list(
        session.scalars(query.order_by(FeedSubscription.created_at.desc(), FeedSubscription.id))
    )


def rotate_feed(session: Session, actor: Actor, feed_id: uuid.UUID) -> tuple[FeedSubscription, str]:
    """Give a feed a new token: the old URL stops working at once (its subscribers get 404)."""
    feed = _own_feed(session, actor, feed_id)
    if feed.revoked_at is not None:
        raise Conflict("the feed is revoked; make a new one", code="revoked")
    before = snapshot(feed)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    RECENT_ETAGS.forget(feed.token_sha256)
    feed.token_sha256 = hash_token(token)
    feed.prefix = token[:12]
    feed.rotated_at = utcnow()
    session.flush()
    record(
        session,
        actor,
        "feed.rotate",
        feed,
        unit_id=actor.unit_id,
        before=before,
        after=snapshot(feed),
    )
    return feed, token


def revoke_feed(
    session: Session, actor: Actor, feed_id: uuid.UUID, reason: str = ""
) -> FeedSubscription:
    """Revoke a feed for good; revoking twice is harmless."""
    feed = _own_feed(session, actor, feed_id)
    RECENT_ETAGS.forget(feed.token_sha256)
    if feed.revoked_at is None:
        before = snapshot(feed)
        feed.revoked_at = utcnow()
        session.flush()
        record(
            session,
            actor,
            "feed.revoke",
            feed,
            unit_id=actor.unit_id,
            before=before,
            after=snapshot(feed),
            reason=reason,
        )
    return feed


# --- answering a fetch ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Preconditions:
    """The validators a client sent: ``If-None-Match`` tags, ``If-Modified-Since``."""

    if_none_match: tuple[str, ...] = ()
    """Entity tags as sent (quotes kept, ``W/`` allowed), or ``("*",)``."""
    if_modified_since: datetime | None = None


@dataclass(frozen=True, slots=True)
class FeedAnswer:
    """A feed's validators, and its body unless the client's copy is current (304)."""

    etag: str
    last_modified: datetime
    body: bytes | None


@dataclass(frozen=True, slots=True)
class _OpenFeed:
    subscription: FeedSubscription
    scope: FeedScope
    spec: FeedSpec


def _open(session: Session, token: str) -> _OpenFeed:
    """The live feed behind a token, with its owner as they are now; 404 otherwise."""
    if not token.startswith(TOKEN_PREFIX):
        raise NotFound("no such feed")
    row = session.execute(
        select(FeedSubscription, User)
        .join(User, User.id == FeedSubscription.user_id)
        .where(FeedSubscription.token_sha256 == hash_token(token))
    ).first()
    if row is None:
        raise NotFound("no such feed")
    feed, user = row
    if feed.revoked_at is not None or not user.active:
        raise NotFound("no such feed")
    owner = Actor(
        user_id=user.id,
        unit_id=user.unit_id,
        roles=frozenset(Role(r) for r in user.roles),
        name=user.name,
    )
    kind = FeedKind(feed.kind)
    _target(session, owner, kind, feed.target_id, names=False)
    spec = FeedSpec(
        name=feed.name,
        display_tz=feed.time_zone,
        window_back=WINDOW_BACK,
        window_ahead=WINDOW_AHEAD,
        refresh_interval=REFRESH_INTERVAL,
        cancelled_grace=CANCELLED_GRACE,
        max_bytes=MAX_FEED_BYTES,
    )
    return _OpenFeed(feed, FeedScope(kind, feed.target_id, owner, user.email), spec)


def _last_modified(feed: _OpenFeed, version: FeedVersion) -> datetime:
    # Renaming the feed changes its content too; and an empty feed still needs a date.
    changed = feed.subscription.updated_at
    return changed if version.last_modified is None else max(changed, version.last_modified)


def _is_current(version: FeedVersion, last_modified: datetime, pre: Preconditions) -> bool:
    """RFC 9110 §13.2.2: If-None-Match (weak comparison) decides; else If-Modified-Since."""
    if pre.if_none_match:
        return any(
            tag == "*" or tag.removeprefix("W/") == version.etag for tag in pre.if_none_match
        )
    if pre.if_modified_since is not None:
        return last_modified.replace(microsecond=0) <= pre.if_modified_since
    return False


@dataclass(frozen=True, slots=True)
class _Known:
    """A feed version computed at ``since``, good while the stamp holds and before ``until``."""

    stamp: tuple[Any, ...]
    since: datetime
    until: datetime
    version: FeedVersion


class _KnownVersions:
    """Feed versions this process computed, so that a 304 costs one aggregate query.

    Keyed by everything else the content depends on: the feed's settings (its
    ``updated_at``), and its owner's unit and roles (privacy). Each worker process keeps its
    own; the stamp check makes a stale entry harmless.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[tuple[Any, ...], _Known] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...], stamp: tuple[Any, ...], now: datetime) -> _Known | None:
        with self._lock:
            known = self._entries.get(key)
            if known is None or known.stamp != stamp or not known.since <= now < known.until:
                return None
            self._entries.move_to_end(key)
            return known

    def put(self, key: tuple[Any, ...], known: _Known) -> None:
        with self._lock:
            self._entries[key] = known
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget every version (benchmarks time cold fetches with it)."""
        with self._lock:
            self._entries.clear()


KNOWN_VERSIONS = _KnownVersions(size=10_000)


class _RenderedBodies:
    """Feed bodies this process rendered, by feed and strong version (ETag fingerprint).

    The version covers everything the body shows (that is what makes it a strong ETag), so
    a body found under the current version is the body a render would give: a fetch without
    validators (Google never sends any) then costs what a 304 costs. Bounded in entries and
    bytes, least recently used first out; per worker process.
    """

    def __init__(self, size: int, max_bytes: int) -> None:
        self._size = size
        self._max_bytes = max_bytes
        self._bytes = 0
        self._entries: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> bytes | None:
        with self._lock:
            body = self._entries.get(key)
            if body is not None:
                self._entries.move_to_end(key)
            return body

    def put(self, key: tuple[Any, ...], body: bytes) -> None:
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= len(old)
            self._entries[key] = body
            self._bytes += len(body)
            while len(self._entries) > self._size or self._bytes > self._max_bytes:
                _, dropped = self._entries.popitem(last=False)
                self._bytes -= len(dropped)

    def clear(self) -> None:
        """Forget every body (benchmarks time cold renders with it)."""
        with self._lock:
            self._entries.clear()
            self._bytes = 0


RENDERED_BODIES = _RenderedBodies(size=48, max_bytes=48 * MAX_FEED_BYTES)


RECENT_ETAG_SECONDS = 5
"""How long a 304 may be answered from this process's memory of a token's last ETag."""


@dataclass(frozen=True, slots=True)
class _Recent:
    version: FeedVersion
    last_modified: datetime
    until: datetime


class _RecentETags:
    """The version each token was last answered with, by the token's SHA-256, kept for
    :data:`RECENT_ETAG_SECONDS` (and never past the instant time alone changes the feed),
    so that a client polling with its ETag gets its 304 without a database read."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._entries: OrderedDict[str, _Recent] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token_sha256: str, now: datetime) -> _Recent | None:
        with self._lock:
            recent = self._entries.get(token_sha256)
            if recent is None or not now < recent.until:
                return None
            return recent

    def put(self, token_sha256: str, recent: _Recent) -> None:
        with self._lock:
            self._entries[token_sha256] = recent
            self._entries.move_to_end(token_sha256)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)

    def forget(self, token_sha256: str) -> None:
        """Drop a token (rotated or revoked)."""
        with self._lock:
            self._entries.pop(token_sha256, None)

    def clear(self) -> None:
        """Forget every token (benchmarks time cold fetches with it)."""
        with self._lock:
            self._entries.clear()


RECENT_ETAGS = _RecentETags(size=10_000)


def _remember(
    token_sha256: str, version: FeedVersion, last_modified: datetime, now: datetime, until: datetime
) -> None:
    lifetime = now + timedelta(seconds=RECENT_ETAG_SECONDS)
    RECENT_ETAGS.put(token_sha256, _Recent(version, last_modified, min(lifetime, until)))


def _key(feed: _OpenFeed) -> tuple[Any, ...]:
    owner = feed.scope.owner
    roles = tuple(sorted(owner.roles))
    return (feed.subscription.id, feed.subscription.updated_at, owner.unit_id, roles)


def fetch_feed(session: Session, token: str, pre: Preconditions, *, now: datetime) -> FeedAnswer:
    """A feed as of ``now``; when the client's copy is current, its validators only.

    The 304 path never renders: it reuses the version this process knew if one aggregate
    query says nothing changed, and otherwise reads only what the ETag covers. A full answer
    reuses the body rendered for the same version, if this process still has it.
    """
    digest = hash_token(token)
    recent = RECENT_ETAGS.get(digest, now) if pre.if_none_match else None
    if recent is not None and _is_current(recent.version, recent.last_modified, pre):
        return FeedAnswer(recent.version.etag, recent.last_modified, None)
    feed = _open(session, token)
    key = _key(feed)
    # The stamp is read before the rows: a change in between makes the stored version newer
    # than its stamp, which only costs a recomputation next time, never a wrong 304.
    stamp = change_stamp(session, feed.scope, feed.spec, now)
    known = KNOWN_VERSIONS.get(key, stamp, now)
    version = None if known is None else known.version
    if version is None and (pre.if_none_match or pre.if_modified_since is not None):
        records = load_records(session, feed.scope, feed.spec, now, details=False)
        version = feed_version(feed.spec, records, now=now)
        known = _Known(stamp, now, next_change(feed.spec, records, now), version)
        KNOWN_VERSIONS.put(key, known)
    if version is not None and known is not None:
        last_modified = _last_modified(feed, version)
        _remember(digest, version, last_modified, now, known.until)
        if _is_current(version, last_modified, pre):
            return FeedAnswer(version.etag, last_modified, None)
        body = RENDERED_BODIES.get((*key, version.fingerprint))
        if body is not None:
            return FeedAnswer(version.etag, last_modified, body)
    records = load_records(session, feed.scope, feed.spec, now, details=True)
    version = feed_version(feed.spec, records, now=now)
    known = _Known(stamp, now, next_change(feed.spec, records, now), version)
    KNOWN_VERSIONS.put(key, known)
    body = render_feed(feed.spec, records, now=now)
    RENDERED_BODIES.put((*key, version.fingerprint), body)
    last_modified = _last_modified(feed, version)
    _remember(digest, version, last_modified, now, known.until)
    return FeedAnswer(version.etag, last_modified, body)
