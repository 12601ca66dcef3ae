"""The index: which keys are stored, how large, in what eviction order.

Pure bookkeeping, no I/O: the server turns its answers into renames and
unlinks.  One policy object keeps the order and the byte count; the index adds
the wall-clock time of each key's last use so a snapshot can restore recency
after a restart whatever the policy.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from packrat.policies import Policy, make_policy, make_room
from packrat.store.layout import BLOCK

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
        self.policy: Policy = make_policy(policy)
        self.policy_name = policy
        self.max_size = max_size
        self.low_water = low_water
        self.wallclock = wallclock
        self.last_access: dict[str, float] = {}
        self.counters = Counters()
        self.overhead = 0
        # Known from the start, so entries restored at start-up are placed as
        # the policy places them in a running cache (``make_room`` keeps it current).
        self.policy.capacity = self.capacity

    def __len__(self) -> int:
        return len(self.policy)

    def __contains__(self, key: object) -> bool:
        return key in self.policy

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
        return self.policy.sizes.get(key)

    def make_room(self, charge: int) -> list[tuple[str, int]]:
        """Evict so ``charge`` more bytes fit; return the victims (key, charge) to delete.

        Called before the new file is put in place, so the bytes on disk
        never exceed ``max_size``.  When the key is being overwritten its old
        entry still counts, and may itself be a victim.
        """
        victims = make_room(self.policy, charge, self.capacity, self.low_water)
        for victim, victim_charge in victims:
            self.last_access.pop(victim, None)
            self.counters.evictions += 1
            self.counters.evicted_bytes += victim_charge
        return victims

    def insert(self, key: str, charge: int) -> None:
        """Record ``key`` as just committed, replacing any old entry."""
        self.policy.remove(key)
        self.policy.insert(key, charge)
        self.last_access[key] = self.wallclock()
        self.counters.commits += 1

    def restore(self, key: str, charge: int, last_access: float) -> None:
        """Add an entry found at start-up (callers feed each key once, oldest first)."""
        self.policy.insert(key, charge)
        self.last_access[key] = last_access

    def touch(self, keys: Iterable[str], misses: int = 0) -> None:
        now = self.wallclock()
        policy = self.policy
        last_access = self.last_access
        for key in keys:
            self.counters.hits += 1
            if key in policy:
                policy.access(key)
                last_access[key] = now
        self.counters.misses += misses

    def remove(self, key: str) -> bool:
        """Forget ``key``; False if it was not indexed."""
        if key not in self.policy:
            return False
        self.policy.remove(key)
        self.last_access.pop(key, None)
        return True

    def entries_by_recency(self) -> list[tuple[str, int, float]]:
        """``(key, charge, last_access)`` for every key, least recent first."""
        charges = self.policy.sizes
        rows = [(key, charges[key], seen) for key, seen in self.last_access.items()]
        rows.sort(key=lambda row: row[2])
        return rows

    def list_keys(
        self, prefix: str, after: str = "", limit: int = 1000, collections: bool = False
    ) -> tuple[list[str], bool]:
        """A page of the keys starting with ``prefix``, in code-point order: those
        greater than ``after``, at most ``limit`` of them, and whether more follow.

        With ``collections``, a key with a ``/`` after the prefix is rolled up
        into its collection, ``prefix`` plus its next segment plus ``/``, which
        is listed once, where it sorts (rolling up keeps the order, since a
        collection is a prefix of its keys).  Paging with ``after`` set to the
        last entry of the page before lists each entry exactly once.

        This is a scan of every key, one page at a time: simple and correct for
        today's index, whose keys are in a dict.  ``tests/test_listing.py``
        holds the contract (against a sorted-list model) that an index with
        its keys in order, which answers a page without a scan, must pass.
        """
        keys = self.policy.sizes
        if not collections:
            page = heapq.nsmallest(
                limit + 1, (k for k in keys if k > after and k.startswith(prefix))
            )
            return page[:limit], len(page) > limit
        found: set[str] = set()
        start = len(prefix)
        for key in keys:
            if not key.startswith(prefix):
                continue
            cut = key.find("/", start)
            if cut >= 0:
                key = key[: cut + 1]
            if key > after:
                found.add(key)
        page = heapq.nsmallest(limit + 1, found)
        return page[:limit], len(page) > limit
