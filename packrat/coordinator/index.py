"""The index: which keys are stored, how large, in what eviction order.

Pure bookkeeping, no I/O: the server turns its answers into renames and
unlinks.  The keys live in a ``KeyTable`` that numbers them by slot; the
policy keeps the order and the byte count by slot; the index adds the
wall-clock time of each key's last use (a column by slot) so a snapshot can
restore recency after a restart whatever the policy.  Nothing here holds a
Python object per key: see ``bench/memory.py`` for the bytes per object.
"""

from __future__ import annotations

import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from packrat.coordinator.keytable import KeyTable
from packrat.policies import Policy, make_policy, make_room
from packrat.store.layout import BLOCK
from packrat.structures.columns import grow, length_for

# Headroom of one directory block: a commit's rename may grow its fan-out
# directory before the index hears of it.
DIR_RESERVE = BLOCK


@dataclass
class Counters:
    hits: int = 0
    misses: int = 0
    evictions: int = 0
    evicted_bytes: int = 0
    commits: int = 0


class Index:
    """Keys, charges and policy order, bounded by ``max_size`` bytes.

    Each key is counted at its charge (``packrat.store.accounting``), the
    disk its object takes; ``overhead`` is the fan-out directories' growth,
    which counts against ``max_size`` too.
    """

    def __init__(
        self,
        policy: str,
        max_size: int,
        low_water: float = 0.95,
        wallclock: Callable[[], float] = time.time,
    ) -> None:
        self.table = KeyTable()
        self.policy: Policy = make_policy(policy, ident_of=self.table.ident)
        self.policy_name = policy
        self.max_size = max_size
        self.low_water = low_water
        self.wallclock = wallclock
        self.last_access = array("d")  # by slot: Unix time of the key's last use
        self.counters = Counters()
        self.overhead = 0
        # Known from the start, so entries restored at start-up are placed as
        # the policy places them in a running cache (``make_room`` keeps it current).
        self.policy.capacity = self.capacity

    def __len__(self) -> int:
        return len(self.table)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.table.find(key.encode()) >= 0

    @property
    def used(self) -> int:
        """Bytes charged for the objects."""
        return self.policy.used

    @property
    def disk_bytes(self) -> int:
        """Everything charged against ``max_size``: objects and directory growth."""
        return self.policy.used + self.overhead

    @property
    def capacity(self) -> int:
        """The bytes objects may take."""
        return max(self.max_size - self.overhead - DIR_RESERVE, 0)

    def charge_of(self, key: str) -> int | None:
        slot = self.table.find(key.encode())
        return None if slot < 0 else self.policy.size_of(slot)

    def last_access_of(self, key: str) -> float | None:
        slot = self.table.find(key.encode())
        return None if slot < 0 else self.last_access[slot]

    def make_room(self, charge: int) -> list[tuple[str, int]]:
        """Evict so ``charge`` more bytes fit; return the victims (key, charge) to delete.

        Called before the new file is put in place, so the bytes on disk
        never exceed ``max_size``.  When the key is being overwritten its old
        entry still counts, and may itself be a victim.
        """
        chosen = make_room(self.policy, charge, self.capacity, self.low_water)
        if not chosen:
            return []
        remove, counters = self.table.remove, self.counters
        victims = [(remove(slot).decode(), victim_charge) for slot, victim_charge in chosen]
        counters.evictions += len(chosen)
        counters.evicted_bytes += sum(victim_charge for _, victim_charge in chosen)
        return victims

    def insert(self, key: str, charge: int) -> float:
        """Record ``key`` as just committed, replacing any old entry; return its time."""
        now = self.wallclock()
        self._put(key.encode(), charge, now)
        self.counters.commits += 1
        return now

    def load(self, keys: list[bytes], charges: array, seen: array, order: Iterable[int]) -> None:
        """Fill an empty index at start-up: ``keys`` strictly increasing, ``charges``
        and ``seen`` (last uses) beside them, ``order`` their positions least
        recently used first, the order in which the policy is told of them."""
        self.table.build(keys)
        self.last_access = array("d", seen)
        insert = self.policy.insert
        for slot in order:
            insert(slot, charges[slot])

    def rows_after(self, after: bytes, limit: int) -> tuple[list[bytes], array, array]:
        """Up to ``limit`` rows ``(keys, charges, last uses)`` with keys above ``after``, in
        key order: a snapshot is written a slice at a time between messages."""
        table, sizes, last_access = self.table, self.policy.sizes, self.last_access
        slots = table.slots_after(after, limit, skip=after)
        return (
            list(map(table.key, slots)),
            array("q", map(sizes.__getitem__, slots)),
            array("d", map(last_access.__getitem__, slots)),
        )

    def touch(self, keys: Iterable[str], misses: int = 0) -> None:
        now = self.wallclock()
        find, policy, last_access = self.table.find, self.policy, self.last_access
        hits = 0
        for key in keys:
            hits += 1
            slot = find(key.encode())
            if slot >= 0:
                policy.access(slot)
                last_access[slot] = now
        self.counters.hits += hits
        self.counters.misses += misses

    def remove(self, key: str) -> bool:
        """Forget ``key``; False if it was not indexed."""
        slot = self.table.find(key.encode())
        if slot < 0:
            return False
        self.policy.remove(slot)
        self.table.remove(slot)
        return True

    def all_keys(self) -> list[str]:
        """Every key, in key order (for tests and repairs: a walk of the whole index)."""
        table = self.table
        return [table.key(slot).decode() for slot in table.slots()]

    def charges(self) -> dict[str, int]:
        """Every key's charge (for tests and repairs: a walk of the whole index)."""
        table, sizes = self.table, self.policy.sizes
        return {table.key(slot).decode(): sizes[slot] for slot in table.slots()}

    def list_keys(
        self, prefix: str, after: str = "", limit: int = 1000, collections: bool = False
    ) -> tuple[list[str], bool]:
        """A page of the keys starting with ``prefix``, in code-point order: those
        greater than ``after``, at most ``limit`` of them, and whether more follow.

        With ``collections``, a key with a ``/`` after the prefix is rolled up
        into its collection, ``prefix`` plus its next segment plus ``/``, which
        is listed once, where it sorts; the walk then jumps past the
        collection's keys ('/' + 1 is '0').  Keys are kept in order
        (``KeyTable``), so a page costs a binary search per entry at most,
        however many keys there are; ``tests/test_listing.py`` is the contract.
        """
        table, first, cursor = self.table, prefix.encode(), after.encode()
        if not collections:
            keys = table.list_keys(first, cursor, limit + 1)
            return [key.decode() for key in keys[:limit]], len(keys) > limit
        page: list[bytes] = []
        start, skip = max(first, cursor), cursor
        while len(page) <= limit:
            slots = table.slots_after(start, 1, skip=skip)
            if not slots:
                break
            key = table.key(slots[0])
            if not key.startswith(first):
                break
            cut = key.find(b"/", len(first))
            if cut < 0:
                entry, start, skip = key, key, key
            else:
                entry, start, skip = key[: cut + 1], key[:cut] + b"0", b""
            if entry > cursor:
                page.append(entry)
        return [entry.decode() for entry in page[:limit]], len(page) > limit

    def entries_by_recency(self) -> list[tuple[str, int, float]]:
        """``(key, charge, last_access)`` for every key, least recent first."""
        table, sizes, last_access = self.table, self.policy.sizes, self.last_access
        rows = [(table.key(s).decode(), sizes[s], last_access[s]) for s in table.slots()]
        rows.sort(key=lambda row: row[2])
        return rows

    def _put(self, key: bytes, charge: int, seen: float) -> None:
        slot = self.table.find(key)
        if slot >= 0:
            self.policy.remove(slot)
        else:
            slot = self.table.add(key)
            if slot >= len(self.last_access):
                grow(self.last_access, length_for(slot))
        self.policy.insert(slot, charge)
        self.last_access[slot] = seen
