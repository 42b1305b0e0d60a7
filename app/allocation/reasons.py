"""Why a request was left out, in words people can read, with the details as fields.

The optimizer's reasons carry ids and slot numbers; here each becomes a sentence with
names and local wall-clock times, and the ids, UTC instants and amounts stay beside it as
separate fields (``resources``, ``requests``, ``bookings``, ``window``, ``amount``), so a
client can both show the sentence and act on the data. Local times are in the zone of the
first resource concerned (each resource's own zone is given with it).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

import scheduling
from app.allocation.terms import Clock
from app.bookings.models import Booking, Request
from app.catalog.models import DeviceType, Resource, Skill
from app.units.models import Unit


class Names:
    """Names of everything a plan's reasons mention, read in a few queries."""

    def __init__(self, session: Session, plan: scheduling.Plan) -> None:
        reasons = [r for u in plan.unallocated for r in u.reasons]
        ids = {i for r in reasons for i in r.resource_ids}
        requests = {i for r in reasons for i in r.request_ids} | {
            u.request_id for u in plan.unallocated
        }
        bookings = {i for r in reasons for i in r.booking_ids}
        units = {i for r in reasons for i in r.units}
        self.resources = {
            str(r.id): r for r in session.scalars(select(Resource).where(Resource.id.in_(_ids(ids))))
        }
        self.requests = {
            str(q.id): q for q in session.scalars(select(Request).where(Request.id.in_(_ids(requests))))
        }
        self.bookings = {
            str(b.id): b for b in session.scalars(select(Booking).where(Booking.id.in_(_ids(bookings))))
        }
        self.units = {
            str(u.id): u.name for u in session.scalars(select(Unit).where(Unit.id.in_(_ids(units))))
        }
        self.skills = {str(s.id): s.name for s in session.scalars(select(Skill))}
        self.device_types = {str(d.id): d.name for d in session.scalars(select(DeviceType))}

    def requirement(self, q: scheduling.Requirement) -> str:
        """``2 × GIS analysis ≥ 3``, ``1 × Survey drone``, ``Dr Ada Lovelace``."""
        if q.skill is not None:
            return f"{q.quantity} × {self.skills.get(q.skill, 'a skill')} ≥ {q.min_level}"
        if q.device_type is not None:
            return f"{q.quantity} × {self.device_types.get(q.device_type, 'a device type')}"
        resource = self.resources.get(q.resource_id or "")
        return resource.name if resource else "a named resource"


def _ids(values: set[str]) -> list[uuid.UUID]:
    return [uuid.UUID(v) for v in values]


def _local(instant: datetime, zone: str) -> str:
    return instant.astimezone(ZoneInfo(zone)).strftime("%a %d %b %Y %H:%M")


def _hours(slots: int, clock: Clock) -> str:
    return f"{slots * clock.minutes / 60:g} h"


def _and(names: list[str]) -> str:
    if len(names) <= 1:
        return "".join(names)
    return ", ".join(names[:-1]) + " and " + names[-1]


def render(
    session: Session, clock: Clock, instance: scheduling.Instance, plan: scheduling.Plan
) -> list[dict[str, Any]]:
    """The plan's left-out requests with readable reasons (JSON)."""
    names = Names(session, plan)
    requests = {q.id: q for q in instance.requests}
    out = []
    for left in plan.unallocated:
        request = requests.get(left.request_id)
        out.append(
            {
                "request_id": left.request_id,
                "title": names.requests[left.request_id].title
                if left.request_id in names.requests
                else "",
                "reasons": [_reason(r, request, names, clock) for r in left.reasons],
            }
        )
    return out


def _reason(
    reason: scheduling.Reason,
    request: scheduling.Request | None,
    names: Names,
    clock: Clock,
) -> dict[str, Any]:
    resources = [names.resources[i] for i in reason.resource_ids if i in names.resources]
    zone = resources[0].time_zone if resources else "UTC"
    span = reason.span or (
        scheduling.TimeSpan(start=request.window_start, end=request.window_end or 0)
        if request is not None
        else None
    )
    window = None
    if span is not None:
        start, end = clock.instant(span.start), clock.instant(span.end)
        window = {
            "start": start.isoformat(),
            "end": end.isoformat(),
            "local_start": _local(start, zone),
            "local_end": _local(end, zone),
            "time_zone": zone,
        }
    label = (
        names.requirement(request.requirements[reason.requirement])
        if request is not None and reason.requirement is not None
        and reason.requirement < len(request.requirements)
        else None
    )
    detail = {
        "code": reason.code.value,
        "message": _message(reason, names, clock, label, resources, window, request),
        "requirement": reason.requirement,
        "requirement_label": label,
        "resources": [
            {"id": str(r.id), "name": r.name, "time_zone": r.time_zone} for r in resources
        ],
        "requests": [
            {"id": i, "title": names.requests[i].title}
            for i in reason.request_ids
            if i in names.requests
        ],
        "bookings": [
            {
                "id": i,
                "resource_id": str(b.resource_id),
                "start": b.start.isoformat(),
                "end": b.end.isoformat(),
            }
            for i in reason.booking_ids
            if (b := names.bookings.get(i)) is not None
        ],
        "units": [{"id": u, "name": names.units.get(u, "")} for u in reason.units],
        "amount": reason.amount,
        "window": window,
    }
    return detail


def _message(
    reason: scheduling.Reason,
    names: Names,
    clock: Clock,
    label: str | None,
    resources: list[Resource],
    window: dict[str, Any] | None,
    request: scheduling.Request | None,
) -> str:
    who = _and([r.name for r in resources]) or "the eligible resources"
    what = label or "what it asks for"
    when = f"{window['local_start']} – {window['local_end']} ({window['time_zone']})" if window else ""
    length = _hours(request.duration, clock) if request is not None else "its duration"
    titles = _and([f"“{names.requests[i].title}”" for i in reason.request_ids if i in names.requests])
    texts: dict[scheduling.ReasonCode, Callable[[], str]] = {
        scheduling.ReasonCode.NO_ELIGIBLE_RESOURCE: lambda: f"no resource in the pool offers {what}",
        scheduling.ReasonCode.NO_AGREEMENT: lambda: (
            f"resources with {what} exist, but no agreement lets the requesting unit borrow them"
        ),
        scheduling.ReasonCode.WINDOW_TOO_SHORT: lambda: (
            f"the window {when} is shorter than the {length} asked for"
        ),
        scheduling.ReasonCode.OUTSIDE_WORKING_HOURS: lambda: (
            f"whatever else is planned, {who} (for {what}) have no free {length} inside the "
            f"window {when}: working hours, leave or maintenance leave no room"
        ),
        scheduling.ReasonCode.NO_CAPACITY: lambda: _capacity(who, what, titles, reason),
        scheduling.ReasonCode.LENDING_CAP: lambda: (
            f"{who} may not be lent more in {_month(window)}: the monthly cap "
            f"(lending share or agreement hours) leaves {_hours(reason.amount or 0, clock)}"
        ),
        scheduling.ReasonCode.BUDGET_SHORT: lambda: (
            f"the project's available funds are short by {reason.amount} (minor units) of the "
            "cheapest way to serve it"
        ),
        scheduling.ReasonCode.DEPENDENCY_UNMET: lambda: (
            f"it must follow {titles or 'another request'}, which is not allocated or ends too late"
        ),
        scheduling.ReasonCode.NOT_SELECTED: lambda: (
            "it could fit alone, but only by displacing requests the plan preferred"
            + (f": {titles}" if titles else "")
        ),
    }
    text = texts.get(reason.code)
    return text() if text is not None else reason.message


def _month(window: dict[str, Any] | None) -> str:
    if window is None:
        return "that month"
    local = datetime.fromisoformat(window["start"]).astimezone(ZoneInfo(window["time_zone"]))
    return local.strftime("%B %Y")


def _capacity(who: str, what: str, titles: str, reason: scheduling.Reason) -> str:
    takers = []
    if titles:
        takers.append(f"the requests {titles}")
    if reason.booking_ids:
        n = len(reason.booking_ids)
        takers.append(f"{n} existing booking{'s' if n != 1 else ''}")
    by = f" by {_and(takers)}" if takers else ""
    return f"{who} (for {what}) are taken throughout the window{by}"
