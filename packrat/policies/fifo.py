"""First in, first out: the baseline every FIFO-family policy improves on."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from packrat.policies.base import Policy


class FIFO(Policy):
    """Evicts the key inserted first; hits change nothing."""

    name = "fifo"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._order: OrderedDict[Hashable, None] = OrderedDict()

    def _on_insert(self, key: Hashable, size: int) -> None:
        self._order[key] = None

    def _on_access(self, key: Hashable) -> None:
        pass

    def _on_remove(self, key: Hashable) -> None:
        del self._order[key]

    def _pop_victim(self) -> Hashable:
        key, _ = self._order.popitem(last=False)
        return key
