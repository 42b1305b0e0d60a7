"""The user's inbox (``GET /me/notifications``'s service): newest first, mark all read."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller
from litestar.params import Parameter
from litestar.response import Redirect, Template
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.notifications import services as notifications
from app.routing import get, post
from app.ui.sessions import SignedIn
from app.ui.web import render, see_other

PAGE = 50


class InboxController(Controller):
    """``/ui/notifications``: what happened to my bookings, requests and loans."""

    path = "/notifications"

    @get("/")
    def inbox(self, signed: SignedIn, actor: Actor, db_session: Session,
              offset: Annotated[int, Parameter(ge=0, le=1_000_000)] = 0) -> Template:
        """The inbox, newest first."""
        rows, total = notifications.inbox(db_session, actor, unread=None, limit=PAGE, offset=offset)
        return render("inbox.html", signed, "inbox", rows=rows, total=total, offset=offset, page=PAGE)

    @post("/read-all", status_code=303)
    def read_all(self, actor: Actor, db_session: Session) -> Redirect:
        """Mark every unread notification read."""
        notifications.mark_all_read(db_session, actor)
        return see_other(db_session, "/ui/notifications")
