"""A column indexed by an ever-growing counter whose oldest entries are dropped.

A FIFO of millions of entries as one ``array`` would have to be copied to
drop its head or to grow; this one is a list of fixed-size chunks, so
appending and dropping the oldest chunk never copy more than a chunk.  The
chunk dropped last is kept for the next one needed: a FIFO that goes on
dropping and appending reuses its memory rather than asking ``malloc`` for
a chunk each time, which left the freed ones scattered in the heap.

An index is read modulo ``2**31`` from the first one kept, so ``n`` and
``n & WRAP`` name the same entry while fewer than ``2**31`` are kept: a
column that stores indexes can store them in 32 bits (the ghost's hash
chains do) however far the counter has gone.
"""

from __future__ import annotations

from array import array

CHUNK_BITS = 16
CHUNK = 1 << CHUNK_BITS
_MASK = CHUNK - 1
WRAP = (1 << 31) - 1


class Ring:
    """``ring[n]`` for ``start <= n < end``; ``append`` adds at ``end``.

    >>> ring = Ring("q")
    >>> for n in range(CHUNK + 3): ring.append(n * 2)
    >>> ring.drop_before(CHUNK + 1); ring[CHUNK + 2], ring.start, ring.end
    (131076, 65536, 65539)
    >>> ring[(CHUNK + 2) | (1 << 31)], ring.unwrap((CHUNK + 2) & WRAP)
    (131076, 65538)
    """

    def __init__(self, typecode: str) -> None:
        self.typecode = typecode
        self._chunks: list[array] = []
        self._spare: array | None = None  # the last chunk dropped
        self.start = 0  # the first index still readable (a chunk boundary)
        self.end = 0

    def __getitem__(self, n: int) -> int:
        return self._chunks[((n - self.start) & WRAP) >> CHUNK_BITS][n & _MASK]

    def __setitem__(self, n: int, value: int) -> None:
        self._chunks[((n - self.start) & WRAP) >> CHUNK_BITS][n & _MASK] = value

    def unwrap(self, n: int) -> int:
        """The index kept that ``n`` names (``n`` may be an index ``& WRAP``)."""
        return self.start + ((n - self.start) & WRAP)

    def append(self, value: int) -> None:
        n = self.end
        if n & _MASK == 0:
            chunk, self._spare = self._spare, None
            if chunk is None:
                chunk = array(self.typecode, [0]) * CHUNK
            self._chunks.append(chunk)  # a spare's old entries are each set before read
        self.end = n + 1
        self[n] = value

    def drop_before(self, n: int) -> None:
        """Forget the whole chunks below index ``n``."""
        whole = (n - self.start) >> CHUNK_BITS
        if whole > 0:
            self._spare = self._chunks[whole - 1]
            del self._chunks[:whole]
            self.start += whole << CHUNK_BITS
