"""Dashboard sign-in: browser sessions and one-time login links, both stored hashed."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from app.base import Base, DateTimeUTC


class UiSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is kept.

    A session made from an API key ends when that key is revoked or expires; every session
    ends when its user is deactivated, at ``expires_at``, or when the user signs out.
    """

    __tablename__ = "ui_sessions"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), default=None
    )
    """The key the user signed in with (None: a login link)."""
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)


class LoginLink(Base):
    """A one-time sign-in link of ``copool users login-link``: 15 minutes, used once."""

    __tablename__ = "ui_login_links"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTimeUTC(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTimeUTC(timezone=True), default=None)
