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

from packrat.policies.base import Policy
from packrat.policies.ghost import Ghost
from packrat.structures.links import Links, Queue

SMALL, MAIN = 1, 2  # ``_where`` of a tracked slot
MAX_HITS = 255  # hits saturate here: only ``< promote_at`` and ``min(hits, 3)`` are asked


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
        self._links = Links()
        self._small = Queue(self._links)
        self._main = Queue(self._links)
        self._where = bytearray()
        self._hits = bytearray()
        self._ghost = Ghost()  # key fingerprints; their sizes
        self._small_used = 0
        self._main_used = 0
        self._has_evicted = False

    def _resize(self, length: int) -> None:
        super()._resize(length)
        self._links.resize(length)
        for column in (self._where, self._hits):
            column.extend(bytes(length - len(column)))

    def _small_capacity(self) -> int | None:
        return None if self.capacity is None else int(self.capacity * self.small_ratio)

    def admits(self, size: int) -> bool:
        small = self._small_capacity()
        return small is None or size < small

    def _on_insert(self, slot: int, size: int) -> None:
        small = self._small_capacity()
        self._hits[slot] = 0
        from_ghost = bool(self._ghost.count) and self._ghost.take(self.ident(slot)) is not None
        warming = not self._has_evicted and small is not None and self._small_used >= small
        if from_ghost or warming:
            self._to_main(slot, size)
        else:
            self._where[slot] = SMALL
            self._small.push(slot)
            self._small_used += size

    def _to_main(self, slot: int, size: int) -> None:
        self._where[slot] = MAIN
        self._main.push(slot)
        self._main_used += size

    def _on_access(self, slot: int) -> None:
        if self._hits[slot] < MAX_HITS:
            self._hits[slot] += 1

    def _on_remove(self, slot: int) -> None:
        size = self.sizes[slot]
        if self._where[slot] == SMALL:
            self._small.remove(slot)
            self._small_used -= size
        else:
            self._main.remove(slot)
            self._main_used -= size
        self._where[slot] = 0

    def _pop_victim(self) -> int:
        self._has_evicted = True
        while True:
            main_over = self.capacity is not None and self._main_used > self.capacity - (
                self._small_capacity() or 0
            )
            if main_over or not self._small:
                return self._evict_main()
            slot = self._evict_small()
            if slot is not None:
                return slot

    def _evict_small(self) -> int | None:
        """Move hit slots to main until one leaves; ``None`` if none did."""
        while self._small:
            slot = self._small.pop()
            size = self.sizes[slot]
            self._small_used -= size
            if self._hits[slot] < self.promote_at:
                self._where[slot] = 0
                self._remember(self.ident(slot), size)
                return slot
            self._hits[slot] = 0
            self._to_main(slot, size)
        return None

    def _evict_main(self) -> int:
        while True:
            slot = self._main.pop()
            hits = self._hits[slot]
            if hits == 0:
                self._main_used -= self.sizes[slot]
                self._where[slot] = 0
                return slot
            self._hits[slot] = min(hits, 3) - 1
            self._main.push(slot)

    def _remember(self, ident: int, size: int) -> None:
        """Put an evicted key in the ghost FIFO, bounded in bytes."""
        limit = int((self.capacity or 0) * self.ghost_ratio)
        ghost = self._ghost
        if size > limit or ident in ghost:
            return
        while ghost.used + size > limit:
            ghost.pop_oldest()
        ghost.push(ident, size)
