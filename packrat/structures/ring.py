"""A column indexed by an ever-growing counter whose oldest entries are dropped.

A FIFO of millions of entries as one ``array`` would have to be copied to
drop its head or to grow; this one is a list of fixed-size chunks, so
appending and dropping the oldest chunk never copy more than a chunk.
"""

from __future__ import annotations

from array import array

CHUNK_BITS = 16
CHUNK = 1 << CHUNK_BITS
_MASK = CHUNK - 1


class Ring:
    """``ring[n]`` for ``start <= n < end``; ``append`` adds at ``end``.

    >>> ring = Ring("q", fill=-1)
    >>> for n in range(CHUNK + 3): ring.append(n * 2)
    >>> ring.drop_before(CHUNK + 1); ring[CHUNK + 2], ring.start, ring.end
    (131076, 65536, 65539)
    """

    def __init__(self, typecode: str, fill: int = 0) -> None:
        self._blank = array(typecode, [fill]) * CHUNK
        self._chunks: list[array] = []
        self._first = 0  # number of the first chunk kept
        self.start = 0  # the first index still readable (a chunk boundary)
        self.end = 0

    def __getitem__(self, n: int) -> int:
        return self._chunks[(n >> CHUNK_BITS) - self._first][n & _MASK]

    def __setitem__(self, n: int, value: int) -> None:
        self._chunks[(n >> CHUNK_BITS) - self._first][n & _MASK] = value

    def append(self, value: int) -> None:
        n = self.end
        if n & _MASK == 0:
            self._chunks.append(array(self._blank.typecode, self._blank))
        self._chunks[(n >> CHUNK_BITS) - self._first][n & _MASK] = value
        self.end = n + 1

    def drop_before(self, n: int) -> None:
        """Forget the whole chunks below index ``n``."""
        whole = (n >> CHUNK_BITS) - self._first
        if whole > 0:
            del self._chunks[:whole]
            self._first += whole
            self.start = self._first << CHUNK_BITS
