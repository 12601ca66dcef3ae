"""S3-GDSF: S3-FIFO's one-hit-wonder filter in front of a size-aware main cache.

Measured on the NASA and webcachesim traces (docs/policies.md), no single
published policy wins both miss ratios: GDSF keeps many small files (fewest
object misses) but throws out popular large ones (more byte misses), while
S3-FIFO and SIEVE keep popular objects of any size and drop one-hit wonders
early (fewest byte misses).  This policy takes each part where it wins:

* new objects wait in a small FIFO (10 % of the bytes); one hit there
  promotes them, otherwise they leave and are remembered in a ghost list;
* objects larger than that FIFO are not admitted (as in S3-FIFO), so one
  big download cannot flush everything on probation;
* promoted objects and ghost hits live in a GDSF main cache whose priority
  is hits / size ** 0.6: size still counts, but less than in GDSF;
* the ghost is bounded by entries (4 per cached object), not bytes, so a
  few large evictions do not make it forget many small objects.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from packrat.policies.base import Policy
from packrat.policies.gdsf import GDSF


class S3GDSF(Policy):
    """Small probation FIFO + ghost, then GDSF with a softened size penalty."""

    name = "s3gdsf"

    def __init__(
        self,
        small_ratio: float = 0.1,
        ghost_ratio: float = 4.0,
        size_exponent: float = 0.6,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.small_ratio = small_ratio
        self.ghost_ratio = ghost_ratio
        self._small: OrderedDict[Hashable, int] = OrderedDict()  # key -> hits
        self._small_used = 0
        self._ghost: OrderedDict[Hashable, None] = OrderedDict()
        self._main = GDSF(size_exponent=size_exponent, clock=self.clock)

    def admits(self, size: int) -> bool:
        return self.capacity is None or size < self.capacity * self.small_ratio

    def _on_insert(self, key: Hashable, size: int) -> None:
        if key in self._ghost:
            del self._ghost[key]
            self._main.insert(key, size)
        else:
            self._small[key] = 0
            self._small_used += size

    def _on_access(self, key: Hashable) -> None:
        if key in self._small:
            self._small[key] += 1
        else:
            self._main.access(key)

    def _on_remove(self, key: Hashable) -> None:
        if key in self._small:
            del self._small[key]
            self._small_used -= self.sizes.get(key, 0)
        else:
            self._main.remove(key)

    def _pop_victim(self) -> Hashable:
        while True:
            small_over = (
                self.capacity is None or self._small_used > self.capacity * self.small_ratio
            )
            if not self._small or (self._main and not small_over):
                return self._main.choose_victims(1)[0][0]
            key, hits = self._small.popitem(last=False)
            size = self.sizes[key]
            self._small_used -= size
            if hits:
                self._main.insert(key, size)
                continue
            self._ghost[key] = None
            while len(self._ghost) > max(len(self.sizes), 1) * self.ghost_ratio:
                self._ghost.popitem(last=False)
            return key
