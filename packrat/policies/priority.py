"""A base for policies that evict the slot with the lowest priority.

Entries leave by priority, ties in the order they were placed, as in
libCacheSim's ``abstractRank``.  They live in a ``Ranking``
(``packrat.structures.ranking``): an update removes the old entry and adds
the new one, so no stale entry waits in a heap and no rebuild ever holds
the loop, in about 16 bytes an entry.
"""

from __future__ import annotations

from abc import abstractmethod
from array import array

from packrat.policies.base import Policy
from packrat.structures.columns import grow
from packrat.structures.ranking import Ranking


class PriorityPolicy(Policy):
    """Greedy-Dual family: priority = ``age`` + a per-slot value; ``age`` rises on eviction."""

    def __init__(self, hits_typecode: str = "I", **kwargs) -> None:
        super().__init__(**kwargs)
        self.age = 0.0
        self._hits = array(hits_typecode)  # by slot; counting stops at the column's maximum
        self._hits_max = (1 << 8 * self._hits.itemsize) - 1
        self._ranking = Ranking()

    @abstractmethod
    def value(self, hits: int, size: int) -> float:
        """What keeping an object is worth, before ageing."""

    def _resize(self, length: int) -> None:
        super()._resize(length)
        grow(self._hits, length)

    def _push(self, slot: int) -> None:
        """(Re)place ``slot`` at ``age + value``, after the entries of equal priority."""
        ranking = self._ranking
        if slot in ranking:
            ranking.remove(slot)
        ranking.add(self.age + self.value(self._hits[slot], self.sizes[slot]), slot)

    def _pop(self) -> int:
        """Take the lowest entry off the queue; ``age`` becomes its priority."""
        self.age, slot = self._ranking.pop_first()
        return slot

    def _on_insert(self, slot: int, size: int) -> None:
        self._hits[slot] = 1
        self._push(slot)

    def _count_hit(self, slot: int) -> None:
        if self._hits[slot] < self._hits_max:
            self._hits[slot] += 1

    def _on_access(self, slot: int) -> None:
        self._count_hit(slot)
        self._push(slot)

    def _on_remove(self, slot: int) -> None:
        self._ranking.remove(slot)

    def _pop_victim(self) -> int:
        return self._pop()
