"""HTTP routes for bookings, requests, recurring series and availability."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated

from litestar import Controller, Response
from litestar.params import Parameter
from sqlalchemy.orm import Session

from app.auth.actor import Actor
from app.bookings import (
    backfill,
    changes,
    recurring,
    requests,
    search,
    series_edits,
    services,
)
from app.bookings.models import Booking, BookingSeries, BookingStatus, RequestStatus
from app.bookings.schemas import (
    BookingCreate,
    BookingFilter,
    BookingPatch,
    BookingRead,
    FreeBusyRead,
    ReasonOptional,
    ReasonRequired,
    RequestCreate,
    RequestPatch,
    RequestRead,
    SeriesCreate,
    SeriesPatch,
    SeriesRead,
    ServedRequest,
    SkippedOccurrence,
    SlotRead,
)
from app.pagination import Instant, Limit, Offset, OptionalInstant, Search, page
from app.problems import LIST, READ, WRITE, problems
from app.routing import delete, get, patch, post
from app.schemas import Page, aware, check_span

Duration = Annotated[int, Parameter(ge=5, le=60 * 24 * 14, description="Minutes")]


class BookingController(Controller):
    """Direct bookings of named resources, and their life after."""

    path = "/bookings"
    tags = ["bookings"]

    @post("/", responses=WRITE, summary="Book a named resource for a slot")
    def create_booking(self, actor: Actor, db_session: Session, data: BookingCreate) -> BookingRead:
        check_span(data.start, data.end, field="end", max_days=14)
        backfill.admit_booking(db_session, actor, data)
        return BookingRead.model_validate(services.book(db_session, actor, data))

    @get("/", responses=LIST, summary="Bookings the caller's unit borrows or lends")
    def list_bookings(
        self,
        actor: Actor,
        db_session: Session,
        limit: Limit = 50,
        offset: Offset = 0,
        resource_id: uuid.UUID | None = None,
        project_id: uuid.UUID | None = None,
        request_id: uuid.UUID | None = None,
        operator_for_id: Annotated[
            uuid.UUID | None, Parameter(description="The operator's booking of a device booking")
        ] = None,
        status: BookingStatus | None = None,
        start: OptionalInstant = None,
        end: OptionalInstant = None,
        q: Search = None,
    ) -> Page[BookingRead]:
        filters = BookingFilter(
            q=q,
            resource_id=resource_id,
            project_id=project_id,
            request_id=request_id,
            operator_for_id=operator_for_id,
            status=status,
            start=aware(start, "start"),
            end=aware(end, "end"),
        )
        rows, total = services.list_bookings(db_session, actor, filters, limit=limit, offset=offset)
        return page(BookingRead, rows, total, limit, offset)

    @get(
        "/{booking_id:uuid}",
        responses=READ,
        summary="One booking",
        description="The `ETag` header is the booking's version; send it as `If-Match` "
        "with a PATCH to change only what was read.",
    )
    def get_booking(
        self, actor: Actor, db_session: Session, booking_id: uuid.UUID
    ) -> Response[BookingRead]:
        return _with_etag(services.get_booking(db_session, actor, booking_id))

    @patch(
        "/{booking_id:uuid}",
        summary="Move or edit a booking (borrower): same id, SEQUENCE + 1",
        description=(
            "Changes start/end, resource or title under every rule of a new booking, in one "
            "transaction, leaving the booking itself out of the overlap and caps. `start` "
            "alone shifts the booking (its length kept). A confirmed loan's hold is placed "
            "again at the new price. Fee: free while the booking starts 24 h or more after "
            "the move; later, the agreement's `cancellation_fee` is charged. Under an "
            "agreement that requires approval a moved loan goes back to `pending_approval` "
            "with the new slot (the old one is freed). An occurrence of a series moves "
            "alone (a RECURRENCE-ID override in feeds). 409 `overlap` (nothing changed), "
            "`wrong_status`, `started`, `paired_booking`, "
            "`request_booking`; 412 `version_changed` when `If-Match` names an older ETag."
        ),
        responses={**WRITE, **problems(412)},
    )
    def change_booking(
        self,
        actor: Actor,
        db_session: Session,
        booking_id: uuid.UUID,
        data: BookingPatch,
        if_match: Annotated[
            str | None,
            Parameter(header="If-Match", description="The ETag read; 412 if it changed since"),
        ] = None,
    ) -> Response[BookingRead]:
        booking = changes.change_booking(db_session, actor, booking_id, data, if_match)
        return _with_etag(booking)

    @post(
        "/{booking_id:uuid}/approve",
        status_code=200,
        responses=WRITE,
        summary="Approve a loan (lender)",
    )
    def approve(
        self, actor: Actor, db_session: Session, booking_id: uuid.UUID, data: ReasonOptional
    ) -> BookingRead:
        booking = services.approve(db_session, actor, booking_id, data.reason)
        return BookingRead.model_validate(booking)

    @post(
        "/{booking_id:uuid}/decline",
        status_code=200,
        responses=WRITE,
        summary="Decline a loan (lender)",
    )
    def decline(
        self, actor: Actor, db_session: Session, booking_id: uuid.UUID, data: ReasonRequired
    ) -> BookingRead:
        booking = services.decline(db_session, actor, booking_id, data.reason)
        return BookingRead.model_validate(booking)

    @post(
        "/{booking_id:uuid}/confirm",
        status_code=200,
        responses=WRITE,
        summary="Accept a tentative booking (borrower)",
    )
    def confirm(
        self, actor: Actor, db_session: Session, booking_id: uuid.UUID, data: ReasonOptional
    ) -> BookingRead:
        booking = services.confirm(db_session, actor, booking_id, data.reason)
        return BookingRead.model_validate(booking)

    @post(
        "/{booking_id:uuid}/cancel",
        status_code=200,
        responses=WRITE,
        summary="Cancel a booking (either side)",
    )
    def cancel(
        self, actor: Actor, db_session: Session, booking_id: uuid.UUID, data: ReasonRequired
    ) -> BookingRead:
        booking = services.cancel(db_session, actor, booking_id, data.reason)
        return BookingRead.model_validate(booking)

    @post(
        "/{booking_id:uuid}/complete",
        status_code=200,
        responses=WRITE,
        summary="Mark an ended booking completed",
    )
    def complete(
        self, actor: Actor, db_session: Session, booking_id: uuid.UUID, data: ReasonOptional
    ) -> BookingRead:
        booking = services.complete(db_session, actor, booking_id, data.reason)
        return BookingRead.model_validate(booking)

    @post(
        "/{booking_id:uuid}/check-in",
        status_code=200,
        responses=WRITE,
        summary="Check in a device booking",
    )
    def check_in(self, actor: Actor, db_session: Session, booking_id: uuid.UUID) -> BookingRead:
        return BookingRead.model_validate(services.check_in(db_session, actor, booking_id))

    @post(
        "/{booking_id:uuid}/release",
        status_code=200,
        responses=WRITE,
        summary="Release a device booking nobody checked in (lender)",
    )
    def release(self, actor: Actor, db_session: Session, booking_id: uuid.UUID) -> BookingRead:
        return BookingRead.model_validate(services.release_no_show(db_session, actor, booking_id))


def _with_etag(booking: Booking) -> Response[BookingRead]:
    """The booking, with its version as the ``ETag`` header."""
    return Response(BookingRead.model_validate(booking), headers={"ETag": changes.etag_of(booking)})


class SeriesController(Controller):
    """Recurring bookings."""

    path = "/booking-series"
    tags = ["bookings"]

    @post("/", responses=WRITE, summary="Book a recurring series (RRULE, local wall-clock)")
    def create_series(self, actor: Actor, db_session: Session, data: SeriesCreate) -> SeriesRead:
        series, bookings, skipped = recurring.create_series(db_session, actor, data)
        return _series_read(series, bookings, skipped)

    @get("/{series_id:uuid}", responses=READ, summary="A series and its occurrences")
    def get_series(self, actor: Actor, db_session: Session, series_id: uuid.UUID) -> SeriesRead:
        series, bookings = recurring.get_series(db_session, actor, series_id)
        skipped = [
            SkippedOccurrence(
                start=s,
                end=s + timedelta(minutes=series.duration_minutes),
                reason="clashed at creation",
            )
            for s in map(_parse, series.skipped)
        ]
        return _series_read(series, bookings, skipped)

    @patch(
        "/{series_id:uuid}",
        responses=WRITE,
        summary="Edit a series: all, or this and following (splits the series)",
        description=(
            "New wall-clock `local_time`, `duration_minutes`, `title` or `notes` for every "
            "occurrence covered, each moved under the rules of a single move, in one "
            "transaction. `this_and_following` from `from_occurrence` (an occurrence's "
            "original start) ends the series before it (RRULE UNTIL) and answers the new "
            "series that starts there, with its own id and feed UID. 409 "
            "`occurrence_conflicts` lists each occurrence that cannot move (nothing changed)."
        ),
    )
    def change_series(
        self, actor: Actor, db_session: Session, series_id: uuid.UUID, data: SeriesPatch
    ) -> SeriesRead:
        series, bookings = series_edits.change_series(db_session, actor, series_id, data)
        return _series_read(series, bookings, _skipped(series))

    @delete(
        "/{series_id:uuid}",
        status_code=200,
        responses=WRITE,
        summary="Cancel every occurrence of a series that has not started",
        description=(
            "Each occurrence is cancelled as a single booking is: the same fee rule per "
            "occurrence (a borrower cancelling a confirmed loan pays the agreement's fee "
            "when its notice is short). Occurrences that started stay."
        ),
    )
    def cancel_series(
        self,
        actor: Actor,
        db_session: Session,
        series_id: uuid.UUID,
        reason: Annotated[str, Parameter(query="reason", max_length=2000)] = "",
    ) -> SeriesRead:
        series, bookings = series_edits.cancel_series(db_session, actor, series_id, reason)
        return _series_read(series, bookings, _skipped(series))


def _skipped(series: BookingSeries) -> list[SkippedOccurrence]:
    length = timedelta(minutes=series.duration_minutes)
    return [
        SkippedOccurrence(start=s, end=s + length, reason="clashed at creation")
        for s in map(_parse, series.skipped)
    ]


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _series_read(
    series: BookingSeries, bookings: list[Booking], skipped: list[SkippedOccurrence]
) -> SeriesRead:
    return SeriesRead(
        id=series.id,
        resource_id=series.resource_id,
        project_id=series.project_id,
        title=series.title,
        rrule=series.rrule,
        time_zone=series.time_zone,
        local_start=series.local_start,
        duration_minutes=series.duration_minutes,
        notes=series.notes,
        bookings=[BookingRead.model_validate(b) for b in bookings],
        skipped=skipped,
    )


class RequestController(Controller):
    """Requests for experts by skill, devices by type, or named resources."""

    path = "/requests"
    tags = ["requests"]

    @post("/", responses=WRITE, summary="Ask for resources for a project")
    def create_request(self, actor: Actor, db_session: Session, data: RequestCreate) -> RequestRead:
        return RequestRead.model_validate(requests.create_request(db_session, actor, data))

    @get("/", responses=LIST, summary="Requests of projects the caller's unit takes part in")
    def list_requests(
        self,
        actor: Actor,
        db_session: Session,
        limit: Limit = 50,
        offset: Offset = 0,
        project_id: uuid.UUID | None = None,
        status: RequestStatus | None = None,
        unit_id: uuid.UUID | None = None,
        q: Search = None,
    ) -> Page[RequestRead]:
        rows, total = requests.list_requests(
            db_session,
            actor,
            limit=limit,
            offset=offset,
            project_id=project_id,
            status=status,
            unit_id=unit_id,
            q=q,
        )
        return page(RequestRead, rows, total, limit, offset)

    @get("/{request_id:uuid}", responses=READ, summary="One request")
    def get_request(self, actor: Actor, db_session: Session, request_id: uuid.UUID) -> RequestRead:
        return RequestRead.model_validate(requests.get_request(db_session, actor, request_id))

    @patch(
        "/{request_id:uuid}",
        responses=WRITE,
        summary="Change an open request (title, notes, duration, window, priority)",
        description="Same rules as a new request; 409 `wrong_status` once it is not open.",
    )
    def change_request(
        self, actor: Actor, db_session: Session, request_id: uuid.UUID, data: RequestPatch
    ) -> RequestRead:
        request = requests.change_request(db_session, actor, request_id, data)
        return RequestRead.model_validate(request)

    @post(
        "/{request_id:uuid}/serve",
        status_code=200,
        responses=WRITE,
        summary="Serve it now: book the earliest fit (first fit)",
    )
    def serve(self, actor: Actor, db_session: Session, request_id: uuid.UUID) -> ServedRequest:
        request, bookings = requests.serve_now(db_session, actor, request_id)
        return ServedRequest(
            request=RequestRead.model_validate(request),
            bookings=[BookingRead.model_validate(b) for b in bookings],
        )

    @post(
        "/{request_id:uuid}/cancel",
        status_code=200,
        responses=WRITE,
        summary="Withdraw a request and cancel its bookings",
    )
    def cancel(
        self, actor: Actor, db_session: Session, request_id: uuid.UUID, data: ReasonRequired
    ) -> RequestRead:
        request = requests.cancel_request(db_session, actor, request_id, data.reason)
        return RequestRead.model_validate(request)


class AvailabilityController(Controller):
    """Free slots and free/busy views."""

    path = "/availability"
    tags = ["availability"]

    @get(
        "/slots",
        responses=LIST,
        summary="Earliest free slots of matching resources",
        description=(
            "Each matching resource's earliest `per_resource` free slots (one after the "
            "other), all ordered by start; `offset` and `limit` page through them. The answer "
            "is a plain list: its total is not known without searching the whole range."
        ),
    )
    def search_slots(
        self,
        actor: Actor,
        db_session: Session,
        start: Instant,
        end: Instant,
        duration_minutes: Duration,
        skill_id: uuid.UUID | None = None,
        min_level: Annotated[int, Parameter(ge=1, le=5)] = 1,
        device_type_id: uuid.UUID | None = None,
        limit: Limit = 20,
        offset: Annotated[int, Parameter(ge=0, le=1000, description="Slots to skip")] = 0,
        per_resource: Annotated[
            int, Parameter(ge=1, le=50, description="Slots per resource, one after the other")
        ] = 1,
    ) -> list[SlotRead]:
        since, until = aware(start, "start"), aware(end, "end")
        check_span(since, until, field="end", max_days=92)
        slots = search.search_slots(
            db_session,
            actor,
            start=since,
            end=until,
            duration_minutes=duration_minutes,
            skill_id=skill_id,
            min_level=min_level,
            device_type_id=device_type_id,
            limit=limit,
            offset=offset,
            per_resource=per_resource,
        )
        return [
            SlotRead(
                resource_id=s.resource_id,
                resource_name=s.resource_name,
                unit_id=s.unit_id,
                start=s.start,
                end=s.end,
            )
            for s in slots
        ]

    @get("/resources/{resource_id:uuid}", responses=READ, summary="Free/busy of one resource")
    def free_busy(
        self,
        actor: Actor,
        db_session: Session,
        resource_id: uuid.UUID,
        start: Instant,
        end: Instant,
    ) -> FreeBusyRead:
        since, until = aware(start, "start"), aware(end, "end")
        check_span(since, until, field="end", max_days=92)
        free, busy, off = search.free_busy(db_session, actor, resource_id, since, until)
        return FreeBusyRead(
            resource_id=resource_id, start=since, end=until, free=free, busy=busy, unavailable=off
        )
