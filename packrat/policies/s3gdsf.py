"""S3-GDSF: S3-FIFO's one-hit-wonder filter in front of a size-aware main cache.

Measured on three real traces (docs/policies.md), no published policy wins
both miss ratios: GDSF keeps many small files (fewest object misses) but
throws out popular large ones (more byte misses), while S3-FIFO and SIEVE
keep popular objects of any size and drop one-hit wonders early (fewest byte
misses).  This policy takes each part where it wins:

* new objects wait in a small FIFO (6 % of the bytes: with 10, 7 or 5 %
  more goal cells are missed, docs/policies.md); one hit there
  promotes them to the main cache, otherwise they leave and are remembered
  in a ghost FIFO; a miss that hits the ghost goes straight to main;
* the ghost remembers up to twice the cache's bytes of evicted objects
  (bounding it by bytes, not entries, keeps block traces with a long reuse
  distance from flooding main through the ghost);
* the main cache is GDSF with priority ``age + min(hits, 3) / size ** 0.6``:
  size counts, but less than in GDSF, and hits are capped like S3-FIFO's
  2-bit counter so that objects popular long ago do not stay for ever;
* the server stores every upload that fits, so an object at least as large
  as the small FIFO (which S3-FIFO would refuse) is stored at the *head* of
  the small FIFO: it leaves first unless it is hit meanwhile, and it is
  not remembered by the ghost.  ``admits`` still refuses it, for the
  simulator's ``--admission policy`` (libCacheSim's semantics).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from packrat.policies.base import Policy
from packrat.policies.gdsf import GDSF


class S3GDSF(Policy):
    """Small probation FIFO + byte-bounded ghost, then GDSF with a softened size penalty."""

    name = "s3gdsf"

    def __init__(
        self,
        small_ratio: float = 0.06,
        ghost_ratio: float = 2.0,
        size_exponent: float = 0.6,
        hit_cap: int = 3,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.small_ratio = small_ratio
        self.ghost_ratio = ghost_ratio
        self._small: OrderedDict[Hashable, int] = OrderedDict()  # key -> hits
        self._small_used = 0
        self._ghost: OrderedDict[Hashable, int] = OrderedDict()  # key -> size
        self._ghost_used = 0
        self._main = GDSF(size_exponent=size_exponent, hit_cap=hit_cap, clock=self.clock)

    def _small_capacity(self) -> float | None:
        return None if self.capacity is None else self.capacity * self.small_ratio

    def _is_large(self, size: int) -> bool:
        small = self._small_capacity()
        return small is not None and size >= small

    def admits(self, size: int) -> bool:
        return not self._is_large(size)

    def _on_insert(self, key: Hashable, size: int) -> None:
        ghost_size = self._ghost.pop(key, None)
        if ghost_size is not None:
            self._ghost_used -= ghost_size
            self._main.insert(key, size)
            return
        self._small[key] = 0
        self._small_used += size
        if self._is_large(size):
            self._small.move_to_end(key, last=False)

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
        small = self._small_capacity()
        while True:
            small_over = small is None or self._small_used > small
            if not self._small or (self._main and not small_over):
                return self._main.choose_victims(1)[0][0]
            key, hits = self._small.popitem(last=False)
            size = self.sizes[key]
            self._small_used -= size
            if hits:
                self._main.insert(key, size)
                continue
            if not self._is_large(size):
                self._remember(key, size)
            return key

    def _remember(self, key: Hashable, size: int) -> None:
        """Put a key evicted from probation in the ghost FIFO, bounded in bytes."""
        self._ghost[key] = size
        self._ghost_used += size
        limit = (self.capacity or 0) * self.ghost_ratio
        while self._ghost_used > limit:
            self._ghost_used -= self._ghost.popitem(last=False)[1]
