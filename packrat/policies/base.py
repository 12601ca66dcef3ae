"""The one interface every eviction policy implements.

A policy only keeps eviction order and byte accounting.  It does no I/O and
reads no clock of its own (a clock is injected), so the coordinator and the
offline simulator (``packrat simulate``) run exactly the same code.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from typing import ClassVar


class Policy(ABC):
    """Base class: owns ``sizes`` and ``used``; subclasses own the order.

    Contract (checked for every policy by ``tests/test_policies.py``):

    * ``insert(key, size)`` adds a key that is not tracked yet.  Callers that
      overwrite a key call ``remove`` first.
    * ``access(key)`` records a hit; an unknown key is ignored.
    * ``remove(key)`` forgets a key (explicit delete, overwrite); an unknown
      key is ignored.
    * ``choose_victims(nbytes, incoming)`` picks keys in the policy's order
      until at least ``nbytes`` are freed or nothing is left, forgets them and
      returns ``[(key, size), ...]``.  ``incoming`` is the size of the object
      the room is for (0 if none); a policy may use it to choose where
      victims come from (``s3gdsf`` does for objects as large as probation).
    """

    name: ClassVar[str]

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.sizes: dict[Hashable, int] = {}
        self.used = 0
        # The byte budget the policy works against; ``admit`` and ``make_room``
        # keep it current so that policies with sized queues (S3-FIFO) need no
        # extra constructor argument.  ``None`` until the first call.
        self.capacity: int | None = None
        # The size of the object the current ``choose_victims`` makes room for.
        self.incoming = 0

    def admits(self, size: int) -> bool:
        """Whether an object of ``size`` bytes is worth storing at all.

        Every object that fits is admitted unless a policy says otherwise:
        S3-FIFO refuses objects that would flush its whole probation queue.
        """
        return True

    def __len__(self) -> int:
        return len(self.sizes)

    def __contains__(self, key: object) -> bool:
        return key in self.sizes

    def insert(self, key: Hashable, size: int) -> None:
        if key in self.sizes:
            raise KeyError(f"{key!r} is already tracked")
        self.sizes[key] = size
        self.used += size
        self._on_insert(key, size)

    def access(self, key: Hashable) -> None:
        if key in self.sizes:
            self._on_access(key)

    def remove(self, key: Hashable) -> None:
        size = self.sizes.pop(key, None)
        if size is not None:
            self.used -= size
            self._on_remove(key)

    def choose_victims(self, nbytes: int, incoming: int = 0) -> list[tuple[Hashable, int]]:
        self.incoming = incoming
        victims: list[tuple[Hashable, int]] = []
        freed = 0
        while freed < nbytes and self.sizes:
            key = self._pop_victim()
            size = self.sizes.pop(key)
            self.used -= size
            freed += size
            victims.append((key, size))
        return victims

    @abstractmethod
    def _on_insert(self, key: Hashable, size: int) -> None:
        """Place a new key in the order."""

    @abstractmethod
    def _on_access(self, key: Hashable) -> None:
        """Update the order for a hit on a tracked key."""

    @abstractmethod
    def _on_remove(self, key: Hashable) -> None:
        """Drop a key that was removed from outside (not evicted)."""

    @abstractmethod
    def _pop_victim(self) -> Hashable:
        """Remove the next victim from the order and return its key.

        Only called while at least one key is tracked; ``sizes`` still holds
        the key when this runs.
        """


def admit(policy: Policy, size: int, capacity: int) -> bool:
    """Whether to store a missed object of ``size`` bytes; call before ``make_room``.

    Objects larger than the cache are always refused (libCacheSim does the
    same), then the policy may refuse more.
    """
    policy.capacity = capacity
    return size <= capacity and policy.admits(size)


def make_room(
    policy: Policy, incoming: int, capacity: int, low_water: float = 1.0
) -> list[tuple[Hashable, int]]:
    """Evict so that ``incoming`` more bytes fit within ``capacity``.

    Nothing is evicted while they fit.  When eviction is needed it goes down
    to ``low_water * capacity - incoming`` so the next inserts do not each pay
    for an eviction (nginx's cache manager and diskcache's cull do the same).
    The caller refuses objects larger than ``capacity`` before calling this.
    Both the coordinator and the simulator use this one function.
    """
    policy.capacity = capacity
    if policy.used + incoming <= capacity:
        return []
    target = max(int(capacity * low_water) - incoming, 0)
    return policy.choose_victims(policy.used - target, incoming)
