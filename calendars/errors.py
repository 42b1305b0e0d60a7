"""Exceptions raised by :mod:`calendars`.

Every error the package raises on purpose derives from :class:`CalendarError`, so the app
can map the whole family in one place. Each one is also a :class:`ValueError`, because each
means "the input you gave me is wrong", never "the library is broken".

    CalendarError
    ├── InvalidFeedInput       records that cannot become a feed (naive time, end ≤ start,
    │   │                      duplicate UID, bad RRULE, …)
    │   └── UnknownTimeZone    a zone name that the IANA database does not know
    └── BusyImportError        an uploaded .ics that cannot become busy time
        ├── MalformedCalendar  not parseable as iCalendar, or a component is unusable
        └── TooManyOccurrences expanding it would give more intervals than allowed
"""

from __future__ import annotations


class CalendarError(ValueError):
    """Base of every error raised by :mod:`calendars`."""


class InvalidFeedInput(CalendarError):
    """A feed or booking record cannot be rendered as it stands."""


class UnknownTimeZone(InvalidFeedInput):
    """A time zone name is not in the IANA time zone database."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin'")
        self.name = name


class BusyImportError(CalendarError):
    """An imported calendar cannot be turned into busy intervals."""


class MalformedCalendar(BusyImportError):
    """The uploaded bytes are not a readable iCalendar object."""


class TooManyOccurrences(BusyImportError):
    """Expanding the calendar inside the window gives more intervals than the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the calendar expands to more than {limit} busy intervals in the window; "
            "import a shorter window or a calendar with fewer repeating events"
        )
        self.limit = limit
