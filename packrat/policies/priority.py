"""A base for policies that evict the slot with the lowest priority.

Entries are ordered by ``(priority, seq)``: ``seq`` counts placements, so
ties go to the entry placed first, as in libCacheSim's ``abstractRank``.
Each entry is one Python int, ``priority``'s IEEE bits (non-negative
priorities order as their bits do), then ``seq``, then the slot, in a
``SortedList``: an update removes the old entry and adds the new one, so
no stale entry waits in a heap and no rebuild ever holds the loop.
"""

from __future__ import annotations

import struct
from abc import abstractmethod
from array import array

from sortedcontainers import SortedList

from packrat.policies.base import Policy, grow

_SLOT_BITS = 32
_SEQ_BITS = 64  # never wraps; the int stays in 48 bytes (six 30-bit digits)
_SLOT_MASK = (1 << _SLOT_BITS) - 1
_DOUBLE = struct.Struct("<d")
_BITS = struct.Struct("<q")


def _bits(priority: float) -> int:
    return _BITS.unpack(_DOUBLE.pack(priority))[0]


class PriorityPolicy(Policy):
    """Greedy-Dual family: priority = ``age`` + a per-slot value; ``age`` rises on eviction."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.age = 0.0
        self._hits = array("q")
        self._priority = array("d")
        self._seq = array("q")  # -1: not queued
        self._queue: SortedList = SortedList()
        self._next_seq = 0

    @abstractmethod
    def value(self, hits: int, size: int) -> float:
        """What keeping an object is worth, before ageing."""

    def _resize(self, length: int) -> None:
        super()._resize(length)
        grow(self._hits, length)
        grow(self._priority, length)
        grow(self._seq, length, -1)

    def _entry(self, slot: int) -> int:
        return (
            (_bits(self._priority[slot]) << (_SEQ_BITS + _SLOT_BITS))
            | (self._seq[slot] << _SLOT_BITS)
            | slot
        )

    def _push(self, slot: int) -> None:
        """(Re)place ``slot`` at ``age + value``."""
        if self._seq[slot] >= 0:
            self._queue.remove(self._entry(slot))
        self._priority[slot] = self.age + self.value(self._hits[slot], self.sizes[slot])
        self._seq[slot] = self._next_seq
        self._next_seq += 1
        self._queue.add(self._entry(slot))

    def _pop(self) -> int:
        """Take the lowest entry off the queue; ``age`` becomes its priority."""
        slot = self._queue.pop(0) & _SLOT_MASK
        self._seq[slot] = -1
        self.age = self._priority[slot]
        return slot

    def _on_insert(self, slot: int, size: int) -> None:
        self._hits[slot] = 1
        self._push(slot)

    def _on_access(self, slot: int) -> None:
        self._hits[slot] += 1
        self._push(slot)

    def _on_remove(self, slot: int) -> None:
        self._queue.remove(self._entry(slot))
        self._seq[slot] = -1

    def _pop_victim(self) -> int:
        return self._pop()
