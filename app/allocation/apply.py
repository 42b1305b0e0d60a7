"""Applying a plan: tentative bookings in one transaction, whole requests or nothing.

Stable re-plans: a request's tentative booking whose resource and times the plan keeps
stays as it is (same id, same feed UID, no new SEQUENCE); one whose resource stays but
whose times change is moved in place (same id, SEQUENCE + 1, audited ``booking.move``);
only resources the plan drops are cancelled and only new ones are booked. Bookings about
to move or go are first *set aside* (out of the live set, not yet audited) so that plans
that swap slots between requests apply in any order; whatever is still set aside at the
end is cancelled for real and audited. A request the plan leaves out goes back to open.

An emergency run takes the place of the bookings in its way: each displaced request is
reopened whole (``displaced_by``) through ``reopen_request``, a direct booking cancelled.

Locks (PostgreSQL row locks; SQLite serialises whole write transactions instead). Apply
takes them in the one global order of ``app.bookings.services`` — resources, then requests,
then bookings, each kind by id — and all of a kind before the next: first the run itself
(two applies of one run: the second finds it applied, 409), then every resource the plan
books (``_lock_resources``, by resource id), then the plan's and the previous plan's
requests (by id), then their tentative bookings (by id). The locks taken later while
applying (``rules.lock_resource``, ``lock_request``) are on rows held already, except an
emergency run's displaced requests and their bookings, which come after the resource they
stand on, as in the booking path. So two applies, or an apply and a booking, approval,
serve or cancel, queue behind each other instead of deadlocking; a lock timeout or a
deadlock PostgreSQL still reports is answered 503 with ``Retry-After`` (``app.problems``).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from app.agreements.models import SharingAgreement
from app.allocation import terms
from app.allocation.models import AllocationRun
from app.audit.services import record, snapshot
from app.auth.actor import Actor
from app.base import utcnow
from app.bookings import rules
from app.bookings.models import (
    LIVE_STATUSES,
    Booking,
    BookingStatus,
    ReopenCode,
    Request,
    RequestStatus,
)
from app.bookings.services import (
    change_status,
    lock_booking,
    lock_request,
    place_booking,
    reopen_request,
    sync_request,
)
from app.catalog.models import Resource
from app.errors import Conflict
from app.projects.models import Project
from ledger import available_funds_many

APPLICABLE = (RequestStatus.OPEN.value, RequestStatus.ALLOCATED.value)


@dataclass
class Report:
    """What apply did: per request its bookings, what it refused and whom it displaced."""

    applied: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)
    displaced: list[dict[str, Any]] = field(default_factory=list)
    released: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The report stored on the run."""
        return {
            "applied": self.applied,
            "refused": self.refused,
            "displaced": self.displaced,
            "released": self.released,
        }


@dataclass
class Aside:
    """Tentative bookings taken out of the live set while the plan is applied."""

    by_request: dict[uuid.UUID, list[Booking]]
    before: dict[uuid.UUID, dict[str, Any]]
    """Audit snapshot of each booking as it was."""

    def take(self, request_id: uuid.UUID, resource_id: uuid.UUID) -> Booking | None:
        """The set-aside booking of ``request_id`` on ``resource_id``, restored to the caller."""
        for booking in self.by_request.get(request_id, []):
            if booking.resource_id == resource_id:
                self.by_request[request_id].remove(booking)
                return booking
        return None


def apply_plan(session: Session, actor: Actor, run: AllocationRun) -> Report:
    """Apply a done run's plan (the caller checked who may and that it is not applied yet)."""
    assert run.result is not None
    _lock_run(session, run)
    assignments = run.result["assignments"]
    _lock_resources(session, assignments)
    planned = {uuid.UUID(a["request_id"]) for a in assignments}
    previous = {uuid.UUID(r) for r in (run.snapshot or {}).get("tentative", {})}
    requests = {
        q.id: q
        for q in session.scalars(
            select(Request)
            .options(selectinload(Request.requirements))
            .where(Request.id.in_(planned | previous))
            .order_by(Request.id)
            .with_for_update()
        )
    }
    aside = _set_aside(session, assignments, requests)
    catalog = terms.load_resources(session)
    funds = {
        p: m.amount
        for p, m in available_funds_many(session, list({q.project_id for q in requests.values()})).items()
    }
    spent: dict[uuid.UUID, int] = defaultdict(int)
    report = Report()
    for a in assignments:
        request = requests.get(uuid.UUID(a["request_id"]))
        refusal = _precheck(request, a, funds, spent)
        if refusal is not None:
            report.refused.append(refusal)
            continue
        assert request is not None
        try:
            with session.begin_nested():
                made = _apply_one(session, actor, run, request, a, aside, catalog, report)
            report.applied.append({"request_id": a["request_id"], "booking_ids": made})
            spent[request.project_id] += int(a.get("cost", 0))
        except Conflict as exc:
            report.refused.append(
                {
                    "request_id": a["request_id"],
                    "code": exc.extra.get("code", "conflict"),
                    "reason": exc.detail,
                }
            )
    _release_rest(session, actor, run, aside, requests, report)
    return report


def _lock_run(session: Session, run: AllocationRun) -> None:
    """Lock the run's row and re-read it: a second apply of the same run waits here, then
    finds it applied."""
    session.flush()
    session.refresh(run, with_for_update=True)
    if run.applied_at is not None:
        raise Conflict("the run was applied already", code="already_applied")


def _lock_resources(session: Session, assignments: list[dict[str, Any]]) -> None:
    """Lock every resource the plan books, in resource id order, before anything else."""
    ids = sorted({uuid.UUID(r) for a in assignments for r in a["resource_ids"]})
    if ids:
        session.execute(
            select(Resource.id).where(Resource.id.in_(ids)).order_by(Resource.id).with_for_update()
        ).all()


def _precheck(
    request: Request | None,
    a: dict[str, Any],
    funds: dict[uuid.UUID, int],
    spent: dict[uuid.UUID, int],
) -> dict[str, Any] | None:
    """Why an assignment cannot apply before touching anything (its request, the budget)."""
    if request is None or request.status not in APPLICABLE:
        return {
            "request_id": a["request_id"],
            "code": "wrong_status",
            "reason": f"the request is now {request.status if request else 'gone'}",
        }
    cost = int(a.get("cost", 0))
    available = funds.get(request.project_id)
    if available is not None and spent[request.project_id] + cost > available:
        short = spent[request.project_id] + cost - available
        return {
            "request_id": a["request_id"],
            "code": "budget_short",
            "reason": f"the project's available funds are short by {short}",
            "shortfall": short,
        }
    return None


def _times(request: Request, a: dict[str, Any]) -> tuple[datetime, datetime]:
    # The plan holds whole slots; the booking lasts exactly the requested duration.
    start = datetime.fromisoformat(a["start"])
    return start, start + timedelta(minutes=request.duration_minutes)


def _set_aside(
    session: Session, assignments: list[dict[str, Any]], requests: dict[uuid.UUID, Request]
) -> Aside:
    """Take every tentative booking the plan does not keep exactly out of the live set."""
    kept: set[tuple[uuid.UUID, uuid.UUID, datetime, datetime]] = set()
    for a in assignments:
        request = requests.get(uuid.UUID(a["request_id"]))
        if request is not None and request.status in APPLICABLE:
            start, end = _times(request, a)
            kept |= {(request.id, uuid.UUID(r), start, end) for r in a["resource_ids"]}
    aside = Aside(defaultdict(list), {})
    movable = [q.id for q in requests.values() if q.status in APPLICABLE]
    bookings = session.scalars(
        select(Booking)
        .where(
            Booking.request_id.in_(movable),
            Booking.status == BookingStatus.TENTATIVE.value,
        )
        .order_by(Booking.id)
        .with_for_update()
    )
    for booking in bookings:
        assert booking.request_id is not None
        if (booking.request_id, booking.resource_id, booking.start, booking.end) in kept:
            continue
        aside.before[booking.id] = snapshot(booking)
        booking.status = BookingStatus.CANCELLED.value
        aside.by_request[booking.request_id].append(booking)
    session.flush()
    return aside


def _live_of(session: Session, request: Request) -> dict[uuid.UUID, Booking]:
    return {
        b.resource_id: b
        for b in session.scalars(
            select(Booking).where(
                Booking.request_id == request.id, Booking.status.in_(LIVE_STATUSES)
            )
        )
    }


def _apply_one(
    session: Session,
    actor: Actor,
    run: AllocationRun,
    request: Request,
    a: dict[str, Any],
    aside: Aside,
    catalog: list[Resource],
    report: Report,
) -> list[str]:
    """Book one assignment whole: keep, move or make each of its bookings."""
    start, end = _times(request, a)
    ids = [uuid.UUID(r) for r in a["resource_ids"]]
    planned = [r for r in catalog if r.id in ids]
    _, roles = terms.requirements_of(request, catalog)
    matched = terms.assign_roles(roles, planned)
    if matched is None or len(planned) != len(ids):
        raise Conflict(
            "the planned resources no longer serve the request's requirements",
            code="no_eligible_resource",
        )
    live = _live_of(session, request)
    if any(b.status != BookingStatus.TENTATIVE.value for b in live.values()):
        raise Conflict("the request already has bookings beyond tentative", code="wrong_status")
    project = session.get(Project, request.project_id)
    assert project is not None
    booked: dict[uuid.UUID, Booking] = {}
    for resource in planned:
        if resource.id in live:
            booked[resource.id] = live[resource.id]
            continue
        locked = rules.lock_resource(session, resource.id)
        if run.emergency and request.emergency:
            report.displaced.extend(_displace(session, actor, request, locked, start, end, run))
        moved = aside.take(request.id, resource.id)
        if moved is not None:
            booked[resource.id] = _move(session, actor, run, locked, moved, start, end, aside)
        else:
            booked[resource.id] = place_booking(
                session,
                actor,
                resource=locked,
                project=project,
                borrower_unit_id=request.unit_id,
                start=start,
                end=end,
                title=request.title,
                status=BookingStatus.TENTATIVE,
                request_id=request.id,
                requirement_id=matched[resource.id].requirement_id,
            )
    _pair_operators(session, matched, booked, planned)
    request.reopen_code = None
    sync_request(session, actor, request.id, f"allocated by run {run.id}")
    return [str(booked[r].id) for r in ids]


def _move(
    session: Session,
    actor: Actor,
    run: AllocationRun,
    resource: Resource,
    booking: Booking,
    start: datetime,
    end: datetime,
    aside: Aside,
) -> Booking:
    """Move a set-aside tentative booking to ``[start, end)`` on its resource, in place."""
    before, after = rules.buffers(session, resource)
    block = (start - before, end + after)
    rules.check_slot(session, resource, start, end, block, borrower=booking.borrower_unit_id)
    agreement = (
        session.get(SharingAgreement, booking.agreement_id) if booking.agreement_id else None
    )
    rules.check_caps(session, resource, agreement, start, end)
    booking.start, booking.end = start, end
    booking.block_start, booking.block_end = block
    booking.status = BookingStatus.TENTATIVE.value
    booking.status_reason = f"moved by run {run.id}"
    booking.sequence += 1
    session.flush()
    record(
        session,
        actor,
        "booking.move",
        booking,
        unit_id=booking.lender_unit_id,
        before=aside.before.pop(booking.id),
        after=snapshot(booking),
        reason=booking.status_reason,
    )
    return booking


def _pair_operators(
    session: Session,
    matched: dict[uuid.UUID, terms.Role],
    booked: dict[uuid.UUID, Booking],
    planned: list[Resource],
) -> None:
    """Link each operator's booking to a device booking of the requirement it operates."""
    devices: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for resource in planned:
        role = matched[resource.id]
        if not role.operator and resource.operator_skill_id is not None:
            devices[role.requirement_id].append(resource.id)
    for resource in planned:
        role = matched[resource.id]
        if role.operator and devices[role.requirement_id]:
            device = devices[role.requirement_id].pop(0)
            booked[resource.id].operator_for_id = booked[device].id
    session.flush()


def _displace(
    session: Session,
    actor: Actor,
    request: Request,
    resource: Resource,
    start: datetime,
    end: datetime,
    run: AllocationRun,
) -> list[dict[str, Any]]:
    """Release the live bookings in the way of an emergency request; list each one."""
    before, after = rules.buffers(session, resource)
    blocks = rules.live_blocks(session, [resource.id], start - before, end + after)
    displaced: list[dict[str, Any]] = []
    for booking in blocks.get(resource.id, []):
        # Lock the request, then its bookings (the booking path's order), and decide on
        # what they are now: a concurrent cancel may have freed the slot already.
        other = lock_request(session, booking.request_id) if booking.request_id else None
        lock_booking(session, booking)
        if booking.status not in LIVE_STATUSES:
            continue
        if booking.status == BookingStatus.COMPLETED.value or (other and other.emergency):
            raise Conflict(
                f"{resource.name} is held by a booking an emergency may not displace",
                code="overlap",
                resource_id=str(resource.id),
            )
        reason = f"displaced by emergency request “{request.title}” (run {run.id})"
        if other is not None:
            released = reopen_request(session, actor, other, ReopenCode.DISPLACED_BY, reason)
        else:
            change_status(
                session, actor, booking, BookingStatus.CANCELLED, "booking.displace", reason,
                cancelled_at=utcnow(),
            )
            released = [booking]
        displaced.extend(_entry(b) for b in released)
    return displaced


def _entry(booking: Booking) -> dict[str, Any]:
    return {
        "booking_id": str(booking.id),
        "resource_id": str(booking.resource_id),
        "start": booking.start.isoformat(),
        "end": booking.end.isoformat(),
        "borrower_unit_id": str(booking.borrower_unit_id),
        "request_id": str(booking.request_id) if booking.request_id else None,
    }


def _release_rest(
    session: Session,
    actor: Actor,
    run: AllocationRun,
    aside: Aside,
    requests: dict[uuid.UUID, Request],
    report: Report,
) -> None:
    """Cancel, audited, what is still set aside; requests left with nothing go back to open."""
    for request_id, bookings in aside.by_request.items():
        for booking in bookings:
            booking.status = BookingStatus.TENTATIVE.value
            change_status(
                session, actor, booking, BookingStatus.CANCELLED, "booking.replan",
                f"re-planned by run {run.id}", cancelled_at=utcnow(),
            )
            report.released.append(_entry(booking))
        request = requests[request_id]
        if not _live_of(session, request) and request.status == RequestStatus.ALLOCATED.value:
            before = snapshot(request)
            request.status = RequestStatus.OPEN.value
            request.status_reason = f"left out by run {run.id}"
            session.flush()
            record(
                session, actor, "request.reopen", request, unit_id=request.unit_id,
                before=before, after=snapshot(request), reason=request.status_reason,
            )
