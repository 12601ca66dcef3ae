"""Hash buckets of node numbers, chained through a column the owner keeps.

The owner stores its nodes (slots, ghost entries) and their ``chain`` links
in its own arrays and walks a chain itself from ``head(h)``, comparing what
it stores; ``Buckets`` only keeps the bucket heads.  When nodes outnumber
buckets the table doubles the way Redis's ``dict`` does: a second table is
made and every later ``add`` or ``remove`` moves two old buckets into it,
so no single operation rehashes more than a few nodes.  ``load`` is the
nodes per bucket allowed before doubling: 1 where comparing a node is dear
(the key table's byte strings), more where it is an integer compare (the
ghost's fingerprints), for fewer heads.  Until the move is
done a hash whose old bucket has not moved yet is still looked up there.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, MutableSequence

EMPTY = -1
MOVES_PER_CHANGE = 2  # old buckets moved by each add or remove during a resize
FIRST_SIZE = 8


class Buckets:
    """``hash -> first node`` of a chain; ``chain[node]`` is the next node or ``EMPTY``.

    >>> chain = array("q", [EMPTY]) * 100
    >>> buckets = Buckets(chain, hash_of=lambda node: node * 7)
    >>> for node in range(100): buckets.add(node, node * 7)
    >>> buckets.remove(42, 42 * 7)
    >>> def find(h):
    ...     node = buckets.head(h)
    ...     while node != EMPTY and node * 7 != h: node = chain[node]
    ...     return node
    >>> find(41 * 7), find(42 * 7), buckets.count
    (41, -1, 99)
    """

    def __init__(
        self,
        chain: MutableSequence[int],
        hash_of: Callable[[int], int],
        typecode: str = "q",
        size: int = FIRST_SIZE,
        load: int = 1,
    ) -> None:
        self.chain = chain
        self.hash_of = hash_of  # recomputes a node's hash when it moves
        self.typecode = typecode  # of the heads: "i" while node numbers fit in 31 bits
        self.load = load
        self.count = 0
        self._size = max(1 << (size - 1).bit_length(), FIRST_SIZE)  # a power of two
        self._heads = array(typecode, [EMPTY]) * self._size
        self._old: array | None = None  # the table being emptied into _heads
        self._moved = 0  # old buckets below this have moved

    def head(self, h: int) -> int:
        """The first node of ``h``'s chain."""
        old = self._old
        if old is not None:
            bucket = h & (len(old) - 1)
            if bucket >= self._moved:
                return old[bucket]
        return self._heads[h & (self._size - 1)]

    def add(self, node: int, h: int) -> None:
        table, bucket = self._bucket(h)
        self.chain[node] = table[bucket]
        table[bucket] = node
        self.count += 1
        self._step()

    def fill(self, hashes: list[int]) -> None:
        """Add nodes ``0 .. len(hashes) - 1`` to an empty table sized for them (start-up)."""
        if self.count or self._size < len(hashes):
            raise ValueError("fill needs an empty table made with size >= len(hashes)")
        heads, chain, mask = self._heads, self.chain, self._size - 1
        for node, h in enumerate(hashes):
            bucket = h & mask
            chain[node] = heads[bucket]
            heads[bucket] = node
        self.count = len(hashes)

    def remove(self, node: int, h: int) -> None:
        """Unlink ``node`` (which must be in ``h``'s chain)."""
        table, bucket = self._bucket(h)
        chain = self.chain
        current = table[bucket]
        if current == node:
            table[bucket] = chain[node]
        else:
            while chain[current] != node:
                current = chain[current]
            chain[current] = chain[node]
        chain[node] = EMPTY
        self.count -= 1
        self._step()

    def _bucket(self, h: int) -> tuple[array, int]:
        old = self._old
        if old is not None:
            bucket = h & (len(old) - 1)
            if bucket >= self._moved:
                return old, bucket
        return self._heads, h & (self._size - 1)

    def _step(self) -> None:
        old = self._old
        if old is None:
            if self.count > self._size * self.load:
                self._old = self._heads
                self._size *= 2
                self._heads = array(self.typecode, [EMPTY]) * self._size
                self._moved = 0
            return
        heads, chain, hash_of = self._heads, self.chain, self.hash_of
        mask = len(heads) - 1
        for _ in range(MOVES_PER_CHANGE):
            bucket = self._moved
            node = old[bucket]
            while node != EMPTY:
                following = chain[node]
                target = hash_of(node) & mask
                chain[node] = heads[target]
                heads[target] = node
                node = following
            old[bucket] = EMPTY
            self._moved = bucket + 1
            if self._moved == len(old):
                self._old = None
                return
