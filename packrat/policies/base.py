"""The one interface every eviction policy implements.

A policy only keeps eviction order and byte accounting.  It does no I/O and
reads no clock of its own (a clock is injected), so the coordinator and the
offline simulator (``packrat simulate``) run exactly the same code.

Entries are *slots*: small integers the caller hands out (the coordinator's
``KeyTable``, the simulator's ``KeyedPolicy``), one per key, reused once a
key is gone.  A policy keeps what it knows of each slot in ``array``
columns indexed by slot, a few bytes per object, never a Python object per
key: the coordinator holds millions of them.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from array import array
from collections.abc import Callable
from typing import ClassVar

from packrat.structures.columns import grow, length_for

ABSENT = -1  # in ``sizes``: the slot is not tracked


class Policy(ABC):
    """Base class: owns ``sizes`` and ``used``; subclasses own the order.

    Contract (checked for every policy by ``tests/test_policies.py``):

    * ``insert(slot, size)`` adds a slot that is not tracked yet.  Callers
      that overwrite a key call ``remove`` first.
    * ``ident_of(slot)`` (given by the caller) is a 64-bit fingerprint of the
      key a slot holds, which a ghost remembers after the slot is reused;
      without it a slot is its own fingerprint (slots never reused).
    * ``access(slot)`` records a hit; an untracked slot is ignored.
    * ``remove(slot)`` forgets a slot (explicit delete, overwrite); an
      untracked slot is ignored.
    * ``choose_victims(nbytes, incoming)`` picks slots in the policy's order
      until at least ``nbytes`` are freed or nothing is left, forgets them and
      returns ``[(slot, size), ...]``.  ``incoming`` is the size of the object
      the room is for (0 if none); a policy may use it to choose where
      victims come from (``s3gdsf`` does for objects as large as probation).
    """

    name: ClassVar[str]

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        ident_of: Callable[[int], int] | None = None,
    ) -> None:
        self.clock = clock
        self.ident_of = ident_of
        self.sizes = array("q")  # per slot; ABSENT when not tracked
        self.count = 0
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
        return self.count

    def __contains__(self, slot: int) -> bool:
        return 0 <= slot < len(self.sizes) and self.sizes[slot] != ABSENT

    def size_of(self, slot: int) -> int | None:
        """The size ``slot`` was inserted with, or None if it is not tracked."""
        if 0 <= slot < len(self.sizes):
            size = self.sizes[slot]
            if size != ABSENT:
                return size
        return None

    def ident(self, slot: int) -> int:
        """The fingerprint of ``slot``'s key, for ghosts."""
        return slot if self.ident_of is None else self.ident_of(slot)

    def insert(self, slot: int, size: int) -> None:
        if slot >= len(self.sizes):
            self._resize(length_for(slot))
        elif self.sizes[slot] != ABSENT:
            raise KeyError(f"slot {slot} is already tracked")
        self.sizes[slot] = size
        self.used += size
        self.count += 1
        self._on_insert(slot, size)

    def access(self, slot: int) -> None:
        if slot in self:
            self._on_access(slot)

    def remove(self, slot: int) -> None:
        if slot in self:
            self._on_remove(slot)
            self._forget(slot)

    def choose_victims(self, nbytes: int, incoming: int = 0) -> list[tuple[int, int]]:
        self.incoming = incoming
        victims: list[tuple[int, int]] = []
        freed = 0
        while freed < nbytes and self.count:
            slot = self._pop_victim()
            size = self.sizes[slot]
            self._forget(slot)
            freed += size
            victims.append((slot, size))
        return victims

    def _forget(self, slot: int) -> None:
        self.used -= self.sizes[slot]
        self.sizes[slot] = ABSENT
        self.count -= 1

    def _resize(self, length: int) -> None:
        """Grow every per-slot column to ``length`` (subclasses add theirs)."""
        grow(self.sizes, length, ABSENT)

    @abstractmethod
    def _on_insert(self, slot: int, size: int) -> None:
        """Place a new slot in the order."""

    @abstractmethod
    def _on_access(self, slot: int) -> None:
        """Update the order for a hit on a tracked slot."""

    @abstractmethod
    def _on_remove(self, slot: int) -> None:
        """Drop a slot that was removed from outside (not evicted); ``sizes`` still has it."""

    @abstractmethod
    def _pop_victim(self) -> int:
        """Remove the next victim from the order and return its slot.

        Only called while at least one slot is tracked; ``sizes`` still holds
        the slot when this runs.
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
) -> list[tuple[int, int]]:
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
