"""Least recently used: the default."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from packrat.policies.base import Policy


class LRU(Policy):
    """Evicts the key whose last use is oldest."""

    name = "lru"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._order: OrderedDict[Hashable, None] = OrderedDict()

    def _on_insert(self, key: Hashable, size: int) -> None:
        self._order[key] = None

    def _on_access(self, key: Hashable) -> None:
        self._order.move_to_end(key)

    def _on_remove(self, key: Hashable) -> None:
        del self._order[key]

    def _pop_victim(self) -> Hashable:
        key, _ = self._order.popitem(last=False)
        return key
