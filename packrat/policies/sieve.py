"""SIEVE (Zhang et al., NSDI'24): a FIFO queue with a hand and one visited bit.

Hits only set a bit, so they are cheaper than LRU's move-to-front; the hand
sweeps from the oldest entry toward the newest, clearing bits and evicting
the first unvisited entry, so new objects that are never reused leave early.
Mirrors libCacheSim's ``Sieve.c`` so the two agree on the same trace.
"""

from __future__ import annotations

from packrat.policies.base import Policy
from packrat.structures.links import NONE, Links, Queue


class Sieve(Policy):
    """Evicts the first unvisited slot the hand finds, oldest first."""

    name = "sieve"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._links = Links()
        self._queue = Queue(self._links)  # head: oldest; ``next`` points to newer
        self._visited = bytearray()
        self._hand = NONE

    def _resize(self, length: int) -> None:
        super()._resize(length)
        self._links.resize(length)
        self._visited.extend(bytes(length - len(self._visited)))

    def _on_insert(self, slot: int, size: int) -> None:
        self._visited[slot] = 0
        self._queue.push(slot)

    def _on_access(self, slot: int) -> None:
        self._visited[slot] = 1

    def _on_remove(self, slot: int) -> None:
        self._unlink(slot)

    def _pop_victim(self) -> int:
        newer, visited = self._links.next, self._visited
        slot = self._hand if self._hand != NONE else self._queue.head
        while visited[slot]:
            visited[slot] = 0
            slot = newer[slot] if newer[slot] != NONE else self._queue.head
        self._hand = newer[slot]
        self._unlink(slot)
        return slot

    def _unlink(self, slot: int) -> None:
        if slot == self._hand:
            self._hand = self._links.next[slot]
        self._queue.remove(slot)
