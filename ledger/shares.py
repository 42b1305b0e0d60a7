"""Exact splits of an amount by weights: the parts always sum to the whole (no lost pennies)."""

from __future__ import annotations

from collections.abc import Sequence


def allocate(total: int, weights: Sequence[int]) -> list[int]:
    """Split ``total`` in proportion to non-negative integer ``weights`` (largest remainder).

    The parts sum to ``total`` exactly; ties go to the earlier weight, so the result is
    deterministic. All-zero weights give all-zero parts (and require ``total == 0`` to sum).
    A negative ``total`` is split as its absolute value, then negated.
    """
    if any(w < 0 for w in weights):
        raise ValueError("weights must be non-negative")
    whole = sum(weights)
    if whole == 0:
        return [0] * len(weights)
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    parts = [magnitude * w // whole for w in weights]
    remainders = [magnitude * w % whole for w in weights]
    left = magnitude - sum(parts)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        parts[i] += 1
    return [sign * p for p in parts]
