"""S3-FIFO (Yang et al., SOSP'23): a small probation FIFO, a main FIFO, a ghost.

New objects enter the small queue (10 % of the bytes); most are never
requested again and leave from there, remembered only in the ghost queue.
Objects hit while on probation move to the main queue, a FIFO with a 2-bit
reuse counter.  A miss that hits the ghost goes straight to main.

This follows libCacheSim's ``S3FIFO.c`` (the version the reference figures
were measured with), including two details that matter for miss ratios:

* promotion from the small queue needs ``promote_at`` hits (2 by default);
* an object at least as large as the small queue is not admitted, since it
  would flush every other object on probation.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from packrat.policies.base import Policy


class S3FIFO(Policy):
    """Evicts one-hit wonders from a small FIFO, the rest from a 2-bit CLOCK."""

    name = "s3fifo"

    def __init__(
        self,
        small_ratio: float = 0.1,
        ghost_ratio: float = 0.9,
        promote_at: int = 2,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.small_ratio = small_ratio
        self.ghost_ratio = ghost_ratio
        self.promote_at = promote_at
        self._small: OrderedDict[Hashable, int] = OrderedDict()  # key -> hits
        self._main: OrderedDict[Hashable, int] = OrderedDict()
        self._ghost: OrderedDict[Hashable, int] = OrderedDict()  # key -> size
        self._small_used = 0
        self._main_used = 0
        self._ghost_used = 0
        self._has_evicted = False

    def _small_capacity(self) -> int | None:
        return None if self.capacity is None else int(self.capacity * self.small_ratio)

    def admits(self, size: int) -> bool:
        small = self._small_capacity()
        return small is None or size < small

    def _on_insert(self, key: Hashable, size: int) -> None:
        small = self._small_capacity()
        ghost_size = self._ghost.pop(key, None)
        if ghost_size is not None:
            self._ghost_used -= ghost_size
            self._to_main(key, size)
        elif not self._has_evicted and small is not None and self._small_used >= small:
            self._to_main(key, size)
        else:
            self._small[key] = 0
            self._small_used += size

    def _to_main(self, key: Hashable, size: int) -> None:
        self._main[key] = 0
        self._main_used += size

    def _on_access(self, key: Hashable) -> None:
        if key in self._small:
            self._small[key] += 1
        else:
            self._main[key] += 1

    def _on_remove(self, key: Hashable) -> None:
        size = self.sizes.get(key, 0)
        if self._small.pop(key, None) is not None:
            self._small_used -= size
        else:
            del self._main[key]
            self._main_used -= size

    def _pop_victim(self) -> Hashable:
        self._has_evicted = True
        while True:
            main_over = self.capacity is not None and self._main_used > self.capacity - (
                self._small_capacity() or 0
            )
            if main_over or not self._small:
                return self._evict_main()
            key = self._evict_small()
            if key is not None:
                return key

    def _evict_small(self) -> Hashable | None:
        """Move hit objects to main until one leaves; ``None`` if none did."""
        while self._small:
            key, hits = self._small.popitem(last=False)
            size = self.sizes[key]
            self._small_used -= size
            if hits < self.promote_at:
                self._remember(key, size)
                return key
            self._to_main(key, size)
        return None

    def _evict_main(self) -> Hashable:
        while True:
            key, hits = self._main.popitem(last=False)
            if hits == 0:
                self._main_used -= self.sizes[key]
                return key
            self._main[key] = min(hits, 3) - 1

    def _remember(self, key: Hashable, size: int) -> None:
        """Put an evicted key in the ghost FIFO, bounded in bytes."""
        limit = int((self.capacity or 0) * self.ghost_ratio)
        if size > limit or key in self._ghost:
            return
        while self._ghost_used + size > limit:
            self._ghost_used -= self._ghost.popitem(last=False)[1]
        self._ghost[key] = size
        self._ghost_used += size
