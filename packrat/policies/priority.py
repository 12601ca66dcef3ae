"""A base for policies that evict the key with the lowest priority.

A binary heap with lazy deletion: an update pushes a fresh entry and the old
one is skipped when it surfaces, so every operation is O(log n).  The heap is
rebuilt when stale entries outnumber live ones, which keeps memory bounded.
Ties go to the entry pushed first, as in libCacheSim's ``abstractRank``.
"""

from __future__ import annotations

import heapq
from abc import abstractmethod
from collections.abc import Hashable
from itertools import count

from packrat.policies.base import Policy


class PriorityPolicy(Policy):
    """Greedy-Dual family: priority = ``age`` + a per-key value; ``age`` rises on eviction."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.age = 0.0
        self._hits: dict[Hashable, int] = {}
        self._live: dict[Hashable, tuple[float, int]] = {}
        self._heap: list[tuple[float, int, Hashable]] = []
        self._seq = count()

    @abstractmethod
    def value(self, hits: int, size: int) -> float:
        """What keeping an object is worth, before ageing."""

    def _push(self, key: Hashable) -> None:
        entry = (self.age + self.value(self._hits[key], self.sizes[key]), next(self._seq))
        self._live[key] = entry
        heapq.heappush(self._heap, (*entry, key))
        if len(self._heap) > 2 * len(self._live) + 64:
            self._heap = [(*entry, k) for k, entry in self._live.items()]
            heapq.heapify(self._heap)

    def _on_insert(self, key: Hashable, size: int) -> None:
        self._hits[key] = 1
        self._push(key)

    def _on_access(self, key: Hashable) -> None:
        self._hits[key] += 1
        self._push(key)

    def _on_remove(self, key: Hashable) -> None:
        del self._hits[key], self._live[key]

    def _pop_victim(self) -> Hashable:
        while True:
            priority, seq, key = heapq.heappop(self._heap)
            if self._live.get(key) == (priority, seq):
                del self._hits[key], self._live[key]
                self.age = priority
                return key
