"""Cancelling and editing a whole series, or "this and following".

Cancel (``DELETE /booking-series/{id}``): every occurrence that has not started and is
still live is cancelled as a single booking would be (``services.cancel``): the same
permissions, and the same fee rule per occurrence (a borrower cancelling a confirmed loan
pays the agreement's fee as each occurrence's notice makes due). Occurrences that started
or ended stay.

Edit (``PATCH /booking-series/{id}``): a new wall-clock start time, length, title or notes.
Each occurrence covered moves through the single-booking move (``changes.change_booking``:
every rule of a new booking, hold re-priced, move fees, approval again where the agreement
wants it), all in one transaction; if any occurrence cannot move, nothing changes and the
409 lists each one (``code: occurrence_conflicts``; each entry of ``conflicts`` names
the occurrence, its reason and code, and the bookings it clashes with). An occurrence moved or renamed alone
before is reset to the series' new times, as calendar clients do.

Splitting. ``this_and_following`` from an occurrence that is not the first ends the old
series just before it (its rule gets ``UNTIL`` = the last occurrence kept) and starts a new
series with its own id, and so its own feed UID, at that occurrence. ``all`` edits the
series in place, unless some occurrences have started and the times change: then it
splits at the first occurrence that has not (the past keeps its times). The old series'
``sequence`` rises by what leaves it, so its feed SEQUENCE never falls.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from app.audit.services import record, snapshot
from app.auth.actor import Actor
from app.base import utcnow
from app.bookings import changes, services
from app.bookings.models import Booking, BookingSeries
from app.bookings.recurring import get_series, occurrences
from app.bookings.schemas import BookingPatch, SeriesPatch, SeriesScope
from app.errors import Conflict, InvalidInput, PermissionDenied

_MOVABLE = {s.value for s in changes.MOVABLE}


def cancel_series(
    session: Session, actor: Actor, series_id: uuid.UUID, reason: str
) -> tuple[BookingSeries, list[Booking]]:
    """Cancel every live occurrence that has not started (each by the normal rule)."""
    series, bookings = get_series(session, actor, series_id)
    now = utcnow()
    cancelled = []
    for booking in bookings:
        if booking.start > now and booking.status in _MOVABLE:
            services.cancel(session, actor, booking.id, reason or "series cancelled")
            cancelled.append(booking.start.isoformat())
    if not cancelled:
        raise Conflict("no occurrence of the series is left to cancel", code="wrong_status")
    series.sequence += 1
    session.flush()
    record(
        session,
        actor,
        "series.cancel",
        series,
        unit_id=bookings[0].lender_unit_id,
        after=snapshot(series, cancelled=cancelled),
        reason=reason,
    )
    return get_series(session, actor, series_id)


def _key(booking: Booking) -> datetime:
    """Where the series' rule puts the occurrence (its RECURRENCE-ID)."""
    return booking.recurrence_id or booking.start


@dataclass
class _Plan:
    """What an edit does: the occurrences it covers and the series they end up in."""

    series: BookingSeries
    split_at: datetime | None
    covered: list[Booking]
    kept: list[Booking]


def _plan(series: BookingSeries, bookings: list[Booking], data: SeriesPatch) -> _Plan:
    """Which occurrences the edit covers, and whether the series splits (where)."""
    now = utcnow()
    if data.scope is SeriesScope.THIS_AND_FOLLOWING:
        assert data.from_occurrence is not None
        start = data.from_occurrence
        if start not in {_key(b) for b in bookings}:
            raise InvalidInput(
                "from_occurrence: not an occurrence of the series (give its original start)",
                field="from_occurrence",
            )
        if start <= now:
            raise Conflict("from_occurrence: that occurrence has started", code="started")
    else:
        future = [_key(b) for b in bookings if b.start > now]
        if not future:
            raise Conflict("every occurrence of the series has started", code="started")
        start = min(future)
    covered = [b for b in bookings if _key(b) >= start]
    kept = [b for b in bookings if _key(b) < start]
    retimed = data.local_time is not None or data.duration_minutes is not None
    split = bool(kept) and (data.scope is SeriesScope.THIS_AND_FOLLOWING or retimed)
    return _Plan(series, start if split else None, covered, kept if split else [])


def _rule_without_end(rrule: str) -> list[str]:
    return [
        p
        for p in rrule.removeprefix("RRULE:").split(";")
        if p and not p.startswith(("COUNT=", "UNTIL="))
    ]


def _until(rrule: str, last: datetime) -> str:
    return ";".join([*_rule_without_end(rrule), "UNTIL=" + last.strftime("%Y%m%dT%H%M%SZ")])


def _new_local_start(series: BookingSeries, first: datetime, data: SeriesPatch) -> datetime:
    """The covered part's first occurrence as naive wall-clock time, at the new time."""
    rule_start = datetime.fromisoformat(series.local_start)
    day = first.astimezone(ZoneInfo(series.time_zone)).date()
    return datetime.combine(day, data.local_time or rule_start.time())


def _target_series(
    session: Session, actor: Actor, plan: _Plan, data: SeriesPatch
) -> tuple[BookingSeries, list[datetime]]:
    """The series the covered occurrences belong to after the edit, and its rule's
    starts; the old series ends before a split."""
    old = plan.series
    duration = data.duration_minutes or old.duration_minutes
    first = _key(plan.covered[0])
    local_start = _new_local_start(old, first, data)
    old_starts = occurrences(old.rrule, datetime.fromisoformat(old.local_start), old.time_zone)
    following = [t for t in old_starts if t >= first]
    probe = occurrences(
        _until(old.rrule, following[-1] + timedelta(days=1)), local_start, old.time_zone
    )[: len(following)]
    rule = _until(old.rrule, probe[-1])
    _check_same_days(following, probe, old.time_zone)
    if plan.split_at is None:
        target = old
        target.rrule, target.local_start = rule, local_start.isoformat(timespec="seconds")
    else:
        before = [t for t in old_starts if t < first]
        old.rrule = _until(old.rrule, before[-1])
        old.sequence += sum(b.sequence for b in plan.covered) + 1
        target = BookingSeries(
            resource_id=old.resource_id,
            project_id=old.project_id,
            created_by=actor.user_id,
            title=old.title,
            rrule=rule,
            time_zone=old.time_zone,
            local_start=local_start.isoformat(timespec="seconds"),
            duration_minutes=duration,
            notes=old.notes,
            skipped=[],
            sequence=0,
        )
        session.add(target)
        _split_skipped(old, target, first, dict(zip(following, probe, strict=True)))
    target.duration_minutes = duration
    target.title = data.title or target.title
    target.notes = data.notes if data.notes is not None else target.notes
    target.sequence += 1
    session.flush()
    return target, probe


def _split_skipped(
    old: BookingSeries, new: BookingSeries, first: datetime, moved: dict[datetime, datetime]
) -> None:
    """Occurrences skipped at creation stay with the part of the series they fall in."""
    skipped = [datetime.fromisoformat(s) for s in old.skipped]
    old.skipped = [s.isoformat() for s in skipped if s < first]
    new.skipped = [moved[s].isoformat() for s in skipped if s >= first and s in moved]


def _check_same_days(old: list[datetime], new: list[datetime], zone_name: str) -> None:
    zone = ZoneInfo(zone_name)
    if [t.astimezone(zone).date() for t in old] != [t.astimezone(zone).date() for t in new]:
        raise InvalidInput(
            "local_time: the series' rule would not keep its days at that time",
            field="local_time",
        )


def change_series(
    session: Session, actor: Actor, series_id: uuid.UUID, data: SeriesPatch
) -> tuple[BookingSeries, list[Booking]]:
    """Edit a series (see the module doc); returns the series holding the edited part."""
    old, bookings = get_series(session, actor, series_id)
    if not services.acts_for_project(session, actor, bookings[0].borrower_unit_id, old.project_id):
        raise PermissionDenied("changing a series needs a borrower-side role of its project")
    plan = _plan(old, bookings, data)
    before = snapshot(old)
    target, starts = _target_series(session, actor, plan, data)
    mapping = _nominal_map(plan, starts)
    length = timedelta(minutes=target.duration_minutes)
    problems = _move_all(session, actor, plan.covered, target, mapping, length, data)
    if problems:
        raise Conflict(
            f"{len(problems)} occurrence(s) cannot move; nothing was changed",
            field="local_time",
            code="occurrence_conflicts",
            conflicts=problems,
        )
    record(
        session,
        actor,
        "series.split" if plan.split_at else "series.edit",
        target,
        unit_id=bookings[0].lender_unit_id,
        before=before,
        after=snapshot(target, split_from=str(old.id) if plan.split_at else None),
        reason=data.notes or "",
    )
    return get_series(session, actor, target.id)


def _nominal_map(plan: _Plan, starts: list[datetime]) -> dict[datetime, datetime]:
    """Each covered occurrence's old rule start → its new one, matched by local day."""
    zone = ZoneInfo(plan.series.time_zone)
    by_day = {t.astimezone(zone).date(): t for t in starts}
    out = {}
    for b in plan.covered:
        key = _key(b)
        day = key.astimezone(zone).date()
        if day not in by_day:
            raise InvalidInput(
                "local_time: the series' rule would not keep its days at that time",
                field="local_time",
            )
        out[key] = by_day[day]
    return out


def _move_all(
    session: Session,
    actor: Actor,
    covered: list[Booking],
    target: BookingSeries,
    mapping: dict[datetime, datetime],
    length: timedelta,
    data: SeriesPatch,
) -> list[dict[str, Any]]:
    """Move each covered occurrence to its new slot; the ones that cannot, with why."""
    problems: list[dict[str, Any]] = []
    for booking in sorted(covered, key=_key):
        was = _key(booking)
        start = mapping[was]
        booking.series_id, booking.recurrence_id = target.id, start
        title = data.title or target.title
        if booking.status not in _MOVABLE or (
            (booking.start, booking.end, booking.title) == (start, start + length, title)
        ):
            continue
        patch = BookingPatch(start=start, end=start + length, title=title, reason=data.notes or "")
        try:
            with session.begin_nested():
                changes.change_booking(session, actor, booking.id, patch)
        except (Conflict, InvalidInput) as exc:
            problems.append(
                {
                    "occurrence": was.astimezone(UTC).isoformat(),
                    "booking_id": str(booking.id),
                    "start": start.isoformat(),
                    "code": exc.extra.get("code", "conflict"),
                    "reason": exc.detail,
                    "conflicts": exc.extra.get("conflicts", []),
                }
            )
    session.flush()
    return problems
