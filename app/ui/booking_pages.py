"""Resources (a timeline of free and busy time, booking from a free slot) and approvals."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from litestar import Controller
from litestar.enums import RequestEncodingType
from litestar.params import Body
from litestar.response import Redirect, Template
from pydantic import ValidationError
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.base import utcnow
from app.bookings import backfill, requests, search
from app.bookings import services as bookings
from app.bookings.models import BookingStatus, RequirementKind
from app.bookings.schemas import BookingCreate, BookingFilter, RequestCreate, RequirementIn
from app.catalog import services as catalog
from app.catalog.models import Device, Expert
from app.errors import InvalidInput, NotFound
from app.projects.services import list_projects
from app.routing import get, post
from app.schemas import check_span
from app.ui.pages import booking_rows, timeline
from app.ui.sessions import SignedIn
from app.ui.views import Row, bar, window
from app.ui.web import render, see_other

Form = Annotated[dict[str, str], Body(media_type=RequestEncodingType.URL_ENCODED)]
DURATIONS = (30, 60, 120, 240, 480)
"""Minutes offered when booking from a free slot."""


def _local(instant: datetime, zone: ZoneInfo) -> str:
    return instant.astimezone(zone).strftime("%Y-%m-%dT%H:%M")


def free_slots(free: list[tuple[datetime, datetime]], zone: ZoneInfo) -> list[dict[str, Any]]:
    """The free intervals from now on, as the booking forms show them (resource's zone)."""
    now = utcnow().replace(second=0, microsecond=0)
    slots = []
    for start, end in free:
        start = max(start, now + timedelta(minutes=5 - now.minute % 5))
        if end - start < timedelta(minutes=DURATIONS[0]):
            continue
        minutes = int((end - start).total_seconds() // 60)
        slots.append({
            "start": start, "end": end, "local": _local(start, zone),
            "min": _local(start, zone), "max": _local(end, zone),
            "durations": [d for d in DURATIONS if d <= minutes],
        })
    return slots


def _booking_input(data: dict[str, str], resource_id: uuid.UUID, zone: ZoneInfo) -> BookingCreate:
    try:
        start = datetime.fromisoformat(data.get("start", "")).replace(tzinfo=zone)
    except ValueError as exc:
        raise InvalidInput("start: give a date and time", field="start") from exc
    try:
        minutes = int(data.get("minutes", ""))
        project_id = uuid.UUID(data.get("project_id", ""))
    except ValueError as exc:
        field = "minutes" if not data.get("minutes", "").isdigit() else "project_id"
        raise InvalidInput(f"{field}: choose one from the list", field=field) from exc
    try:
        return BookingCreate(
            resource_id=resource_id, project_id=project_id, start=start.astimezone(UTC),
            end=(start + timedelta(minutes=minutes)).astimezone(UTC),
            title=data.get("title", "").strip() or "Booking",
        )
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0]) if exc.errors() else "start"
        raise InvalidInput(f"{field}: {exc.errors()[0]['msg']}", field=field) from exc


def _request_input(booking: BookingCreate, data: dict[str, str]) -> RequestCreate:
    """A request for the resource over the chosen slot (to the end of its free time)."""
    try:
        until = datetime.fromisoformat(data.get("slot_end", "")).astimezone(UTC)
    except ValueError:
        until = booking.end
    try:
        return RequestCreate(
            project_id=booking.project_id, title=booking.title,
            requirements=[RequirementIn(kind=RequirementKind.RESOURCE, resource_id=booking.resource_id)],
            duration_minutes=int((booking.end - booking.start).total_seconds() // 60),
            window_start=booking.start, window_end=max(until, booking.end),
        )
    except ValidationError as exc:
        field = str(exc.errors()[0]["loc"][0]) if exc.errors() else "start"
        raise InvalidInput(f"{field}: {exc.errors()[0]['msg']}", field=field) from exc


class ResourceController(Controller):
    """``/ui/resources``: the catalog one may book, and each resource's timeline."""

    path = "/resources"

    @get("/")
    def resources(self, signed: SignedIn, actor: Actor, db_session: Session, q: str = "") -> Template:
        """Experts and devices the actor may see (search by name)."""
        experts, _ = catalog.list_resources(db_session, actor, Expert, limit=100, offset=0, q=q or None)
        devices, _ = catalog.list_resources(db_session, actor, Device, limit=100, offset=0, q=q or None)
        return render("resources.html", signed, "resources", experts=experts, devices=devices, q=q)

    @get("/{resource_id:uuid}")
    def resource(self, signed: SignedIn, actor: Actor, db_session: Session,
                 resource_id: uuid.UUID, at: date | None = None, done: str = "") -> Template:
        """A week of one resource: free, busy and away time, and a form per free slot."""
        found = search.candidates(db_session, actor, resource_id=resource_id)
        if not found:
            raise NotFound("no such resource")
        resource = found[0]
        win = window("week", at)
        free, busy, off = search.free_busy(db_session, actor, resource_id, win.start, win.end)
        zone = ZoneInfo(resource.time_zone)
        lane = Row(label="Availability", bars=[
            *(bar(win, s, e, "bar-free", "free") for s, e in free),
            *(bar(win, s, e, "bar-off", "away") for s, e in off),
            *(bar(win, s, e, "bar-busy", "busy") for s, e in busy),
        ])
        rows, _ = booking_rows(
            db_session, actor, BookingFilter(start=win.start, end=win.end, resource_id=resource_id)
        )
        projects, _ = list_projects(db_session, actor, limit=100, offset=0, unit_id=actor.unit_id)
        return render(
            "resource.html", signed, "resources", resource=resource, win=win, lane=lane,
            lanes=timeline(win, rows), rows=rows, slots=free_slots(free, zone),
            projects=projects, prev=win.shifted(-1), next=win.shifted(1), done=done,
        )

    @post("/{resource_id:uuid}/book", status_code=303)
    def book(self, actor: Actor, db_session: Session, resource_id: uuid.UUID, data: Form) -> Redirect:
        """Book the resource for a slot chosen on its timeline (the API's own path)."""
        resource = bookings.visible_resource(db_session, actor, resource_id)
        create = _booking_input(data, resource_id, ZoneInfo(resource.time_zone))
        if data.get("as") == "request":
            asked = requests.create_request(db_session, actor, _request_input(create, data))
            return see_other(db_session, f"/ui/runs?requested={asked.id}")
        check_span(create.start, create.end, field="end", max_days=14)
        backfill.admit_booking(db_session, actor, create)
        booking = bookings.book(db_session, actor, create)
        at = create.start.date().isoformat()
        return see_other(db_session, f"/ui/resources/{resource_id}?at={at}&done={booking.status}")


class ApprovalController(Controller):
    """``/ui/approvals``: loans of the actor's unit waiting for its answer."""

    path = "/approvals"

    @get("/")
    def queue(self, signed: SignedIn, actor: Actor, db_session: Session, done: str = "") -> Template:
        """Pending loans where the actor's unit lends, oldest first."""
        pending = BookingFilter(status=BookingStatus.PENDING_APPROVAL)
        rows, total = booking_rows(db_session, actor, pending)
        mine = [r for r in rows if actor.is_admin or r["lender_unit_id"] == actor.unit_id]
        return render("approvals.html", signed, "approvals", rows=mine, total=total, done=done)

    @post("/{booking_id:uuid}/approve", status_code=303)
    def approve(self, actor: Actor, db_session: Session, booking_id: uuid.UUID, data: Form) -> Redirect:
        """Approve a loan (the lender's resource manager)."""
        bookings.approve(db_session, actor, booking_id, data.get("reason", "").strip())
        return see_other(db_session, "/ui/approvals?done=approved")

    @post("/{booking_id:uuid}/decline", status_code=303)
    def decline(self, actor: Actor, db_session: Session, booking_id: uuid.UUID, data: Form) -> Redirect:
        """Decline a loan; the reason is kept with the booking (a default when left empty)."""
        reason = data.get("reason", "").strip() or f"declined by {actor.name} in the dashboard"
        bookings.decline(db_session, actor, booking_id, reason[:2000])
        return see_other(db_session, "/ui/approvals?done=declined")


def _back(data: dict[str, str]) -> str:
    """Where to send the browser after an action: a dashboard page, else the home page."""
    back = data.get("back", "")
    return back if back.startswith("/ui/") and "//" not in back else "/ui/"


class BookingActionController(Controller):
    """``/ui/bookings/{id}/…``: the borrower confirms a tentative booking or cancels one."""

    path = "/bookings"

    @post("/{booking_id:uuid}/confirm", status_code=303)
    def confirm(self, actor: Actor, db_session: Session, booking_id: uuid.UUID, data: Form) -> Redirect:
        """Accept a tentative booking (e.g. one an allocation run placed)."""
        bookings.confirm(db_session, actor, booking_id, "confirmed in the dashboard")
        return see_other(db_session, _back(data))

    @post("/{booking_id:uuid}/cancel", status_code=303)
    def cancel(self, actor: Actor, db_session: Session, booking_id: uuid.UUID, data: Form) -> Redirect:
        """Cancel a booking (either side; fees as the agreement says)."""
        reason = data.get("reason", "").strip() or f"cancelled by {actor.name} in the dashboard"
        bookings.cancel(db_session, actor, booking_id, reason[:2000])
        return see_other(db_session, _back(data))
