"""Building blocks of the API's pydantic schemas: strict time types, pages, list parameters."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Generic, TypeVar, overload
from zoneinfo import ZoneInfo, available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
)

T = TypeVar("T")


class Schema(BaseModel):
    """Input schemas refuse unknown fields; output schemas read from ORM objects."""

    model_config = ConfigDict(extra="forbid", from_attributes=True, str_strip_whitespace=True)


def _require_string(value: Any) -> Any:
    # Litestar decodes JSON before pydantic sees it; pydantic's lax mode would then take
    # ``0`` for 1970-01-01. Instants must be written as RFC 3339 strings with an offset.
    if isinstance(value, str | datetime):
        return value
    raise ValueError("must be an RFC 3339 date-time string with a UTC offset")


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(ZoneInfo("UTC"))


def _require_date_string(value: Any) -> Any:
    if isinstance(value, str | date):
        return value
    raise ValueError("must be an ISO 8601 date string (YYYY-MM-DD)")


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_require_string), AfterValidator(_to_utc)]
"""An instant given with an explicit offset (naive and numeric values are refused), kept in UTC."""

IsoDate = Annotated[date, BeforeValidator(_require_date_string)]
"""A calendar date written as ``YYYY-MM-DD``."""

_ZONES = frozenset(available_timezones())


def _check_zone(value: str) -> str:
    if value not in _ZONES:
        raise ValueError(f"unknown IANA time zone {value!r}")
    return value


TimeZoneName = Annotated[str, AfterValidator(_check_zone)]
"""An IANA time-zone name such as ``Europe/Berlin``."""

_CURRENCY = re.compile(r"^[A-Z]{3}$")
CurrencyCode = Annotated[str, Field(pattern=_CURRENCY.pattern, examples=["EUR"])]
"""An ISO 4217 alphabetic code."""

Name = Annotated[str, Field(min_length=1, max_length=200)]
Code = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.-]+$")]
Text = Annotated[str, Field(max_length=10_000)]
MinorUnits = Annotated[int, Field(ge=0, le=10**15)]
"""An amount in minor units of a currency (cents for EUR); never a float."""
BasisPoints = Annotated[int, Field(ge=0, le=10_000)]


class Page(BaseModel, Generic[T]):
    """One page of a list: the items, the total that match, and where the page starts."""

    items: list[T]
    total: int
    limit: int
    offset: int


class IdRef(BaseModel):
    """A bare reference to an object."""

    id: uuid.UUID


def check_span(start: datetime | date, end: datetime | date, *, field: str, max_days: int) -> None:
    """Refuse an inverted or over-long span (raises ``InvalidInput`` naming ``field``)."""
    from app.errors import InvalidInput

    if end <= start:
        raise InvalidInput(f"{field}: the end must be after the start", field=field)
    if (end - start) > timedelta(days=max_days):  # type: ignore[operator]
        raise InvalidInput(f"{field}: spans at most {max_days} days", field=field)


class Reason(Schema):
    """Why a change is made; kept in the audit log."""

    reason: str = Field(default="", max_length=2000)


def end_after_start(value: Any, info: ValidationInfo) -> Any:
    """Field validator for ``end``: it must come after ``start`` (the error names ``end``)."""
    start = info.data.get("start")
    if start is not None and value is not None and value <= start:
        raise ValueError("must be after start")
    return value


@overload
def aware(value: str | datetime, field: str) -> datetime: ...
@overload
def aware(value: None, field: str) -> None: ...
def aware(value: str | datetime | None, field: str) -> datetime | None:
    """A query-string instant: an RFC 3339 string with an offset, returned in UTC.

    Numbers (``?start=0``) and naive times are refused with ``InvalidInput`` naming ``field``.
    """
    from app.errors import InvalidInput

    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text or text.lstrip("-").isdigit():
            raise InvalidInput(
                f"{field}: give an RFC 3339 date-time such as 2027-03-01T09:00:00Z, not a number",
                field=field,
            )
        try:
            value = datetime.fromisoformat(text.replace(" ", "+"))
        except ValueError:
            raise InvalidInput(f"{field}: not an RFC 3339 date-time", field=field) from None
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(f"{field}: give an offset, e.g. 2027-03-01T09:00:00Z", field=field)
    return value.astimezone(ZoneInfo("UTC"))
