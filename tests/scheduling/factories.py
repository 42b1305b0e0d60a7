"""Small factories for scheduling tests: callables with defaults, override what matters."""

from __future__ import annotations

from typing import Any

from scheduling import Instance, Request, Requirement, Resource


def expert(id: str = "e1", unit: str = "u1", **params: Any) -> Resource:
    """An expert with skill `py` at level 3 unless told otherwise."""
    params.setdefault("skills", {"py": 3})
    return Resource(id=id, kind="expert", home_unit=unit, **params)


def device(id: str = "d1", unit: str = "u1", device_type: str = "scope", **params: Any) -> Resource:
    """A device of a type."""
    return Resource(id=id, kind="device", home_unit=unit, device_type=device_type, **params)


def need(skill: str = "py", level: int = 1, quantity: int = 1) -> Requirement:
    """A skill requirement."""
    return Requirement(skill=skill, min_level=level, quantity=quantity)


def request(id: str = "r1", unit: str = "u1", **params: Any) -> Request:
    """A request for one `py` expert for 4 units, window = horizon."""
    params.setdefault("requirements", [need()])
    params.setdefault("project", "p1")
    params.setdefault("duration", 4)
    return Request(id=id, unit=unit, **params)


def instance(resources: list[Resource], requests: list[Request], **params: Any) -> Instance:
    """An instance over a 24-unit horizon."""
    params.setdefault("horizon", 24)
    return Instance(resources=resources, requests=requests, **params)


SOLVE = {"time_limit_s": 5.0, "num_workers": 1, "seed": 0}
"""Deterministic solver settings for tests."""
