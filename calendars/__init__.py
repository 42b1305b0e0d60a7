"""iCalendar for copool: booking records → RFC 5545 feeds, and uploaded ``.ics`` → busy time.

Pure functions over plain records: no database, no web code. The app calls

- :func:`render_feed` to produce a feed body,
- :func:`feed_etag` / :func:`feed_last_modified` (or both: :func:`feed_version`) to answer
  304 without rendering,
- :func:`next_sequence` when it saves a changed booking,
- :func:`parse_busy` to turn an uploaded calendar into busy intervals.
"""

from calendars.busy import MAX_INTERVALS, parse_busy
from calendars.errors import (
    BusyImportError,
    CalendarError,
    InvalidFeedInput,
    MalformedCalendar,
    TooManyOccurrences,
    UnknownTimeZone,
)
from calendars.feed import (
    FeedVersion,
    feed_etag,
    feed_fingerprint,
    feed_last_modified,
    feed_version,
    render_feed,
)
from calendars.records import (
    MIN_FEED_BYTES,
    BookingRecord,
    BookingStatus,
    BusyInterval,
    FeedSpec,
    Override,
    Recurrence,
)
from calendars.sequence import next_sequence, sequence_must_rise

__all__ = [
    "MAX_INTERVALS",
    "MIN_FEED_BYTES",
    "BookingRecord",
    "BookingStatus",
    "BusyImportError",
    "BusyInterval",
    "CalendarError",
    "FeedSpec",
    "FeedVersion",
    "InvalidFeedInput",
    "MalformedCalendar",
    "Override",
    "Recurrence",
    "TooManyOccurrences",
    "UnknownTimeZone",
    "feed_etag",
    "feed_fingerprint",
    "feed_last_modified",
    "feed_version",
    "next_sequence",
    "parse_busy",
    "render_feed",
    "sequence_must_rise",
]
