"""When a booking's SEQUENCE must rise (RFC 5546 §2.1.4: a "significant" change)."""

from __future__ import annotations

from calendars.records import BookingRecord


def sequence_must_rise(before: BookingRecord, after: BookingRecord) -> bool:
    """True if ``after`` changes the time, resource, status or repetition of ``before``."""
    return (
        before.start != after.start
        or before.end != after.end
        or before.resource != after.resource
        or before.status != after.status
        or before.recurrence != after.recurrence
    )


def next_sequence(before: BookingRecord, after: BookingRecord) -> int:
    """The SEQUENCE to store with ``after``: one more than ``before``'s on a significant change."""
    return before.sequence + 1 if sequence_must_rise(before, after) else before.sequence
