"""S3-GDSF: S3-FIFO's one-hit-wonder filter in front of a size-aware main cache.

Measured on three real traces (docs/policies.md), no published policy wins
both miss ratios: GDSF keeps many small files (fewest object misses) but
throws out popular large ones (more byte misses), while S3-FIFO and SIEVE
keep popular objects of any size and drop one-hit wonders early (fewest byte
misses).  This policy takes each part where it wins:

* new objects wait in a probation FIFO of 10 % of the bytes (S3-FIFO's
  size); one hit there promotes them to the main cache, otherwise they leave
  and are remembered in a ghost FIFO;
* the main cache is GDSF, priority ``age + min(hits, 3) / size ** 0.6``
  (size counts, but less than in GDSF), with *lazy promotion*: a hit is only
  counted, and a key's priority is recomputed from the hits counted since
  its last placement when it reaches the bottom, the way S3-FIFO's main
  queue reinserts instead of moving a key on every hit.  Popularity must be
  earned again on every pass, and a hit costs no heap operation;
* a miss that hits the ghost goes straight to main if the ghost's *reach*
  covers it.  The reach adapts online: ghost admissions from the outer half
  of the reach are followed in main, and the reach grows when they are hit
  there and shrinks when they leave unhit, settling where they are hit half
  as often as objects promoted from probation.  A web workload lets it grow
  to the ghost's full memory (three times the cache's bytes); a block trace,
  where most such objects are never read again, shrinks it below the cache;
* until the first eviction, once probation is full, newcomers go to main
  unproven, as in S3-FIFO: a cold cache keeps what it first sees.  They
  enter at the bottom of main, leave first in arrival order unless hit, and
  do not compete on size until they have been;
* the server stores every upload that fits, so an object at least as large
  as probation (which S3-FIFO would refuse) is stored at the *head* of
  probation: it leaves first unless it is hit meanwhile, the ghost does not
  remember it, and the room for it is taken from probation before main, so
  one large upload costs unproven objects rather than proven ones.
  ``admits`` still refuses it, for the simulator's ``--admission policy``
  (libCacheSim's semantics).
"""

from __future__ import annotations

import heapq
from collections import OrderedDict
from collections.abc import Hashable

from packrat.policies.base import Policy
from packrat.policies.gdsf import GDSF


class LazyGDSF(GDSF):
    """GDSF whose hits are credited when a key reaches the bottom of the heap.

    ``_hits`` counts the hits since the key was last placed; a key that
    surfaces with hits is placed again at ``age + value(hits)`` instead of
    being evicted.  A hit is a counter update, not a heap push (about nine
    times cheaper), which matters because hits are most of what the
    coordinator does.
    """

    name = "lazy-gdsf"

    def insert_unproven(self, key: Hashable, size: int) -> None:
        """Track a key at the bottom (priority ``age``), as one never hit."""
        self.insert(key, size)
        self._hits[key] = 0
        self._push(key)  # again, at value 0; the first entry goes stale

    def _push(self, key: Hashable) -> None:
        super()._push(key)
        self._hits[key] = 0

    def _on_access(self, key: Hashable) -> None:
        self._hits[key] += 1

    def _pop_victim(self) -> Hashable:
        while True:
            priority, seq, key = heapq.heappop(self._heap)
            if self._live.get(key) != (priority, seq):
                continue
            self.age = priority
            if self._hits[key]:
                self._push(key)
                continue
            del self._hits[key], self._live[key]
            return key


class S3GDSF(Policy):
    """Probation FIFO + adaptive ghost, then lazily promoted GDSF with a softened size penalty."""

    name = "s3gdsf"

    # The ghost's reach, as a multiple of the cache's bytes: where it starts,
    # its bounds (the upper one is also the ghost's memory), and how fast it
    # moves per observed ghost admission.
    REACH_START = 1.0
    REACH_MIN = 0.1
    REACH_MAX = 3.0
    REACH_STEP = 0.05
    # Ghost admissions should be hit in main at least this fraction as often
    # as promotions from probation, whose hit rate is a running average.
    TARGET_SHARE = 0.5
    AVERAGE_WEIGHT = 0.01

    def __init__(
        self,
        small_ratio: float = 0.1,
        size_exponent: float = 0.6,
        hit_cap: int = 3,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.small_ratio = small_ratio
        self.reach = self.REACH_START
        self._small: OrderedDict[Hashable, int] = OrderedDict()  # key -> hits
        self._small_used = 0
        # key -> (size, value of _ghost_clock when it was remembered)
        self._ghost: OrderedDict[Hashable, tuple[int, int]] = OrderedDict()
        self._ghost_used = 0
        self._ghost_clock = 0  # bytes ever remembered: a ghost entry's depth is the difference
        self._main = LazyGDSF(size_exponent=size_exponent, hit_cap=hit_cap, clock=self.clock)
        self._evicted = False
        # Keys in main whose first hit is awaited: True if admitted from the
        # outer half of the ghost's reach, False if promoted from probation.
        self._followed: dict[Hashable, bool] = {}
        self._promoted_hit_rate = 0.5

    def _small_capacity(self) -> float | None:
        return None if self.capacity is None else self.capacity * self.small_ratio

    def _is_large(self, size: int) -> bool:
        small = self._small_capacity()
        return small is not None and size >= small

    def admits(self, size: int) -> bool:
        return not self._is_large(size)

    def _on_insert(self, key: Hashable, size: int) -> None:
        remembered = self._ghost.pop(key, None)
        if remembered is not None:
            self._ghost_used -= remembered[0]
            depth = (self._ghost_clock - remembered[1]) / (self.capacity or 1)
            if depth <= self.reach:
                self._main.insert(key, size)
                if depth > self.reach / 2:
                    self._followed[key] = True
                return
        small = self._small_capacity()
        warming = not self._evicted and small is not None and small <= self._small_used
        if warming and not self._is_large(size):
            self._main.insert_unproven(key, size)
            return
        self._small[key] = 0
        self._small_used += size
        if self._is_large(size):
            self._small.move_to_end(key, last=False)

    def _on_access(self, key: Hashable) -> None:
        if key in self._small:
            self._small[key] += 1
            return
        self._main.access(key)
        if key in self._followed:
            self._learn(key, hit=True)

    def _on_remove(self, key: Hashable) -> None:
        if key in self._small:
            del self._small[key]
            self._small_used -= self.sizes.get(key, 0)
        else:
            self._main.remove(key)
            self._followed.pop(key, None)

    def _pop_victim(self) -> Hashable:
        self._evicted = True
        small = self._small_capacity()
        while True:
            over = small is None or self._small_used > small or self._is_large(self.incoming)
            if not self._small or (self._main and not over):
                key = self._main.choose_victims(1)[0][0]
                if key in self._followed:
                    self._learn(key, hit=False)
                return key
            key, hits = self._small.popitem(last=False)
            size = self.sizes[key]
            self._small_used -= size
            if hits:
                self._main.insert(key, size)
                self._followed[key] = False
                continue
            if not self._is_large(size):
                self._remember(key, size)
            return key

    def _learn(self, key: Hashable, hit: bool) -> None:
        """Move the reach (or the promotion hit rate) by one followed key's fate."""
        if not self._followed.pop(key):
            self._promoted_hit_rate += self.AVERAGE_WEIGHT * (hit - self._promoted_hit_rate)
            return
        # Equilibrium where followed ghost admissions are hit with probability
        # ``target``: each hit adds step * (1 - target), each miss removes step * target.
        target = self.TARGET_SHARE * self._promoted_hit_rate
        step = self.REACH_STEP * (1 - target) if hit else -self.REACH_STEP * target
        self.reach *= 1 + step
        self.reach = min(max(self.reach, self.REACH_MIN), self.REACH_MAX)

    def _remember(self, key: Hashable, size: int) -> None:
        """Put a key evicted from probation in the ghost FIFO, bounded in bytes."""
        self._ghost_clock += size
        self._ghost[key] = (size, self._ghost_clock)
        self._ghost_used += size
        limit = (self.capacity or 0) * self.REACH_MAX
        while self._ghost_used > limit:
            self._ghost_used -= self._ghost.popitem(last=False)[1][0]
