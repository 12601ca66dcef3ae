"""Least recently used: FIFO order, except that a hit moves the slot to the back."""

from __future__ import annotations

from packrat.policies.fifo import FIFO


class LRU(FIFO):
    """Evicts the slot whose last use is oldest."""

    name = "lru"

    def _on_access(self, slot: int) -> None:
        self._order.move_to_end(slot)
