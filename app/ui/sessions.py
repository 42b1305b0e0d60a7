"""Dashboard sign-in: an API key or a one-time link becomes a server-side session.

Decision: a **server-side session row** (``ui_sessions``), not a signed token. The cookie
carries 256 random bits; the database keeps their SHA-256, the user, and the API key the
session came from. So signing out, deactivating the user, and revoking or expiring the key
end the session at its next request, with no signing secret to manage or rotate.

The CSRF token of a session is derived from its cookie token (``csrf_token``): a page can
show it, a form sends it back, and a site that cannot read the HttpOnly cookie cannot make it.
The actor is built from the user row exactly as an API key's (``app.auth.services``).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.auth.models import ApiKey, Role, User
from app.auth.services import hash_token, identify
from app.base import utcnow
from app.errors import InvalidInput, NotAuthenticated, NotFound
from app.ui.models import LoginLink, UiSession

SESSION_HOURS = 12
"""A session ends this long after sign-in, whatever happens."""
LINK_MINUTES = 15
"""A login link works this long, once."""


@dataclass(frozen=True, slots=True)
class SignedIn:
    """The actor of a session and the CSRF token its forms carry."""

    actor: Actor
    csrf: str
    unread: int = 0
    """Unread notifications in the user's inbox (pages show it in the header)."""


def csrf_token(session_token: str) -> str:
    """The CSRF token of a session: a keyed hash of the cookie's secret."""
    return hmac.new(session_token.encode(), b"copool-ui-csrf", hashlib.sha256).hexdigest()


def csrf_matches(expected: str, sent: str | None) -> bool:
    """Whether a form's CSRF token is ``expected`` (compared in constant time)."""
    return bool(sent) and hmac.compare_digest(expected, sent or "")


def actor_of(user: User) -> Actor:
    """The actor of a user, as the API builds it for a key (``app.auth.services.identify``)."""
    return Actor(
        user_id=user.id,
        unit_id=user.unit_id,
        roles=frozenset(Role(r) for r in user.roles),
        name=user.name,
    )


def _open_session(session: Session, user_id: uuid.UUID, api_key_id: uuid.UUID | None) -> str:
    token = secrets.token_urlsafe(32)
    session.add(
        UiSession(
            user_id=user_id,
            api_key_id=api_key_id,
            token_sha256=hash_token(token),
            expires_at=utcnow() + timedelta(hours=SESSION_HOURS),
        )
    )
    session.flush()
    return token


def sign_in_with_key(session: Session, api_key: str) -> str:
    """A new session token for the holder of ``api_key``; ``NotAuthenticated`` otherwise."""
    _, known = identify(session, api_key.strip())
    return _open_session(session, known.actor.user_id, known.id)


def issue_login_link(session: Session, email: str) -> str:
    """A one-time login token for the active user with ``email`` (only its hash is kept)."""
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.active:
        raise NotFound(f"email: no active user {email!r}", field="email")
    token = secrets.token_urlsafe(32)
    session.add(
        LoginLink(
            user_id=user.id,
            token_sha256=hash_token(token),
            expires_at=utcnow() + timedelta(minutes=LINK_MINUTES),
        )
    )
    session.flush()
    return token


def redeem_login_link(session: Session, token: str) -> str:
    """Use a login link once: a new session token, or ``NotAuthenticated``."""
    now = utcnow()
    # One UPDATE claims the link: of two concurrent redemptions only one changes a row.
    claimed = session.execute(
        update(LoginLink)
        .where(
            LoginLink.token_sha256 == hash_token(token),
            LoginLink.used_at.is_(None),
            LoginLink.expires_at > now,
        )
        .values(used_at=now)
        .returning(LoginLink.user_id)
    ).scalar_one_or_none()
    if claimed is None:
        raise NotAuthenticated("this login link is unknown, used or expired")
    user = session.get(User, claimed)
    if user is None or not user.active:
        raise NotAuthenticated("this user is deactivated")
    return _open_session(session, user.id, None)


def signed_in(session: Session, token: str) -> SignedIn:
    """The actor of a live session token; ``NotAuthenticated`` when it ended."""
    row = session.execute(
        select(UiSession, User, ApiKey)
        .join(User, User.id == UiSession.user_id)
        .outerjoin(ApiKey, ApiKey.id == UiSession.api_key_id)
        .where(UiSession.token_sha256 == hash_token(token))
    ).first()
    if row is None:
        raise NotAuthenticated("not signed in")
    ui, user, key = row
    now = utcnow()
    if ui.ended_at is not None or ui.expires_at <= now or not user.active:
        raise NotAuthenticated("the session ended; sign in again")
    if key is not None and (
        key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now)
    ):
        raise NotAuthenticated("the API key of this session was revoked or expired")
    return SignedIn(actor_of(user), csrf_token(token))


def sign_out(session: Session, token: str) -> None:
    """End a session (signing out twice is harmless)."""
    session.execute(
        update(UiSession)
        .where(UiSession.token_sha256 == hash_token(token), UiSession.ended_at.is_(None))
        .values(ended_at=utcnow())
    )


def check_key_field(api_key: str) -> str:
    """The API key of the sign-in form, or 400 naming the field."""
    if not api_key.strip():
        raise InvalidInput("api_key: paste an API key", field="api_key")
    return api_key.strip()
