"""A policy driven by keys, as the simulator and the tests speak of them.

Policies work on slots (``packrat.policies.base``); the coordinator's
``Index`` maps its keys to slots in a compact table, and this maps any
hashable key (a trace's ids, a test's strings) to slots with a dict, which
is fine for a simulation's millions of requests but not for the server.
"""

from __future__ import annotations

from collections.abc import Hashable

from packrat.policies import Policy, admit, make_policy, make_room


class KeyedPolicy:
    """``policy`` with keys in, keys out; slots are reused once their key is gone."""

    def __init__(self, policy: str | Policy, **kwargs) -> None:
        self._slots: dict[Hashable, int] = {}
        self._keys: list[Hashable] = []
        self._free: list[int] = []
        if isinstance(policy, str):
            policy = make_policy(policy, ident_of=self._ident, **kwargs)
        else:
            policy.ident_of = self._ident
        self.policy = policy

    def _ident(self, slot: int) -> int:
        return hash(self._keys[slot])

    @property
    def name(self) -> str:
        return self.policy.name

    @property
    def used(self) -> int:
        return self.policy.used

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._slots

    def __getattr__(self, name: str):  # the policy's own attributes (reach, small_ratio, ...)
        return getattr(self.policy, name)

    def size_of(self, key: Hashable) -> int | None:
        slot = self._slots.get(key)
        return None if slot is None else self.policy.size_of(slot)

    def insert(self, key: Hashable, size: int) -> None:
        if key in self._slots:
            raise KeyError(f"{key!r} is already tracked")
        if self._free:
            slot = self._free.pop()
            self._keys[slot] = key
        else:
            slot = len(self._keys)
            self._keys.append(key)
        self._slots[key] = slot
        self.policy.insert(slot, size)

    def access(self, key: Hashable) -> None:
        slot = self._slots.get(key)
        if slot is not None:
            self.policy.access(slot)

    def remove(self, key: Hashable) -> None:
        slot = self._slots.get(key)
        if slot is not None:
            self.policy.remove(slot)
            self._release(slot)

    def choose_victims(self, nbytes: int, incoming: int = 0) -> list[tuple[Hashable, int]]:
        return self._keyed(self.policy.choose_victims(nbytes, incoming))

    def admit(self, size: int, capacity: int) -> bool:
        return admit(self.policy, size, capacity)

    def make_room(
        self, incoming: int, capacity: int, low_water: float = 1.0
    ) -> list[tuple[Hashable, int]]:
        return self._keyed(make_room(self.policy, incoming, capacity, low_water))

    def _keyed(self, victims: list[tuple[int, int]]) -> list[tuple[Hashable, int]]:
        keyed = []
        for slot, size in victims:
            keyed.append((self._keys[slot], size))
            self._release(slot)
        return keyed

    def _release(self, slot: int) -> None:
        del self._slots[self._keys[slot]]
        self._keys[slot] = None
        self._free.append(slot)
