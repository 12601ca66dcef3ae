"""SIEVE (Zhang et al., NSDI'24): a FIFO queue with a hand and one visited bit.

Hits only set a bit, so they are cheaper than LRU's move-to-front; the hand
sweeps from the oldest entry toward the newest, clearing bits and evicting
the first unvisited entry, so new objects that are never reused leave early.
Mirrors libCacheSim's ``Sieve.c`` so the two agree on the same trace.
"""

from __future__ import annotations

from collections.abc import Hashable

from packrat.policies.base import Policy


class _Node:
    __slots__ = ("key", "newer", "older", "visited")

    def __init__(self, key: Hashable) -> None:
        self.key = key
        self.visited = False
        self.newer: _Node | None = None
        self.older: _Node | None = None


class Sieve(Policy):
    """Evicts the first unvisited key the hand finds, oldest first."""

    name = "sieve"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._nodes: dict[Hashable, _Node] = {}
        self._newest: _Node | None = None
        self._oldest: _Node | None = None
        self._hand: _Node | None = None

    def _on_insert(self, key: Hashable, size: int) -> None:
        node = _Node(key)
        self._nodes[key] = node
        node.older = self._newest
        if self._newest is None:
            self._oldest = node
        else:
            self._newest.newer = node
        self._newest = node

    def _on_access(self, key: Hashable) -> None:
        self._nodes[key].visited = True

    def _on_remove(self, key: Hashable) -> None:
        self._unlink(self._nodes.pop(key))

    def _pop_victim(self) -> Hashable:
        node = self._hand or self._oldest
        while node.visited:
            node.visited = False
            node = node.newer or self._oldest
        del self._nodes[node.key]
        self._hand = node.newer
        self._unlink(node)
        return node.key

    def _unlink(self, node: _Node) -> None:
        if node is self._hand:
            self._hand = node.newer
        if node.newer is None:
            self._newest = node.older
        else:
            node.newer.older = node.older
        if node.older is None:
            self._oldest = node.newer
        else:
            node.older.newer = node.newer
