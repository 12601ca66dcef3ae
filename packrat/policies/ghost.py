"""The ghost FIFO of S3-FIFO and s3gdsf: keys evicted recently, remembered without their data.

A ghost may hold three times as many entries as the cache holds objects,
so an entry is kept in about 16 bytes (an ``OrderedDict`` entry took over
150), in chunked columns indexed by an ever-growing entry number
(``Ring``):

* the key's *fingerprint*, the low 48 bits of the 64-bit hash the caller
  gives (``ident``), split into a 32-bit and a 16-bit column;
* the running total of bytes remembered when it was added (its *clock*),
  from which its size follows (the difference with the entry before it),
  as a 32-bit offset from a *mark* kept per ``MARK_SPAN`` entries; an
  offset that does not fit (entries of gigabytes) keeps the clock in a
  dict instead;
* its link in a hash chain (``Buckets``, up to four entries per bucket), holding
  entry numbers modulo ``2**31`` (``ring.WRAP``), or ``DEAD`` once it is
  forgotten while older entries are still kept.

Two keys whose hashes share their low 48 bits share a fingerprint, so the
ghost cannot tell them apart: after one is remembered, a lookup of the
other finds its entry (a ghost hit for a key the ghost never saw, or saw
and forgot), and S3-FIFO, which remembers a fingerprint once, does not
remember the second.  Nothing else depends on it.  With ``m`` entries kept
that happens on a given lookup with probability about ``m / 2**48``: one in
31 million lookups with nine million entries (a cache of three million
objects under s3gdsf), where a 64-bit fingerprint made it one in two
trillion.  A collision can only move one object to main unproven.
"""

from __future__ import annotations

from array import array

from packrat.structures.buckets import EMPTY, Buckets
from packrat.structures.ring import WRAP, Ring

FINGERPRINT = (1 << 48) - 1
MARK_BITS = 6
MARK_SPAN = 1 << MARK_BITS  # entries per clock mark
BIG = (1 << 32) - 1  # in ``_offset``: the clock is in ``_big`` instead
DEAD = -2  # in ``_chain``: the entry is forgotten
LOAD = 4  # entries per bucket: chains of integers are cheap to walk


class Ghost:
    """Fingerprints, oldest first, with their sizes; ``used`` counts the bytes of those kept.

    >>> ghost = Ghost()
    >>> for ident, size in ((11, 5), (12, 7), (13, 1)): ghost.push(ident, size)
    >>> ghost.take(12), ghost.used, ghost.pop_oldest(), ghost.pop_oldest(), len(ghost)
    ((7, 12), 6, 5, 1, 0)
    """

    def __init__(self) -> None:
        self._high = Ring("I")  # fingerprint >> 16
        self._low = Ring("H")  # fingerprint & 0xFFFF
        self._offset = Ring("I")  # clock - the mark of the entry's span, or BIG
        # The clock before each span of entries, from the span of entry ``_first_mark``
        # (dropped a ring's chunk at a time).  A plain array indexes without a call.
        self._marks = array("q")
        self._first_mark = 0
        self._big: dict[int, int] = {}  # entry number -> clock, where the offset is BIG
        self._chain = Ring("i")  # entry numbers & WRAP, as the buckets' heads; DEAD
        self._buckets = Buckets(self._chain, self._fingerprint, typecode="i", load=LOAD)
        self._head = 0  # the oldest entry (alive or not) still in the columns
        self._before_head = 0  # the clock of the entry before it
        self.clock = 0  # bytes ever remembered
        self.used = 0  # bytes of the entries alive
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def __contains__(self, ident: int) -> bool:
        return self._find(ident & FINGERPRINT) != EMPTY

    def push(self, ident: int, size: int) -> None:
        """Remember ``ident`` as the newest entry."""
        n = self._chain.end
        if n & (MARK_SPAN - 1) == 0:
            self._marks.append(self.clock)
        self.clock += size
        offset = self.clock - self._marks[(n >> MARK_BITS) - self._first_mark]
        if offset >= BIG:
            self._big[n] = self.clock
            offset = BIG
        fingerprint = ident & FINGERPRINT
        self._high.append(fingerprint >> 16)
        self._low.append(fingerprint & 0xFFFF)
        self._offset.append(offset)
        self._chain.append(EMPTY)
        self._buckets.add(n & WRAP, fingerprint)
        self.used += size
        self.count += 1

    def take(self, ident: int) -> tuple[int, int] | None:
        """Forget ``ident``'s entry; return its ``(size, clock)``, or None if there is none."""
        fingerprint = ident & FINGERPRINT
        n = self._find(fingerprint)
        if n == EMPTY:
            return None
        n = self._chain.unwrap(n)
        clock = self._clock(n)
        size = clock - (self._before_head if n == self._head else self._clock(n - 1))
        self._forget(n, fingerprint, size)
        self._skip_dead()
        return size, clock

    def pop_oldest(self) -> int:
        """Forget the oldest entry alive (there must be one); return its size."""
        n = self._head
        size = self._clock(n) - self._before_head
        self._forget(n, self._fingerprint(n), size)
        self._skip_dead()
        return size

    def _fingerprint(self, n: int) -> int:
        """Entry ``n``'s fingerprint (``n`` may be an entry number ``& WRAP``)."""
        return self._high[n] << 16 | self._low[n]

    def _find(self, fingerprint: int) -> int:
        """The number of the newest entry with ``fingerprint``, ``& WRAP``, or ``EMPTY``."""
        n = self._buckets.head(fingerprint)
        high, low, chain = fingerprint >> 16, fingerprint & 0xFFFF, self._chain
        highs, lows = self._high, self._low
        while n != EMPTY and (highs[n] != high or lows[n] != low):
            n = chain[n]
        return n

    def _clock(self, n: int) -> int:
        offset = self._offset[n]
        if offset == BIG:
            return self._big[n]
        return self._marks[(n >> MARK_BITS) - self._first_mark] + offset

    def _forget(self, n: int, fingerprint: int, size: int) -> None:
        self.used -= size
        self._buckets.remove(n & WRAP, fingerprint)
        self._chain[n] = DEAD
        self.count -= 1

    def _skip_dead(self) -> None:
        """Move the head past entries forgotten, so the oldest kept is alive.

        Entries taken out of the middle would otherwise pile up behind an
        old one still alive (and the ring's numbers must stay within ``WRAP``).
        """
        chain, end = self._chain, self._chain.end
        head = self._head
        while head < end and chain[head] == DEAD:
            head += 1
        if head == self._head:
            return
        self._before_head = self._clock(head - 1)
        if self._big:
            for n in range(self._head, head):
                self._big.pop(n, None)
        self._head = head
        for ring in (self._high, self._low, self._offset, self._chain):
            ring.drop_before(head)
        dropped = (self._chain.start >> MARK_BITS) - self._first_mark
        if dropped > 0:
            del self._marks[:dropped]
            self._first_mark += dropped
