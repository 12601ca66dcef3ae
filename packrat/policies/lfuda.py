"""LFU with Dynamic Aging (Arlitt et al. 2000): LFU that forgets old popularity.

Priority = age + hits, ignoring size: it keeps the most requested bytes,
the opposite trade-off from GDSF.
"""

from __future__ import annotations

from packrat.policies.priority import PriorityPolicy


class LFUDA(PriorityPolicy):
    """Evicts the key with the fewest hits, aged."""

    name = "lfuda"

    def value(self, hits: int, size: int) -> float:
        return float(hits)
