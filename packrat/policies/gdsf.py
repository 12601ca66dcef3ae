"""GreedyDual-Size-Frequency (Cherkasova 1998): the seed's size-aware idea.

Priority = age + hits / size, so of two equally popular files the larger
goes first; ``age`` becomes each victim's priority, so keys that stop being
hit eventually fall below newcomers.  Matches libCacheSim's ``GDSF``.
"""

from __future__ import annotations

from packrat.policies.priority import PriorityPolicy


class GDSF(PriorityPolicy):
    """Evicts the key with the fewest hits per byte, aged."""

    name = "gdsf"

    def value(self, hits: int, size: int) -> float:
        # libCacheSim scales by 1e6 too; the same scale keeps float ties alike.
        return hits * 1.0e6 / max(size, 1)
