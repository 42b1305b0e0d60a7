"""HTTP routes: managing feeds, fetching a feed by its secret URL, importing busy time.

``GET /feeds/{token}.ics`` takes no API key: the token is the secret. It is never written
to a log or a problem detail by copool (the server's access log is off, see ``copool serve``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from typing import Annotated, Any

from litestar import Controller, Request, Response
from litestar.datastructures import UploadFile
from litestar.di import Provide
from litestar.params import Parameter
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.base import utcnow
from app.errors import InvalidInput
from app.feeds import busy, services
from app.feeds.models import FeedSubscription
from app.feeds.schemas import BusyImportRead, FeedCreate, FeedIssued, FeedRead
from app.pagination import Limit, Offset, page_of
from app.problems import LIST, READ, WRITE, problems
from app.routing import get, post
from app.schemas import Page, Reason
from app.settings import Settings

CALENDAR = "text/calendar"  # Litestar appends "; charset=utf-8" to text/* itself
CACHE_CONTROL = "private, no-cache"
"""Only the subscriber may keep a copy, and must ask again each time (a 304 is cheap)."""


def _issued(
    feed: FeedSubscription, token: str, settings: Settings, request: Request[Any, Any, Any]
) -> FeedIssued:
    urls = services.links(settings.public_base(str(request.base_url)), token)
    return FeedIssued(
        **FeedRead.model_validate(feed).model_dump(),
        token=token,
        url=urls.url,
        webcal_url=urls.webcal_url,
        google_url=urls.google_url,
    )


class FeedSubscriptionController(Controller):
    """The caller's calendar feeds: make one, list them, rotate or revoke one."""

    path = "/feed-subscriptions"
    tags = ["feeds"]

    @post(
        "/",
        responses=WRITE,
        summary="Make a calendar feed of an expert, a device, a unit, a project or 'mine'",
    )
    def create_feed(
        self,
        actor: Actor,
        db_session: Session,
        settings: Settings,
        request: Request[Any, Any, Any],
        data: FeedCreate,
    ) -> FeedIssued:
        feed, token = services.create_feed(db_session, actor, data)
        return _issued(feed, token, settings, request)

    @get("/", responses=LIST, summary="The caller's feeds (without their URLs)")
    def list_feeds(
        self,
        actor: Actor,
        db_session: Session,
        include_revoked: bool = False,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> Page[FeedRead]:
        feeds = services.list_feeds(db_session, actor, include_revoked=include_revoked)
        return page_of(FeedRead, feeds, limit, offset)

    @get("/{feed_id:uuid}", responses=READ, summary="One of the caller's feeds")
    def get_feed(self, actor: Actor, db_session: Session, feed_id: uuid.UUID) -> FeedRead:
        return FeedRead.model_validate(services.get_feed(db_session, actor, feed_id))

    @post(
        "/{feed_id:uuid}/rotate",
        status_code=200,
        responses=WRITE,
        summary="New secret URL for a feed; the old one answers 404 from now on",
    )
    def rotate_feed(
        self,
        actor: Actor,
        db_session: Session,
        settings: Settings,
        request: Request[Any, Any, Any],
        feed_id: uuid.UUID,
    ) -> FeedIssued:
        feed, token = services.rotate_feed(db_session, actor, feed_id)
        return _issued(feed, token, settings, request)

    @post("/{feed_id:uuid}/revoke", status_code=200, responses=WRITE, summary="Revoke a feed")
    def revoke_feed(
        self, actor: Actor, db_session: Session, feed_id: uuid.UUID, data: Reason
    ) -> FeedRead:
        return FeedRead.model_validate(
            services.revoke_feed(db_session, actor, feed_id, data.reason)
        )


def _clock(request: Request[Any, Any, Any]) -> datetime:
    """Now, or the instant a test put in ``app.state.feeds_clock`` (a callable)."""
    clock: Callable[[], datetime] = request.app.state.get("feeds_clock") or utcnow
    return clock()


def _preconditions(request: Request[Any, Any, Any]) -> services.Preconditions:
    tags = tuple(
        t.strip() for t in request.headers.get("if-none-match", "").split(",") if t.strip()
    )
    since: datetime | None = None
    raw = request.headers.get("if-modified-since")
    if raw and not tags:
        try:
            since = parsedate_to_datetime(raw)
        except (TypeError, ValueError):
            since = None  # RFC 9110: an invalid date is ignored
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
    return services.Preconditions(if_none_match=tags, if_modified_since=since)


@get(
    "/feeds/{token:str}",
    tags=["feeds"],
    summary="A calendar feed (iCalendar), by its secret URL; no API key",
    description="The token is the secret: the URL ends in `.ics`, which is optional. Sends a "
    "strong ETag and Last-Modified; `If-None-Match` or `If-Modified-Since` get 304 without "
    "rendering. An unknown, rotated or revoked token gets 404.",
    security=[{}],  # no API key: the token in the path is the secret
    responses=problems(400, 404, 429),
    media_type=CALENDAR,
)
def calendar_feed(
    request: Request[Any, Any, Any],
    db_session: Session,
    token: Annotated[str, Parameter(max_length=200)],
) -> Response[bytes]:
    answer = services.fetch_feed(
        db_session, token.removesuffix(".ics"), _preconditions(request), now=_clock(request)
    )
    headers = {
        "ETag": answer.etag,
        "Last-Modified": format_datetime(answer.last_modified.astimezone(UTC), usegmt=True),
        "Cache-Control": CACHE_CONTROL,
        "X-Robots-Tag": "noindex",
    }
    if answer.body is None:
        return Response(content=b"", status_code=304, headers=headers)
    return Response(content=answer.body, media_type=CALENDAR, headers=headers)


async def read_upload(request: Request[Any, Any, Any]) -> bytes:
    """The uploaded calendar: a multipart field ``file``, or the body as ``text/calendar``."""
    too_big = InvalidInput(f"file: larger than {busy.MAX_UPLOAD_BYTES} bytes", field="file")
    length = request.headers.get("content-length", "")
    # Multipart framing adds a little; the file itself is checked below.
    if length.isdigit() and int(length) > busy.MAX_UPLOAD_BYTES + 64 * 1024:
        raise too_big
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form()
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise InvalidInput(
                "file: send the calendar in a multipart field named 'file'", field="file"
            )
        data = await upload.read()
    else:
        data = await request.body()
    if len(data) > busy.MAX_UPLOAD_BYTES:
        raise too_big
    return data


class BusyImportController(Controller):
    """Busy time of an expert, imported from their own calendar."""

    path = "/experts"
    tags = ["catalog"]

    @post(
        "/{expert_id:uuid}/busy-import",
        status_code=200,
        responses=WRITE,
        summary="Replace an expert's imported busy time with an uploaded .ics",
        description="Send the calendar as a multipart field `file`, or as the body with "
        f"`Content-Type: text/calendar` (at most {busy.MAX_UPLOAD_BYTES} bytes). Busy events "
        "from a day ago to 18 months ahead are read, repeating ones expanded, free and "
        "cancelled ones skipped; they block booking the expert. The previous import is "
        "replaced as a whole. Busy time over the expert's live bookings is refused with 409 "
        "`affects_bookings` (listed in `conflicts`) unless `force=true`: then those bookings "
        "are released (a request they serve goes back to open).",
        dependencies={"upload": Provide(read_upload)},
    )
    def import_busy(
        self,
        request: Request[Any, Any, Any],
        actor: Actor,
        db_session: Session,
        expert_id: uuid.UUID,
        upload: bytes,
        force: Annotated[
            bool, Parameter(description="Release live bookings the busy time falls over")
        ] = False,
    ) -> BusyImportRead:
        done = busy.import_busy(
            db_session, actor, expert_id, upload, now=_clock(request), force=force
        )
        return BusyImportRead(
            expert_id=done.expert_id,
            window_start=done.window_start,
            window_end=done.window_end,
            imported=len(done.busy),
            replaced=done.replaced,
            released=done.released,
            busy=[(iv.start, iv.end) for iv in done.busy],
        )
