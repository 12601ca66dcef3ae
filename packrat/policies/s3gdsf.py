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

from array import array

from packrat.policies.base import Policy
from packrat.policies.gdsf import GDSF
from packrat.policies.ghost import Ghost
from packrat.structures.links import Links, Queue

# ``_state`` of a slot, one byte: in main (or not tracked), in main with its first
# hit awaited (``_learn``), or on probation, read there or not yet.
IN_MAIN, PROMOTED, FROM_GHOST, ON_PROBATION, HIT_ON_PROBATION = range(5)


class LazyGDSF(GDSF):
    """GDSF whose hits are credited when a slot reaches the bottom of the order.

    ``_hits`` counts the hits since the slot was last placed; a slot that
    surfaces with hits is placed again at ``age + value(hits)`` instead of
    being evicted.  A hit is a counter update, not a reordering (about nine
    times cheaper), which matters because hits are most of what the
    coordinator does.

    It reads its slots' sizes from the column of the ``S3GDSF`` it serves,
    which tracks every slot it holds and grows its columns (``_resize``):
    a second column of sizes would cost 8 bytes per object.
    """

    name = "lazy-gdsf"

    def __init__(self, sizes: array, **kwargs) -> None:
        super().__init__(**kwargs)
        self.sizes = sizes

    def insert(self, slot: int, size: int) -> None:
        self.used += size
        self.count += 1
        self._on_insert(slot, size)

    def _forget(self, slot: int) -> None:
        self.used -= self.sizes[slot]
        self.count -= 1

    def insert_unproven(self, slot: int, size: int) -> None:
        """Track a slot at the bottom (priority ``age``), as one never hit."""
        self.insert(slot, size)
        self._hits[slot] = 0
        self._push(slot)  # again, at value 0

    def _push(self, slot: int) -> None:
        super()._push(slot)
        self._hits[slot] = 0

    def _on_access(self, slot: int) -> None:
        self._count_hit(slot)

    def _pop_victim(self) -> int:
        while True:
            slot = self._pop()
            if self._hits[slot]:
                self._push(slot)
                continue
            return slot


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
        self._links = Links()
        self._small = Queue(self._links)
        self._state = bytearray()
        self._small_used = 0
        self._ghost = Ghost()  # key fingerprints; size and ghost clock when remembered
        self._main = LazyGDSF(
            self.sizes, size_exponent=size_exponent, hit_cap=hit_cap, clock=self.clock
        )
        self._evicted = False
        self._promoted_hit_rate = 0.5

    def _resize(self, length: int) -> None:
        super()._resize(length)
        self._links.resize(length)
        self._state.extend(bytes(length - len(self._state)))
        self._main._resize(length)

    def _small_capacity(self) -> float | None:
        return None if self.capacity is None else self.capacity * self.small_ratio

    def _is_large(self, size: int) -> bool:
        small = self._small_capacity()
        return small is not None and size >= small

    def admits(self, size: int) -> bool:
        return not self._is_large(size)

    def _on_insert(self, slot: int, size: int) -> None:
        remembered = self._ghost.take(self.ident(slot)) if self._ghost.count else None
        if remembered is not None:
            depth = (self._ghost.clock - remembered[1]) / (self.capacity or 1)
            if depth <= self.reach:
                self._main.insert(slot, size)
                if depth > self.reach / 2:  # the outer half: followed, for ``_learn``
                    self._state[slot] = FROM_GHOST
                return
        small = self._small_capacity()
        large = small is not None and size >= small  # ``_is_large``
        if not self._evicted and small is not None and small <= self._small_used and not large:
            self._main.insert_unproven(slot, size)  # warming up
            return
        self._state[slot] = ON_PROBATION
        self._small_used += size
        if large:
            self._small.push_front(slot)
        else:
            self._small.push(slot)

    def _on_access(self, slot: int) -> None:
        state = self._state[slot]
        if state >= ON_PROBATION:
            self._state[slot] = HIT_ON_PROBATION
            return
        self._main.access(slot)
        if state != IN_MAIN:
            self._learn(slot, hit=True)

    def _on_remove(self, slot: int) -> None:
        if self._state[slot] >= ON_PROBATION:
            self._small.remove(slot)
            self._small_used -= self.sizes[slot]
        else:
            self._main.remove(slot)
        self._state[slot] = IN_MAIN

    def _pop_victim(self) -> int:
        self._evicted = True
        small = self._small_capacity()
        while True:
            over = small is None or self._small_used > small or self._is_large(self.incoming)
            if not self._small or (self._main.count and not over):
                slot = self._main.choose_victims(1)[0][0]
                if self._state[slot] != IN_MAIN:
                    self._learn(slot, hit=False)
                return slot
            slot = self._small.pop()
            hit = self._state[slot] == HIT_ON_PROBATION
            self._state[slot] = IN_MAIN
            size = self.sizes[slot]
            self._small_used -= size
            if hit:
                self._main.insert(slot, size)
                self._state[slot] = PROMOTED  # followed, for ``_learn``
                continue
            if not self._is_large(size):
                self._remember(self.ident(slot), size)
            return slot

    def _learn(self, slot: int, hit: bool) -> None:
        """Move the reach (or the promotion hit rate) by one followed slot's fate."""
        followed = self._state[slot]
        self._state[slot] = IN_MAIN
        if followed == PROMOTED:
            self._promoted_hit_rate += self.AVERAGE_WEIGHT * (hit - self._promoted_hit_rate)
            return
        # Equilibrium where followed ghost admissions are hit with probability
        # ``target``: each hit adds step * (1 - target), each miss removes step * target.
        target = self.TARGET_SHARE * self._promoted_hit_rate
        step = self.REACH_STEP * (1 - target) if hit else -self.REACH_STEP * target
        self.reach *= 1 + step
        self.reach = min(max(self.reach, self.REACH_MIN), self.REACH_MAX)

    def _remember(self, ident: int, size: int) -> None:
        """Put a key evicted from probation in the ghost FIFO, bounded in bytes."""
        ghost = self._ghost
        ghost.push(ident, size)
        limit = (self.capacity or 0) * self.REACH_MAX
        while ghost.used > limit:
            ghost.pop_oldest()
