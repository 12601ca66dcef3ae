"""First in, first out: the baseline every FIFO-family policy improves on."""

from __future__ import annotations

from packrat.policies.base import Policy
from packrat.structures.links import Links, Queue


class FIFO(Policy):
    """Evicts the slot inserted first; hits change nothing."""

    name = "fifo"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._links = Links()
        self._order = Queue(self._links)

    def _resize(self, length: int) -> None:
        super()._resize(length)
        self._links.resize(length)

    def _on_insert(self, slot: int, size: int) -> None:
        self._order.push(slot)

    def _on_access(self, slot: int) -> None:
        pass

    def _on_remove(self, slot: int) -> None:
        self._order.remove(slot)

    def _pop_victim(self) -> int:
        return self._order.pop()
