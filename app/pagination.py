"""List parameters shared by every list route, and the page they produce."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, TypeVar

from litestar.params import Parameter
from pydantic import BaseModel

from app.schemas import Page

Limit = Annotated[int, Parameter(ge=1, le=200, description="Page size (1–200)")]
Offset = Annotated[int, Parameter(ge=0, le=1_000_000, description="Rows to skip")]
DATE_TIME = {"format": "date-time"}
_INSTANT = "An RFC 3339 date-time with an offset, e.g. 2027-03-01T09:00:00Z"
Instant = Annotated[
    str,
    Parameter(min_length=1, max_length=64, schema_extra=DATE_TIME, description=_INSTANT),
]
"""A query-string instant; controllers pass it through ``app.schemas.aware``."""
OptionalInstant = Annotated[
    str | None, Parameter(max_length=64, schema_extra=DATE_TIME, description=_INSTANT)
]

S = TypeVar("S", bound=BaseModel)


def page(schema: type[S], rows: Sequence[Any], total: int, limit: int, offset: int) -> Page[S]:
    """Render ORM rows as one page of ``schema``."""
    return Page[schema](  # type: ignore[valid-type]
        items=[schema.model_validate(r) for r in rows], total=total, limit=limit, offset=offset
    )
