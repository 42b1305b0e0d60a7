"""Who may serve what, answered from indexes: work grows with the answers, not the catalog.

A 10,000-request run over 1,800 resources and 3,000 agreements asks "which resources match
this requirement, and which of those may this unit borrow?" tens of thousands of times.
Scanning every resource and every agreement for each question is quadratic; here the
resources are indexed by skill (sorted by level), device type and id, the agreements by
(borrower, lender), and every answer is memoised: per requirement (matching), per
(requirement, borrowing unit) (eligible), per (resource, unit) (the agreement decision).

The plain definitions stay in `scheduling.eligibility` (`matches`, `may_borrow`); the tests
check these indexes against a deliberately naive reference.
"""

from __future__ import annotations

from dataclasses import dataclass

from scheduling.schemas import Agreement, Instance, Requirement, Resource

RequirementKey = tuple[str | None, int, str | None, str | None]
"""(skill, min level, device type, resource id): what a requirement asks for."""


def requirement_key(requirement: Requirement) -> RequirementKey:
    """What `requirement` asks for, quantity aside (requirements alike share answers)."""
    return (
        requirement.skill,
        requirement.min_level,
        requirement.device_type,
        requirement.resource_id,
    )


@dataclass(frozen=True)
class Eligible:
    """The resources a unit may use for one kind of requirement."""

    matching: list[int]
    """Resources (indices, ascending) that have what it asks for, agreements aside."""
    eligible: list[int]
    """Those the unit may use (its own, or borrowed under an agreement), ascending."""
    approval: frozenset[int]
    """Those lent only under agreements that need the lender's approval."""


class CatalogIndex:
    """Resources by skill, device type and id; agreements by (borrower, lender)."""

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self._by_skill: dict[str, list[tuple[int, int]]] = {}
        self._by_type: dict[str, list[int]] = {}
        self._by_id: dict[str, int] = {}
        for k, res in enumerate(instance.resources):
            self._by_id.setdefault(res.id, k)
            for skill, level in res.skills.items():
                self._by_skill.setdefault(skill, []).append((level, k))
            if res.kind == "device" and res.device_type is not None:
                self._by_type.setdefault(res.device_type, []).append(k)
        for holders in self._by_skill.values():
            holders.sort(key=lambda lk: (-lk[0], lk[1]))  # highest level first
        self._pairs: dict[tuple[str, str], list[Agreement]] = {}
        for agreement in instance.agreements:
            self._pairs.setdefault((agreement.borrower, agreement.lender), []).append(agreement)
        self._listed: dict[int, frozenset[str]] = {}
        """id(agreement) -> its resource ids as a set (lists are slow to search)."""
        self._matching: dict[RequirementKey, list[int]] = {}
        self._eligible: dict[tuple[RequirementKey, str], Eligible] = {}
        self._decisions: dict[tuple[int, str], tuple[bool, bool]] = {}

    def matching(self, requirement: Requirement) -> list[int]:
        """Resources that have what `requirement` asks for, ascending (agreements aside)."""
        key = requirement_key(requirement)
        found = self._matching.get(key)
        if found is None:
            found = self._match(requirement)
            self._matching[key] = found
        return found

    def _match(self, requirement: Requirement) -> list[int]:
        if requirement.resource_id is not None:
            k = self._by_id.get(requirement.resource_id)
            return [] if k is None else [k]
        if requirement.device_type is not None:
            return list(self._by_type.get(requirement.device_type, []))
        found = []
        for level, k in self._by_skill.get(requirement.skill or "", []):
            if level < requirement.min_level:
                break  # sorted by level, highest first
            found.append(k)
        return sorted(found)

    def eligible(self, requirement: Requirement, unit: str) -> Eligible:
        """What `unit` may use for `requirement` (memoised per requirement kind and unit)."""
        key = (requirement_key(requirement), unit)
        found = self._eligible.get(key)
        if found is None:
            matching = self.matching(requirement)
            ok: list[int] = []
            approval: set[int] = set()
            for k in matching:
                allowed, needs = self.may_borrow(k, unit)
                if allowed:
                    ok.append(k)
                    if needs:
                        approval.add(k)
            found = Eligible(matching, ok, frozenset(approval))
            self._eligible[key] = found
        return found

    def may_borrow(self, k: int, unit: str) -> tuple[bool, bool]:
        """(allowed, needs approval) for `unit` using resource k; the home unit needs none.

        Allowed under some agreement of the (unit, home unit) pair that covers it; approval
        is needed only when every covering agreement asks for it.
        """
        key = (k, unit)
        decided = self._decisions.get(key)
        if decided is None:
            decided = self._decide(self.instance.resources[k], unit)
            self._decisions[key] = decided
        return decided

    def _decide(self, resource: Resource, unit: str) -> tuple[bool, bool]:
        if resource.home_unit == unit:
            return True, False
        allowed = False
        approval = True
        for agreement in self._pairs.get((unit, resource.home_unit), []):
            if agreement.kinds is not None and resource.kind not in agreement.kinds:
                continue
            if agreement.resource_ids is not None and resource.id not in self._ids(agreement):
                continue
            allowed = True
            approval = approval and agreement.needs_approval
        return allowed, allowed and approval

    def _ids(self, agreement: Agreement) -> frozenset[str]:
        ids = self._listed.get(id(agreement))
        if ids is None:
            ids = self._listed[id(agreement)] = frozenset(agreement.resource_ids or ())
        return ids
