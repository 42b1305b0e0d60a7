"""Freed time and who waits for it: the windows a change frees, and the waiting requests.

Whenever a live booking stops being live (cancelled, declined, released for a no-show,
displaced, re-planned) or a live one is moved, shortened or put on another resource, the
time it held is recorded as a ``FreedWindow`` by a ``before_flush`` listener, in the
transaction that frees it: every path that changes a booking is covered, and a
rolled-back change frees nothing. ``app.bookings.waitlist`` re-plans the windows.

An open request waits when it says ``waitlist: true``, or when it left the choice open
(``waitlist: null``) and the latest applied allocation run that considered it left it out
for capacity (``no_capacity``, ``not_selected``, ``lending_cap``).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import event, inspect, or_, select
from sqlalchemy.orm import Session, selectinload

from app.allocation.models import AllocationRun
from app.bookings.models import LIVE_STATUSES, Booking, FreedWindow, Request, RequestStatus

CAPACITY_CODES = {"no_capacity", "not_selected", "lending_cap"}
"""Reasons a run leaves a request out for which freed time may help."""


@event.listens_for(Session, "before_flush")
def _record_freed(session: Session, _context: Any, _instances: Any) -> None:
    """Write a FreedWindow for each booking whose held time this flush gives up."""
    for obj in list(session.dirty):
        if not isinstance(obj, Booking):
            continue
        state = inspect(obj)
        old = {
            name: state.attrs[name].history.deleted
            for name in ("status", "start", "end", "resource_id")
        }
        was_status = old["status"][0] if old["status"] else obj.status
        if was_status not in LIVE_STATUSES:
            continue
        if obj.status not in LIVE_STATUSES:
            cause = obj.status
        elif old["start"] or old["end"] or old["resource_id"]:
            cause = "moved"
        else:
            continue
        session.add(
            FreedWindow(
                resource_id=old["resource_id"][0] if old["resource_id"] else obj.resource_id,
                start=old["start"][0] if old["start"] else obj.start,
                end=old["end"][0] if old["end"] else obj.end,
                cause=cause,
                booking_id=obj.id,
            )
        )


def waiting_requests(session: Session, start: datetime, end: datetime) -> list[Request]:
    """Open requests that wait for freed time and could use ``[start, end)``."""
    candidates = list(
        session.scalars(
            select(Request)
            .options(selectinload(Request.requirements))
            .where(
                Request.status == RequestStatus.OPEN.value,
                or_(Request.waitlist.is_(True), Request.waitlist.is_(None)),
                Request.window_start < end,
                Request.window_end > start,
            )
            .order_by(Request.created_at, Request.id)
        )
    )
    undecided = [q.id for q in candidates if q.waitlist is None]
    left_out = _left_out_for_capacity(session, undecided) if undecided else set()
    return [q for q in candidates if q.waitlist or q.id in left_out]


def _left_out_for_capacity(session: Session, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Of ``ids``, those the latest applied run that considered them left out for capacity."""
    wanted = {str(i) for i in ids}
    decided: dict[str, bool] = {}
    runs = session.scalars(
        select(AllocationRun)
        .where(AllocationRun.applied_at.is_not(None))
        .order_by(AllocationRun.applied_at.desc())
        .limit(50)
    )
    for run in runs:
        result = run.result or {}
        for a in result.get("assignments", []):
            decided.setdefault(a["request_id"], False)
        for u in result.get("unallocated", []):
            codes = {r.get("code") for r in u.get("reasons", [])}
            decided.setdefault(u["request_id"], bool(codes & CAPACITY_CODES))
        if wanted <= decided.keys():
            break
    return {uuid.UUID(i) for i in wanted if decided.get(i)}
