"""Least recently used: FIFO order, except that a hit moves the key to the back."""

from __future__ import annotations

from collections.abc import Hashable

from packrat.policies.fifo import FIFO


class LRU(FIFO):
    """Evicts the key whose last use is oldest."""

    name = "lru"

    def _on_access(self, key: Hashable) -> None:
        self._order.move_to_end(key)
