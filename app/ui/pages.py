"""The dashboard's home: my and my unit's bookings as a timeline, and calendar feeds."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated, Any, Literal

import segno
from litestar import Controller, Request
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from markupsafe import Markup
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.bookings import services as bookings
from app.bookings.models import Booking
from app.bookings.schemas import BookingFilter
from app.catalog.models import Resource
from app.errors import InvalidInput
from app.feeds import services as feeds
from app.feeds.models import FeedKind
from app.feeds.schemas import FeedCreate
from app.projects.models import Project
from app.projects.services import list_projects
from app.routing import get, post
from app.settings import Settings
from app.ui.sessions import SignedIn
from app.ui.views import Window, names, rows_by, window
from app.ui.web import render, see_other

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
View = Literal["week", "month"]
AnyRequest = Request[Any, Any, Any]
ENDED = {"cancelled", "declined", "released"}
TIMELINE_LIMIT = 200
"""Most bookings one page reads (the page says when there are more)."""
LANES = 40
"""Most resources one timeline draws a lane for (the page says how many more there are)."""


def booking_rows(
    session: Session, actor: Actor, filters: BookingFilter
) -> tuple[list[dict[str, Any]], int]:
    """Bookings the actor may see (the API's list), with display names, by start."""
    found, total = bookings.list_bookings(session, actor, filters, limit=TIMELINE_LIMIT, offset=0)
    resources = names(session, Resource, (b.resource_id for b in found))
    projects = names(session, Project, (b.project_id for b in found))
    return [_row(b, resources, projects) for b in found], total


def _row(b: Booking, resources: dict[uuid.UUID, str], projects: dict[uuid.UUID, str]) -> dict[str, Any]:
    return {
        "id": b.id, "start": b.start, "end": b.end, "status": b.status, "title": b.title,
        "resource_id": b.resource_id, "resource": resources.get(b.resource_id, "?"),
        "project": projects.get(b.project_id, "?"), "created_by": b.created_by,
        "borrower_unit_id": b.borrower_unit_id, "lender_unit_id": b.lender_unit_id,
    }


def timeline(win: Window, rows: list[dict[str, Any]]) -> list[Any]:
    """Timeline rows per resource of the live bookings among ``rows`` (the first ``LANES``
    resources by name, then a row counting the others)."""
    return rows_by(
        win,
        (
            (r["resource"], f"/ui/resources/{r['resource_id']}", r["start"], r["end"],
             f"bar-{r['status']}", f"{r['title']} ({r['status']})")
            for r in rows
            if r["status"] not in ENDED
        ),
        LANES,
    )


def qr_svg(text: str) -> Markup:
    """A QR code of ``text`` as inline SVG (made here, nothing fetched)."""
    svg = segno.make(text, error="m").svg_inline(scale=4, border=2, dark="#000", light="#fff",
                                                  svgclass="qr", title="QR code of the feed address")
    return Markup(svg)  # segno made this markup from a URL copool made


def feed_targets(session: Session, actor: Actor) -> list[dict[str, Any]]:
    """The feeds the actor can make: their bookings, their unit, each of their projects."""
    projects, _ = list_projects(session, actor, limit=50, offset=0)
    targets = [
        {"kind": "mine", "target_id": "", "label": "My bookings"},
        {"kind": "unit", "target_id": str(actor.unit_id), "label": "My unit's bookings"},
    ]
    targets += [
        {"kind": "project", "target_id": str(p.id), "label": f"Project {p.code}: {p.name}"}
        for p in projects
    ]
    return targets


def _feed_request(data: dict[str, str]) -> FeedCreate:
    try:
        kind = FeedKind(data.get("kind", ""))
        target = uuid.UUID(data["target_id"]) if data.get("target_id") else None
    except (ValueError, KeyError) as exc:
        raise InvalidInput("kind: choose a feed from the list", field="kind") from exc
    if (kind is FeedKind.MINE) != (target is None):
        raise InvalidInput("target_id: does not fit the feed's kind", field="target_id")
    return FeedCreate(kind=kind, target_id=target)


class HomeController(Controller):
    """``/ui/``: bookings, and ``/ui/feeds``: subscribing a calendar to them."""

    path = "/"

    @get("/")
    def home(self, signed: SignedIn, actor: Actor, db_session: Session, view: View = "week",
             at: date | None = None) -> Template:
        """My bookings and my unit's, as a week or month timeline and as lists."""
        win = window(view, at)
        rows, total = booking_rows(db_session, actor, BookingFilter(start=win.start, end=win.end))
        mine = [r for r in rows if r["created_by"] == actor.user_id]
        return render(
            "home.html", signed, "home", win=win, rows=rows, total=total, mine=mine,
            lanes=timeline(win, rows), prev=win.shifted(-1), next=win.shifted(1),
            back=f"/ui/?view={win.view}&at={win.start.date().isoformat()}",
        )

    @get("/feeds")
    def feeds_page(self, signed: SignedIn, actor: Actor, db_session: Session) -> Template:
        """The feeds the user has and can make, each one button away."""
        own = feeds.list_feeds(db_session, actor, include_revoked=False)
        return render("feeds.html", signed, "home", targets=feed_targets(db_session, actor), feeds=own)

    @post("/feeds", status_code=200)
    def subscribe(self, request: AnyRequest, signed: SignedIn, actor: Actor,
                  db_session: Session, settings: Settings, data: Form) -> Template:
        """Make a feed and show its addresses and QR code, this once."""
        feed, token = feeds.create_feed(db_session, actor, _feed_request(data))
        return _issued(request, signed, settings, feed.name, token)

    @post("/feeds/{feed_id:uuid}/rotate", status_code=200)
    def rotate(self, request: AnyRequest, signed: SignedIn, actor: Actor, db_session: Session,
               settings: Settings, feed_id: uuid.UUID) -> Template:
        """A new address for a feed (the old one stops working), shown this once."""
        feed, token = feeds.rotate_feed(db_session, actor, feed_id)
        return _issued(request, signed, settings, feed.name, token)

    @post("/feeds/{feed_id:uuid}/revoke", status_code=303)
    def revoke(self, actor: Actor, db_session: Session, feed_id: uuid.UUID) -> Redirect:
        """Stop a feed for good: its address answers 404 from now on."""
        feeds.revoke_feed(db_session, actor, feed_id, "revoked in the dashboard")
        return see_other(db_session, "/ui/feeds")


def _issued(request: AnyRequest, signed: SignedIn, settings: Settings, name: str,
            token: str) -> Template:
    base = (settings.public_base_url or str(request.base_url)).rstrip("/")
    links = feeds.links(base, token)
    return render("feed_issued.html", signed, "home", name=name, links=links,
                  qr=qr_svg(links.webcal_url))
