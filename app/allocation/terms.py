"""The booking engine's terms of a loan, in the optimizer's units: agreements, prices, caps, operators.

Each function here derives its answer from the rule the booking path applies
(``app.bookings.rules``, ``app.funds.pricing``), never from a copy of it:

- which agreement a loan runs under: the booking path's preference (``AGREEMENT_PREFERENCE``)
  over the agreements active on the horizon's first day; an agreement that ends inside the
  horizon becomes a zero-capacity window for its borrower from the day after it ends;
- what a request costs with each resource: ``price_of`` for the request's duration on its
  window's first day (0 for the unit's own resources); when a rate card changes inside the
  window, the highest price of the window's days (the budget is never overdrawn; the
  ledger holds the day's price on confirmation);
- caps: ``rules.lending_caps`` and ``rules.agreement_caps`` month by month, minus every
  booking that stays, rounded down to whole slots;
- operators: a device that needs an operator skill brings a requirement for an expert with
  that skill over the same span (or for the request's own ``operator_id``).
"""

from __future__ import annotations

import math
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

import scheduling
from app.agreements.models import SharingAgreement
from app.agreements.services import active_on, covers
from app.bookings import rules
from app.bookings.models import Request, Requirement, RequirementKind
from app.catalog.models import Resource, ResourceKind
from app.funds.pricing import price_of

Pair = tuple[uuid.UUID, uuid.UUID]
"""(resource id, borrower unit id)."""


class Clock:
    """Slot arithmetic for one run."""

    def __init__(self, start: datetime, slot_minutes: int) -> None:
        self.start = start
        self.minutes = slot_minutes
        self.slot = timedelta(minutes=slot_minutes)

    def floor(self, instant: datetime) -> int:
        """The slot containing ``instant``."""
        return max(0, math.floor((instant - self.start) / self.slot))

    def ceil(self, instant: datetime) -> int:
        """The first slot boundary at or after ``instant``."""
        return max(0, math.ceil((instant - self.start) / self.slot))

    def instant(self, slot: int) -> datetime:
        """The UTC instant at which ``slot`` begins."""
        return self.start + slot * self.slot


@dataclass
class Loans:
    """The agreement each (resource, borrower) loan runs under, and the optimizer's view."""

    by_pair: dict[Pair, SharingAgreement]
    agreements: list[scheduling.Agreement]


def loans(session: Session, day: date) -> Loans:
    """Agreements active on ``day``, with the resources each covers (booking-path preference)."""
    by_pair: dict[Pair, SharingAgreement] = {}
    out = []
    for agreement in session.scalars(
        select(SharingAgreement).where(active_on(day)).order_by(*rules.AGREEMENT_PREFERENCE)
    ):
        covered = session.scalars(
            select(Resource.id).where(
                Resource.unit_id == agreement.lender_unit_id,
                Resource.retired_at.is_(None),
                select(SharingAgreement.id)
                .where(SharingAgreement.id == agreement.id, covers())
                .exists(),
            )
        ).all()
        for resource_id in covered:
            by_pair.setdefault((resource_id, agreement.borrower_unit_id), agreement)
        out.append(
            scheduling.Agreement(
                lender=str(agreement.lender_unit_id),
                borrower=str(agreement.borrower_unit_id),
                resource_ids=sorted(str(c) for c in covered),
                needs_approval=agreement.requires_approval,
            )
        )
    return Loans(by_pair=by_pair, agreements=out)


def _matches(resource: Resource, requirement: Requirement) -> bool:
    if requirement.kind == RequirementKind.RESOURCE.value:
        return resource.id == requirement.resource_id
    if requirement.kind == RequirementKind.DEVICE_TYPE.value:
        return resource.device_type_id == requirement.device_type_id
    return any(
        s.skill_id == requirement.skill_id and s.level >= requirement.min_level
        for s in resource.skills
    )


class ResourceIndex:
    """Active resources by skill (highest level first), device type and id, so a request's
    candidates cost what they are, not a scan of the catalog (10,000 requests x 1,800
    resources is 18 million checks)."""

    def __init__(self, resources: list[Resource]) -> None:
        self.position = {r.id: n for n, r in enumerate(resources)}
        self._by_skill: dict[str, list[tuple[int, Resource]]] = {}
        self._by_type: dict[str, list[Resource]] = {}
        self._by_id: dict[str, Resource] = {}
        for r in resources:
            self._by_id[str(r.id)] = r
            for s in r.skills:
                self._by_skill.setdefault(str(s.skill_id), []).append((s.level, r))
            if r.device_type_id is not None:
                self._by_type.setdefault(str(r.device_type_id), []).append(r)
        for holders in self._by_skill.values():
            holders.sort(key=lambda lr: -lr[0])

    def fitting(self, q: scheduling.Requirement) -> list[Resource]:
        """Resources that fit the optimizer's requirement ``q`` (as ``_fits`` says)."""
        if q.resource_id is not None:
            found = self._by_id.get(q.resource_id)
            return [] if found is None else [found]
        if q.device_type is not None:
            return list(self._by_type.get(q.device_type, []))
        out = []
        for level, r in self._by_skill.get(q.skill or "", []):
            if level < q.min_level:
                break
            out.append(r)
        return out

    def candidates(self, requirements: list[scheduling.Requirement]) -> list[Resource]:
        """Resources that fit some of ``requirements``, in catalog order."""
        found = {r.id: r for q in requirements for r in self.fitting(q)}
        return sorted(found.values(), key=lambda r: self.position[r.id])


def operator_skill(devices: Iterable[Resource]) -> uuid.UUID | None:
    """The operator skill the devices need (the most common one, if they differ)."""
    skills = Counter(d.operator_skill_id for d in devices if d.operator_skill_id is not None)
    return skills.most_common(1)[0][0] if skills else None


def requirements_of(
    request: Request, resources: list[Resource], index: ResourceIndex | None = None
) -> tuple[list[scheduling.Requirement], list[Role]]:
    """The optimizer's requirements of ``request``, operators included, and their roles.

    Roles are what apply matches the planned resources against: one per requirement, then
    one per operator needed (device requirements whose devices need an operator skill).
    With ``index`` (of ``resources``), a requirement's devices are looked up, not scanned.
    """
    out: list[scheduling.Requirement] = []
    roles: list[Role] = []
    for q in request.requirements:
        out.append(_requirement(q))
        roles.append(Role(q.id, q.quantity, requirement=q))
    for q in request.requirements:
        if q.kind == RequirementKind.SKILL.value:
            continue
        devices = (
            (r for r in resources if _matches(r, q))
            if index is None
            else (r for r in index.fitting(_requirement(q)) if _matches(r, q))
        )
        skill = operator_skill(devices)
        if skill is None:
            continue
        need = q.quantity
        if request.operator_id is not None:
            out.append(scheduling.Requirement(resource_id=str(request.operator_id)))
            roles.append(Role(q.id, 1, resource_id=request.operator_id, operator=True))
            need -= 1
        if need:
            out.append(scheduling.Requirement(skill=str(skill), min_level=1, quantity=need))
            roles.append(Role(q.id, need, skill_id=skill, operator=True))
    return out, roles


@dataclass
class Role:
    """A part a planned resource plays in a request: a requirement, or an operator for one."""

    requirement_id: uuid.UUID
    quantity: int
    requirement: Requirement | None = None
    skill_id: uuid.UUID | None = None
    resource_id: uuid.UUID | None = None
    operator: bool = False

    def fits(self, resource: Resource) -> bool:
        """Whether ``resource`` can play this role."""
        if self.requirement is not None:
            return _matches(resource, self.requirement)
        if self.resource_id is not None:
            return resource.id == self.resource_id
        return resource.kind == ResourceKind.EXPERT.value and any(
            s.skill_id == self.skill_id for s in resource.skills
        )


def _requirement(q: Requirement) -> scheduling.Requirement:
    if q.kind == RequirementKind.SKILL.value:
        return scheduling.Requirement(
            skill=str(q.skill_id), min_level=q.min_level, quantity=q.quantity
        )
    if q.kind == RequirementKind.DEVICE_TYPE.value:
        return scheduling.Requirement(device_type=str(q.device_type_id), quantity=q.quantity)
    return scheduling.Requirement(resource_id=str(q.resource_id), quantity=1)


def assign_roles(roles: list[Role], resources: list[Resource]) -> dict[uuid.UUID, Role] | None:
    """Each planned resource's role (a bipartite matching), or None when they cannot serve."""
    slots = [role for role in roles for _ in range(role.quantity)]
    owner: dict[int, uuid.UUID] = {}

    def augment(resource: Resource, seen: set[int]) -> bool:
        for i, role in enumerate(slots):
            if i in seen or not role.fits(resource):
                continue
            seen.add(i)
            other = owner.get(i)
            if other is None or augment(by_id[other], seen):
                owner[i] = resource.id
                return True
        return False

    by_id = {r.id: r for r in resources}
    for resource in resources:
        if not augment(resource, set()):
            return None
    return {rid: slots[i] for i, rid in owner.items()}


def costs_of(
    request: Request,
    resources: list[Resource],
    requirements: list[scheduling.Requirement],
    agreements: dict[Pair, SharingAgreement],
    days: list[date],
    index: ResourceIndex | None = None,
) -> dict[str, int]:
    """What serving ``request`` with each resource that may serve it costs (the ledger's price).

    With ``index`` (of ``resources``), only the resources that fit a requirement are priced:
    the work grows with requests x eligible resources, not with the whole catalog.
    """
    out: dict[str, int] = {}
    for resource in resources if index is None else index.candidates(requirements):
        own = resource.unit_id == request.unit_id
        agreement = agreements.get((resource.id, request.unit_id))
        if not own and agreement is None:
            continue
        if not any(_fits(resource, q) for q in requirements):
            continue
        out[str(resource.id)] = max(
            price_of(resource, agreement, request.duration_minutes, own, day).amount
            for day in _pricing_days(agreement, days)
        )
    return out


def _fits(resource: Resource, q: scheduling.Requirement) -> bool:
    if q.resource_id is not None:
        return str(resource.id) == q.resource_id
    if q.device_type is not None:
        return str(resource.device_type_id) == q.device_type
    return any(str(s.skill_id) == q.skill and s.level >= q.min_level for s in resource.skills)


def _pricing_days(agreement: SharingAgreement | None, days: list[date]) -> list[date]:
    dated = agreement is not None and any(
        e.get("effective_from") or e.get("effective_until") for e in agreement.rate_card or []
    )
    return days if dated else days[:1]


def start_days(window: tuple[datetime, datetime], minutes: int) -> list[date]:
    """The UTC dates on which a booking of ``minutes`` inside ``window`` may start."""
    first, last = window[0], window[1] - timedelta(minutes=minutes)
    if last < first:
        return [first.date()]
    return [first.date() + timedelta(days=i) for i in range((last.date() - first.date()).days + 1)]


def cap_windows(
    session: Session,
    resource: Resource,
    borrowers: Iterable[uuid.UUID],
    agreements: dict[Pair, SharingAgreement],
    clock: Clock,
    horizon: int,
    exclude: list[uuid.UUID],
) -> list[scheduling.CapWindow]:
    """The resource's calendar-month caps over ``span`` as capacity windows (net of bookings)."""
    span = (clock.start, clock.instant(horizon))
    caps = list(rules.lending_caps(session, resource, *span, exclude))
    agreement_ends = []
    for borrower in borrowers:
        agreement = agreements.get((resource.id, borrower))
        if agreement is None:
            continue
        caps.extend(rules.agreement_caps(session, resource, agreement, *span, exclude))
        if agreement.valid_until is not None:
            ends = datetime.combine(agreement.valid_until + timedelta(days=1), time(0), UTC)
            if ends < span[1]:
                agreement_ends.append(rules.MonthlyCap("agreement_end", (ends, span[1]), 0, 0, borrower))
    out = []
    for cap in [*caps, *agreement_ends]:
        # Widened to whole slots: a slot that meets the month counts wholly in it.
        start, end = clock.floor(cap.month[0]), min(horizon, clock.ceil(cap.month[1]))
        if start >= end:
            continue
        out.append(
            scheduling.CapWindow(
                start=start,
                end=end,
                limit=max(0, cap.allowed - cap.used) // clock.minutes,
                borrowers=None if cap.borrower is None else [str(cap.borrower)],
            )
        )
    return out


def load_resources(session: Session) -> list[Resource]:
    """Every active resource, with skills and device type."""
    return list(
        session.scalars(
            select(Resource)
            .options(selectinload(Resource.skills), selectinload(Resource.device_type))
            .where(Resource.retired_at.is_(None))
            .order_by(Resource.id)
        )
    )
