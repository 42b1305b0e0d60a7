"""Building blocks of the API's pydantic schemas: strict time types, pages, list parameters."""

from __future__ import annotations

import re
import uuid
from datetime import date, datetime, timedelta
from types import UnionType
from typing import Annotated, Any, Generic, TypeVar, Union, get_args, get_origin, overload
from zoneinfo import ZoneInfo, available_timezones

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)

T = TypeVar("T")


def _no_nul(value: Any) -> Any:
    """Refuse the NUL character in any text (PostgreSQL cannot store it; SQLite would)."""
    if isinstance(value, str) and "\x00" in value:
        raise ValueError("must not contain the NUL character")
    if isinstance(value, list):
        for item in value:
            _no_nul(item)
    return value


class Schema(BaseModel):
    """Input schemas refuse unknown fields and NUL characters; output schemas read from ORM
    objects."""

    model_config = ConfigDict(extra="forbid", from_attributes=True, str_strip_whitespace=True)

    @field_validator("*", mode="before")
    @classmethod
    def _text_without_nul(cls, value: Any, info: ValidationInfo) -> Any:
        if info.field_name is not None:
            _json_kind(cls.model_fields[info.field_name].annotation, value)
        return _no_nul(value)


def _scalars(annotation: Any) -> set[Any]:
    """The scalar types a field's annotation admits (``int | None`` → {int})."""
    if get_origin(annotation) is Annotated:
        return _scalars(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return set().union(*(_scalars(a) for a in get_args(annotation)))
    return {annotation} & {bool, int, str}


def _json_kind(annotation: Any, value: Any) -> None:
    """Refuse what Litestar's lax validation would coerce: ``true`` or ``"5"`` for an
    integer, ``1`` or ``"yes"`` for a boolean (the OpenAPI schema promises JSON types)."""
    kinds = _scalars(annotation)
    integer = int in kinds and bool not in kinds and str not in kinds
    if integer and isinstance(value, bool | str):
        raise ValueError("must be a JSON integer")
    if kinds == {bool} and value is not None and not isinstance(value, bool):
        raise ValueError("must be true or false")


MIN_YEAR, MAX_YEAR = 2000, 2199
"""Instants outside these years are refused: no booking, leave or horizon reaches them."""
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def _require_string(value: Any) -> Any:
    # Litestar decodes JSON before pydantic sees it; pydantic's lax mode would then take
    # ``0`` (or the string ``"1700000000"``) for a Unix time. Instants must be written as
    # RFC 3339 strings with an offset.
    if isinstance(value, datetime) or (isinstance(value, str) and _RFC3339.match(value)):
        return value
    raise ValueError("must be an RFC 3339 date-time string with a UTC offset")


def _to_utc(value: datetime) -> datetime:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must lie in the years {MIN_YEAR} to {MAX_YEAR}")
    return value.astimezone(ZoneInfo("UTC"))


def _require_date_string(value: Any) -> Any:
    if isinstance(value, date) or (isinstance(value, str) and re.match(r"^\d{4}-\d{2}-\d{2}$", value)):
        return value
    raise ValueError("must be an ISO 8601 date string (YYYY-MM-DD)")


def _date_in_range(value: date) -> date:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise ValueError(f"must lie in the years {MIN_YEAR} to {MAX_YEAR}")
    return value


UtcDatetime = Annotated[AwareDatetime, BeforeValidator(_require_string), AfterValidator(_to_utc)]
"""An instant given with an explicit offset (naive and numeric values are refused), kept in UTC."""

IsoDate = Annotated[date, BeforeValidator(_require_date_string), AfterValidator(_date_in_range)]
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
def _require_int(value: Any) -> Any:
    # Litestar validates with strict=False, which would turn "100", true and 1e3 into
    # integers; money and shares must be written as JSON integers.
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("must be a JSON integer")
    return value


MinorUnits = Annotated[int, BeforeValidator(_require_int), Field(ge=0, le=10**15)]
"""An amount in minor units of a currency (cents for EUR): a JSON integer, never a float,
a string or a boolean."""
BasisPoints = Annotated[int, BeforeValidator(_require_int), Field(ge=0, le=10_000)]


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
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise InvalidInput(f"{field}: must lie in the years {MIN_YEAR} to {MAX_YEAR}", field=field)
    return value.astimezone(ZoneInfo("UTC"))
