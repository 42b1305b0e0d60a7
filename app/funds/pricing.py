"""What a loan costs: the agreement's rate card, else the resource's catalog rate.

Among the rate-card entries in force on the booking's start date (UTC), the most specific
wins: one for the resource itself, then one for a skill
the expert holds (the highest such rate) or the device's type, then the card's default;
with no entry, the resource's own catalog rate applies. A booking of ``m`` minutes costs
``ceil(hourly × m / 60)`` minor units, capped, when a daily rate is set, at
``daily × ceil(m / 1440)``. Bookings of a unit's own resources cost nothing: the unit
already pays for its own staff and equipment.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from app.agreements.models import SharingAgreement
from app.catalog.models import Resource


@dataclass(frozen=True, slots=True)
class Price:
    """A price in minor units of ``currency``."""

    amount: int
    currency: str


def _in_force(entry: dict[str, Any], day: date) -> bool:
    start, until = entry.get("effective_from"), entry.get("effective_until")
    return (start is None or date.fromisoformat(start) <= day) and (
        until is None or day <= date.fromisoformat(until)
    )


SkillIds = Callable[[], set[str]]
"""The ids (as strings) of the skills an expert holds, read only when a card prices skills."""


def _rates(
    resource: Resource, agreement: SharingAgreement | None, day: date, skill_ids: SkillIds
) -> tuple[int, int, str]:
    if agreement is None or not agreement.rate_card:
        return resource.hourly_rate, resource.daily_rate, resource.currency
    card = [e for e in agreement.rate_card if _in_force(e, day)]
    skills = skill_ids() if any(e["target"] == "skill" for e in card) else set()

    def pick(entries: list[dict[str, Any]]) -> dict[str, Any] | None:
        return max(entries, key=lambda e: e.get("hourly_rate", 0)) if entries else None

    entry = (
        pick([e for e in card if e["target"] == "resource" and e["target_id"] == str(resource.id)])
        or pick([e for e in card if e["target"] == "skill" and e["target_id"] in skills])
        or pick(
            [
                e
                for e in card
                if e["target"] == "device_type" and e["target_id"] == str(resource.device_type_id)
            ]
        )
        or pick([e for e in card if e["target"] == "default"])
    )
    if entry is None:
        return resource.hourly_rate, resource.daily_rate, resource.currency
    return int(entry.get("hourly_rate", 0)), int(entry.get("daily_rate", 0)), agreement.currency


def price_of(
    resource: Resource,
    agreement: SharingAgreement | None,
    minutes: int,
    own_unit: bool,
    day: date,
    skills: SkillIds | None = None,
) -> Price:
    """The price of holding ``resource`` for ``minutes`` from ``day`` under ``agreement``
    (``skills``: how to read the expert's skill ids; by default its loaded ``skills``)."""

    def loaded() -> set[str]:
        return {str(s.skill_id) for s in resource.skills}

    hourly, daily, currency = _rates(resource, agreement, day, skills or loaded)
    if own_unit:
        return Price(0, currency)
    amount = math.ceil(hourly * minutes / 60)
    if daily > 0:
        amount = min(amount, daily * math.ceil(minutes / 1440))
    return Price(amount, currency)
