"""Users and API keys: authentication, issuing and revoking keys, managing users."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.audit.services import record, snapshot
from app.auth.actor import Actor
from app.auth.models import ApiKey, Role, User
from app.auth.schemas import UserCreate, UserUpdate
from app.base import utcnow
from app.errors import Conflict, InvalidInput, NotAuthenticated, NotFound, PermissionDenied
from app.pagination import matches
from app.units.models import Unit

TOKEN_PREFIX = "cpl_"
_GRANTABLE_BY_MANAGER = {
    Role.UNIT_MANAGER,
    Role.RESOURCE_MANAGER,
    Role.REQUESTER,
    Role.PROJECT_LEAD,
}


def hash_token(token: str) -> str:
    """The stored form of a token. Tokens carry 256 random bits, so a fast hash is enough."""
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class KnownKey:
    """An authenticated key as the cache keeps it: who it acts for and when it was used."""

    actor: Actor
    id: uuid.UUID
    last_used_at: datetime | None
    seen: float
    """``time.monotonic()`` when it was read from the database."""
    expires_at: datetime | None = None
    """When the key stops authenticating (None: never); checked on every use, cached or not."""

    def expired(self) -> bool:
        """Whether the key's expiry has passed."""
        return self.expires_at is not None and self.expires_at <= utcnow()


class KeyCache:
    """Keys authenticated lately, per process, so that most requests skip the key lookup.

    An entry is trusted for ``seconds`` after it was read; revoking a key or changing its
    user (roles, deactivation) forgets it at once in the process that made the change, and
    every other process sees the change within ``seconds`` (``COPOOL_AUTH_CACHE_SECONDS``).
    Only keys that authenticated are kept, at most ``MAX_ENTRIES`` (oldest out first).
    """

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._entries: dict[str, KnownKey] = {}
        self._lock = threading.Lock()

    def get(self, digest: str, seconds: float) -> KnownKey | None:
        """The entry for ``digest`` if younger than ``seconds``."""
        known = self._entries.get(digest)
        if known is None or time.monotonic() - known.seen >= seconds:
            return None
        return known

    def put(self, digest: str, known: KnownKey) -> None:
        """Remember an authenticated key."""
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.pop(next(iter(self._entries)))
            self._entries[digest] = known

    def touched(self, digest: str, when: datetime) -> None:
        """Note a new ``last_used_at`` of a cached key."""
        with self._lock:
            known = self._entries.get(digest)
            if known is not None:
                self._entries[digest] = replace(known, last_used_at=when)

    def touched_key(self, key_id: uuid.UUID, when: datetime) -> None:
        """Note a new ``last_used_at`` of a cached key, found by its id."""
        with self._lock:
            for digest, known in list(self._entries.items()):
                if known.id == key_id:
                    self._entries[digest] = replace(known, last_used_at=when)

    def forget(self, *, key_id: uuid.UUID | None = None, user_id: uuid.UUID | None = None) -> None:
        """Drop the entries of a key or of every key of a user."""
        with self._lock:
            for digest, known in list(self._entries.items()):
                if known.id == key_id or known.actor.user_id == user_id:
                    del self._entries[digest]


KEYS = KeyCache()


def identify(session: Session, token: str, *, cache_seconds: float = 0) -> tuple[Actor, KnownKey]:
    """The actor behind a bearer token and its key, read only (from the cache when it is
    younger than ``cache_seconds``); ``NotAuthenticated`` when unknown, revoked or inactive."""
    if not token.startswith(TOKEN_PREFIX):
        raise NotAuthenticated("unknown API key")
    digest = hash_token(token)
    known = KEYS.get(digest, cache_seconds) if cache_seconds > 0 else None
    if known is not None:
        if known.expired():
            raise NotAuthenticated("this API key expired")
        return known.actor, known
    row = session.execute(
        select(ApiKey, User).join(User, User.id == ApiKey.user_id).where(ApiKey.token_sha256 == digest)
    ).first()
    if row is None:
        raise NotAuthenticated("unknown API key")
    key, user = row
    if key.revoked_at is not None:
        raise NotAuthenticated("this API key was revoked")
    if key.expires_at is not None and key.expires_at <= utcnow():
        raise NotAuthenticated("this API key expired")
    if not user.active:
        raise NotAuthenticated("this user is deactivated")
    actor = Actor(
        user_id=user.id,
        unit_id=user.unit_id,
        roles=frozenset(Role(r) for r in user.roles),
        name=user.name,
    )
    known = KnownKey(actor, key.id, key.last_used_at, time.monotonic(), key.expires_at)
    if cache_seconds > 0:
        KEYS.put(digest, known)
    return actor, known


def touch_due(key: KnownKey, touch_seconds: int) -> bool:
    """Whether the key's ``last_used_at`` is older than ``touch_seconds`` (or unset)."""
    return key.last_used_at is None or utcnow() - key.last_used_at >= timedelta(
        seconds=touch_seconds
    )


def touch_key(session: Session, key_id: uuid.UUID) -> None:
    """Stamp ``last_used_at``, skipping a key row another transaction holds locked (it is
    being stamped or revoked there); on SQLite the writer lock already orders this."""
    locked = select(ApiKey.id).where(ApiKey.id == key_id).with_for_update(skip_locked=True)
    now = utcnow()
    session.execute(
        update(ApiKey).where(ApiKey.id.in_(locked.scalar_subquery())).values(last_used_at=now)
    )
    _note_touch(key_id, now)


def _note_touch(key_id: uuid.UUID, when: datetime) -> None:
    KEYS.touched_key(key_id, when)


def authenticate(
    session: Session, token: str, *, touch_seconds: int = 60, cache_seconds: float = 0
) -> Actor:
    """The actor behind a bearer token, stamping ``last_used_at`` in ``session`` when due
    (a write: for a write transaction); ``NotAuthenticated`` when unknown, revoked or inactive."""
    actor, key = identify(session, token, cache_seconds=cache_seconds)
    if touch_due(key, touch_seconds):
        now = utcnow()
        session.execute(update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=now))
        KEYS.touched(hash_token(token), now)
    return actor


def _check_grant(actor: Actor, unit_id: uuid.UUID, roles: list[Role]) -> None:
    if actor.is_admin:
        return
    if not actor.manages_unit(unit_id, Role.UNIT_MANAGER):
        raise PermissionDenied("managing users needs the role unit_manager in that unit, or admin")
    forbidden = sorted(r.value for r in set(roles) - _GRANTABLE_BY_MANAGER)
    if forbidden:
        raise PermissionDenied(f"only an admin may grant {', '.join(forbidden)}")


def _visible_user(session: Session, actor: Actor, user_id: uuid.UUID) -> User:
    user = session.get(User, user_id)
    if user is None or not (
        actor.sees_everything
        or user.id == actor.user_id
        or actor.manages_unit(user.unit_id, Role.UNIT_MANAGER)
    ):
        raise NotFound("no such user")
    return user


def create_user(session: Session, actor: Actor, data: UserCreate) -> User:
    """Create a user in a unit (admins anywhere; unit managers in their own unit)."""
    _check_grant(actor, data.unit_id, data.roles)
    unit = session.get(Unit, data.unit_id)
    if unit is None or unit.retired_at is not None:
        raise InvalidInput("unit_id: no such active unit", field="unit_id")
    email = data.email.lower()
    if session.scalar(select(func.count()).where(User.email == email)):
        raise Conflict("email: a user with this email exists", field="email")
    user = User(
        unit_id=data.unit_id,
        name=data.name,
        email=email,
        roles=sorted({r.value for r in data.roles}),
        active=True,
    )
    session.add(user)
    session.flush()
    record(session, actor, "user.create", user, unit_id=user.unit_id, after=snapshot(user))
    return user


def get_user(session: Session, actor: Actor, user_id: uuid.UUID) -> User:
    """One user the actor may see (themselves, their unit's users if manager, or all if admin)."""
    return _visible_user(session, actor, user_id)


def list_users(
    session: Session,
    actor: Actor,
    *,
    limit: int,
    offset: int,
    unit_id: uuid.UUID | None = None,
    role: Role | None = None,
    active: bool | None = None,
    q: str | None = None,
) -> tuple[list[User], int]:
    """Users the actor may see, filtered (``q``: text in the name or e-mail)."""
    query = select(User).where(matches(q, User.name, User.email))
    if not actor.sees_everything:
        if Role.UNIT_MANAGER in actor.roles:
            query = query.where(User.unit_id == actor.unit_id)
        else:
            query = query.where(User.id == actor.user_id)
    if unit_id is not None:
        query = query.where(User.unit_id == unit_id)
    if active is not None:
        query = query.where(User.active == active)
    users = list(session.scalars(query.order_by(User.name, User.id)).all())
    if role is not None:
        # Roles live in a JSON list; filter here (user lists are small).
        users = [u for u in users if role.value in u.roles]
    return users[offset : offset + limit], len(users)


def update_user(session: Session, actor: Actor, user_id: uuid.UUID, data: UserUpdate) -> User:
    """Change a user's name, roles or active flag."""
    user = _visible_user(session, actor, user_id)
    new_roles = data.roles if data.roles is not None else [Role(r) for r in user.roles]
    _check_grant(actor, user.unit_id, new_roles if data.roles is not None else [])
    if user.id == actor.user_id and data.active is False:
        raise InvalidInput("active: you cannot deactivate yourself", field="active")
    before = snapshot(user)
    if data.name is not None:
        user.name = data.name
    if data.roles is not None:
        user.roles = sorted({r.value for r in data.roles})
    if data.active is not None:
        user.active = data.active
    session.flush()
    KEYS.forget(user_id=user.id)
    record(
        session,
        actor,
        "user.update",
        user,
        unit_id=user.unit_id,
        before=before,
        after=snapshot(user),
    )
    return user


def _may_manage_keys_of(actor: Actor, user: User) -> bool:
    return user.id == actor.user_id or actor.manages_unit(user.unit_id, Role.UNIT_MANAGER)


def check_expiry(expires_at: datetime | None, max_days: int) -> None:
    """Refuse (400, ``expires_at``) an expiry in the past, or beyond ``max_days`` from now
    when a maximum lifetime is set (then a key without expiry is refused too)."""
    now = utcnow()
    if expires_at is not None and expires_at <= now:
        raise InvalidInput("expires_at: must lie in the future", field="expires_at")
    if max_days and (expires_at is None or expires_at > now + timedelta(days=max_days)):
        raise InvalidInput(
            f"expires_at: keys live at most {max_days} days here (COPOOL_API_KEY_MAX_DAYS); "
            "give an expiry within that",
            field="expires_at",
        )


def issue_key(
    session: Session,
    actor: Actor,
    user_id: uuid.UUID,
    name: str = "",
    *,
    expires_at: datetime | None = None,
    max_days: int = 0,
) -> tuple[ApiKey, str]:
    """A new API key for a user, valid until ``expires_at`` (None: until revoked; refused
    beyond ``max_days`` when set); the token is returned once and only its hash is kept."""
    user = _visible_user(session, actor, user_id)
    if not _may_manage_keys_of(actor, user):
        raise PermissionDenied("issuing keys for another user needs unit_manager or admin")
    if not user.active:
        raise Conflict("user_id: the user is deactivated", field="user_id")
    check_expiry(expires_at, max_days)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    key = ApiKey(
        user_id=user.id,
        name=name,
        prefix=token[:12],
        token_sha256=hash_token(token),
        expires_at=expires_at,
    )
    session.add(key)
    session.flush()
    record(session, actor, "api_key.issue", key, unit_id=user.unit_id, after=snapshot(key))
    return key, token


def list_keys(session: Session, actor: Actor, user_id: uuid.UUID) -> list[ApiKey]:
    """A user's keys (without secrets)."""
    user = _visible_user(session, actor, user_id)
    if not (_may_manage_keys_of(actor, user) or actor.sees_everything):
        raise NotFound("no such user")
    return list(
        session.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.created_at))
    )


def revoke_key(session: Session, actor: Actor, key_id: uuid.UUID, reason: str = "") -> ApiKey:
    """Revoke a key at once; revoking twice is harmless."""
    key = session.get(ApiKey, key_id)
    user = session.get(User, key.user_id) if key else None
    if key is None or user is None:
        raise NotFound("no such API key")
    if not (actor.is_admin or _may_manage_keys_of(actor, user)):
        if actor.sees_everything:
            # auditors can list the key, so hiding it would be a lie: the role is what's missing
            raise PermissionDenied("revoking another user's key needs unit_manager or admin")
        raise NotFound("no such API key")
    if key.revoked_at is None:
        before = snapshot(key)
        key.revoked_at = utcnow()
        session.flush()
        KEYS.forget(key_id=key.id)
        record(
            session,
            actor,
            "api_key.revoke",
            key,
            unit_id=user.unit_id,
            before=before,
            after=snapshot(key),
            reason=reason,
        )
    return key
