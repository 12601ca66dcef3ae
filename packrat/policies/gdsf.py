"""GreedyDual-Size-Frequency (Cherkasova 1998): the seed's size-aware idea.

Priority = age + hits / size, so of two equally popular files the larger
goes first; ``age`` becomes each victim's priority, so keys that stop being
hit eventually fall below newcomers.  With the default ``size_exponent=1``
it is libCacheSim's ``GDSF`` except that libCacheSim inserts before it
evicts, so a newcomer with the lowest priority is dropped at once (an
implicit admission filter; see docs/policies.md).  A smaller exponent
weighs size less, trading object hits for byte hits (``s3gdsf`` uses 0.6);
``hit_cap`` bounds the hits counted, so old popularity fades sooner.
"""

from __future__ import annotations

from packrat.policies.priority import PriorityPolicy


class GDSF(PriorityPolicy):
    """Evicts the key with the fewest hits per byte, aged."""

    name = "gdsf"

    def __init__(self, size_exponent: float = 1.0, hit_cap: int | None = None, **kwargs) -> None:
        # Hits beyond the cap are never read, so a byte counts them when the cap fits in one.
        capped = hit_cap is not None and hit_cap < 255
        super().__init__(hits_typecode="B" if capped else "I", **kwargs)
        self.size_exponent = size_exponent
        self.hit_cap = hit_cap

    def value(self, hits: int, size: int) -> float:
        if self.hit_cap is not None:
            hits = min(hits, self.hit_cap)
        # libCacheSim scales by 1e6 too; the same scale keeps float ties alike.
        return hits * 1.0e6 / max(size, 1) ** self.size_exponent
