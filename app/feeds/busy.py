"""Busy time imported from an expert's own calendar (.ics): it blocks booking that expert.

An import replaces the previous one as a whole, in one transaction: the expert's earlier
``imported`` unavailability rows go, the new busy intervals come. Leave and other periods
are left alone. Only managers of the expert's own unit (or admins) import.

Busy time over the expert's live bookings is refused (409 ``affects_bookings``, nothing
written) unless the caller forces it (``?force=true``): then those bookings are released in
the same transaction (``app.bookings.withdrawals``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, delete
from sqlalchemy.orm import Session

from app.audit.services import record
from app.auth.actor import Actor
from app.auth.models import Role
from app.bookings import withdrawals
from app.bookings.rules import lock_resource
from app.catalog.models import Expert, Unavailability, UnavailabilityKind
from app.catalog.services import get_resource
from app.errors import InvalidInput, PermissionDenied
from calendars import BusyInterval, CalendarError, parse_busy

MAX_UPLOAD_BYTES = 2 * 1024 * 1024
"""Largest .ics accepted (a few years of a busy person's calendar)."""
IMPORT_BACK = timedelta(days=1)
IMPORT_AHEAD = timedelta(days=548)
"""Busy time is read from a day ago to about 18 months ahead: what bookings can still meet."""
MAX_INTERVALS = 20_000
"""Occurrences one upload may expand to (a FREQ=MINUTELY rule is cheap to write)."""


@dataclass(frozen=True, slots=True)
class BusyImport:
    """What an import wrote."""

    expert_id: uuid.UUID
    window_start: datetime
    window_end: datetime
    busy: list[BusyInterval]
    replaced: int
    released: list[uuid.UUID]
    """Bookings the import released (only when forced)."""


def import_busy(
    session: Session,
    actor: Actor,
    expert_id: uuid.UUID,
    upload: bytes,
    *,
    now: datetime,
    force: bool = False,
) -> BusyImport:
    """Replace an expert's imported busy time with the busy events of ``upload``."""
    expert = get_resource(session, actor, Expert, expert_id)
    if not actor.manages_unit(expert.unit_id, Role.RESOURCE_MANAGER, Role.UNIT_MANAGER):
        raise PermissionDenied(
            "importing busy time needs resource_manager or unit_manager of the expert's unit"
        )
    if len(upload) > MAX_UPLOAD_BYTES:
        raise InvalidInput(f"file: larger than {MAX_UPLOAD_BYTES} bytes", field="file")
    window_start, window_end = now - IMPORT_BACK, now + IMPORT_AHEAD
    try:
        busy = parse_busy(
            upload,
            window_start,
            window_end,
            floating_tz=expert.time_zone,
            max_intervals=MAX_INTERVALS,
        )
    except CalendarError as exc:
        raise InvalidInput(f"file: {exc}", field="file", code="bad_calendar") from None
    # Serialise with bookings of this expert: a booking checked against the old import must
    # not commit after the new one.
    lock_resource(session, expert.id)
    hit = withdrawals.overlapping(session, expert.id, [(iv.start, iv.end) for iv in busy])
    withdrawals.refuse_unless_forced(hit, force=force, what="the imported busy time")
    deleted = session.execute(
        delete(Unavailability).where(
            Unavailability.resource_id == expert.id,
            Unavailability.kind == UnavailabilityKind.IMPORTED.value,
        )
    )
    replaced = cast("CursorResult[Any]", deleted).rowcount
    session.add_all(
        Unavailability(
            resource_id=expert.id,
            kind=UnavailabilityKind.IMPORTED.value,
            start=iv.start,
            end=iv.end,
            note="imported calendar",
        )
        for iv in busy
    )
    session.flush()
    record(
        session,
        actor,
        "busy.import",
        expert,
        unit_id=expert.unit_id,
        object_type="resources",
        after={
            "intervals": len(busy),
            "replaced": replaced,
            "window": [window_start.isoformat(), window_end.isoformat()],
            "released": [str(b.id) for b in hit],
        },
    )
    withdrawals.release(session, actor, hit, f"{expert.name} is busy then (imported calendar)")
    return BusyImport(
        expert.id, window_start, window_end, busy, replaced, released=[b.id for b in hit]
    )
