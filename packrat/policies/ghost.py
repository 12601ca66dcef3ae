"""The ghost FIFO of S3-FIFO and s3gdsf: keys evicted recently, remembered without their data.

A ghost entry is a key's fingerprint (``ident``: a 64-bit hash the caller
gives) and the running total of bytes remembered when it was added
(``clock``), from which its size follows: the difference with the entry
before it.  Entries live in chunked columns indexed by an ever-growing
number (``Ring``) and are found by fingerprint through ``Buckets``, whose
heads and chains hold entry numbers modulo ``2**31`` (``ring.WRAP``) in 32
bits: about 27 bytes each, where an ``OrderedDict`` entry took over 150.  A ghost may hold
three times as many entries as the cache holds objects, so this matters.
Two keys with one fingerprint (a chance of about n / 2**64 per lookup) would
share an entry; nothing else depends on it.
"""

from __future__ import annotations

from packrat.structures.buckets import EMPTY, Buckets
from packrat.structures.ring import WRAP, Ring


class Ghost:
    """Fingerprints, oldest first, with their sizes; ``used`` counts the bytes of those kept.

    >>> ghost = Ghost()
    >>> for ident, size in ((11, 5), (12, 7), (13, 1)): ghost.push(ident, size)
    >>> ghost.take(12), ghost.used, ghost.pop_oldest(), ghost.pop_oldest(), len(ghost)
    ((7, 12), 6, 5, 1, 0)
    """

    def __init__(self) -> None:
        self._ident = Ring("q")
        self._clock = Ring("q")  # bytes remembered up to and including this entry
        self._chain = Ring("i", fill=EMPTY)  # entry numbers & WRAP, as the buckets' heads
        self._alive = Ring("b")
        self._buckets = Buckets(self._chain, self._ident.__getitem__, typecode="i")
        self._head = 0  # the oldest entry (alive or not) still in the columns
        self._before_head = 0  # the clock of the entry before it
        self.clock = 0  # bytes ever remembered
        self.used = 0  # bytes of the entries alive
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def __contains__(self, ident: int) -> bool:
        return self._find(ident) != EMPTY

    def push(self, ident: int, size: int) -> None:
        """Remember ``ident`` as the newest entry."""
        n = self._ident.end
        self.clock += size
        self._ident.append(ident)
        self._clock.append(self.clock)
        self._chain.append(EMPTY)
        self._alive.append(1)
        self._buckets.add(n & WRAP, ident)
        self.used += size
        self.count += 1

    def take(self, ident: int) -> tuple[int, int] | None:
        """Forget ``ident``'s entry; return its ``(size, clock)``, or None if there is none."""
        n = self._find(ident)
        if n == EMPTY:
            return None
        n = self._ident.unwrap(n)
        size = self._size(n)
        self._forget(n)
        clock = self._clock[n]
        self._skip_dead()
        return size, clock

    def pop_oldest(self) -> int:
        """Forget the oldest entry alive (there must be one); return its size."""
        n = self._head
        size = self._size(n)
        self._forget(n)
        self._skip_dead()
        return size

    def _find(self, ident: int) -> int:
        """The number of ``ident``'s entry ``& WRAP``, or ``EMPTY``."""
        n = self._buckets.head(ident)
        idents, chain = self._ident, self._chain
        while n != EMPTY and idents[n] != ident:
            n = chain[n]
        return n

    def _size(self, n: int) -> int:
        before = self._before_head if n == self._head else self._clock[n - 1]
        return self._clock[n] - before

    def _forget(self, n: int) -> None:
        self._buckets.remove(n & WRAP, self._ident[n])
        self._alive[n] = 0
        self.used -= self._size(n)
        self.count -= 1

    def _skip_dead(self) -> None:
        """Move the head past entries forgotten, so the oldest kept is alive.

        Entries taken out of the middle would otherwise pile up behind an
        old one still alive (and the ring's numbers must stay within ``WRAP``).
        """
        alive, clock, end = self._alive, self._clock, self._ident.end
        head = self._head
        while head < end and not alive[head]:
            self._before_head = clock[head]
            head += 1
        if head != self._head:
            self._head = head
            for ring in (self._ident, self._clock, self._chain, self._alive):
                ring.drop_before(head)
