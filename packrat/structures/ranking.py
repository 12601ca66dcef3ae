"""Slots ordered by a priority, lowest first: the Greedy-Dual policies' queue.

A ``SortedList`` of one Python int per entry took about 56 bytes an entry;
here entries sit in *blocks*, two ``array`` columns each (priority, slot),
in order, with each block's highest priority in ``_maxes`` for ``bisect``,
as ``sortedcontainers`` keeps its sublists: about 14 bytes an entry, and 4
more per slot saying which block holds it.  A block splits beyond ``2 *
LOAD`` entries and joins a neighbour below ``LOAD // 2``, so no operation
moves more than a few hundred entries however many are ranked.

Entries of equal priority leave in the order they came (a new entry goes
after every entry of its priority), which is the ``(priority, placement
number)`` order libCacheSim's ``abstractRank`` keeps, without storing the
number.  Removing a slot finds it in its block by a byte search of the
block's slots, not by its priority, so a long run of ties costs nothing
more.  That search is why blocks are small: ``bytes.find`` of a slot took
9 us in a block of 2,048 (the bytes of neighbouring slots look alike), and
256 entries cost about 2 bytes of block overhead each.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterator

from packrat.structures.columns import grow, length_for

LOAD = 128  # a block splits beyond twice this many entries and joins a neighbour below half
NOWHERE = -1  # in ``_block``: the slot is not ranked
_SLOT = array("i").itemsize


class Ranking:
    """``(priority, slot)`` entries, lowest priority first, ties first come first.

    >>> ranking = Ranking()
    >>> for priority, slot in ((2.0, 7), (1.0, 3), (2.0, 5), (0.5, 9)): ranking.add(priority, slot)
    >>> ranking.remove(9); ranking.pop_first(), list(ranking), len(ranking), 3 in ranking
    ((1.0, 3), [(2.0, 7), (2.0, 5)], 2, False)
    """

    def __init__(self) -> None:
        self._priorities: list[array | None] = []  # by block number
        self._slots: list[array | None] = []  # by block number
        self._spare: list[int] = []  # block numbers free for reuse
        self._order: list[int] = []  # block numbers, lowest entries first
        self._maxes: list[float] = []  # each block's highest priority, as ``_order``
        self._block = array("i")  # by slot: the block number holding it, or NOWHERE
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def __contains__(self, slot: int) -> bool:
        return 0 <= slot < len(self._block) and self._block[slot] != NOWHERE

    def __iter__(self) -> Iterator[tuple[float, int]]:
        for block in self._order:
            yield from zip(self._priorities[block], self._slots[block], strict=True)

    def add(self, priority: float, slot: int) -> None:
        """Rank ``slot`` (not ranked yet) after every entry of priority <= ``priority``."""
        if slot >= len(self._block):
            grow(self._block, length_for(slot), NOWHERE)
        maxes = self._maxes
        position = bisect_right(maxes, priority)
        if position == len(maxes):
            if not maxes:
                self._order.append(self._new_block())
                maxes.append(priority)
            position = len(maxes) - 1
            maxes[position] = priority
        block = self._order[position]
        priorities = self._priorities[block]
        index = bisect_right(priorities, priority)
        priorities.insert(index, priority)
        self._slots[block].insert(index, slot)
        self._block[slot] = block
        self.count += 1
        if len(priorities) > 2 * LOAD:
            self._split(position)

    def pop_first(self) -> tuple[float, int]:
        """Unrank the first entry (there must be one) and return it."""
        block = self._order[0]
        slots = self._slots[block]
        priority = self._priorities[block].pop(0)
        slot = slots.pop(0)
        self._block[slot] = NOWHERE
        self.count -= 1
        if not slots:
            self._drop(0)
        return priority, slot

    def remove(self, slot: int) -> None:
        """Unrank ``slot`` (which must be ranked)."""
        block = self._block[slot]
        slots, priorities = self._slots[block], self._priorities[block]
        index = _find(slots, slot)
        priority = priorities.pop(index)
        del slots[index]
        self._block[slot] = NOWHERE
        self.count -= 1
        # Rare: a block's last entry, or a small block.  Its position is searched
        # from the first block that may hold ``priority`` (more when ties span blocks).
        if index == len(slots) or len(slots) < LOAD // 2:
            position = self._order.index(block, bisect_left(self._maxes, priority))
            if not slots:
                self._drop(position)
                return
            self._maxes[position] = priorities[-1]
            if len(slots) < LOAD // 2:
                self._join(position)

    def _new_block(self) -> int:
        if self._spare:
            block = self._spare.pop()
            self._priorities[block] = array("d")
            self._slots[block] = array("i")
            return block
        self._priorities.append(array("d"))
        self._slots.append(array("i"))
        return len(self._slots) - 1

    def _drop(self, position: int) -> None:
        block = self._order.pop(position)
        del self._maxes[position]
        self._priorities[block] = None
        self._slots[block] = None
        self._spare.append(block)

    def _split(self, position: int) -> None:
        """Move the upper half of the block at ``position`` to a new block after it."""
        block = self._order[position]
        priorities, slots = self._priorities[block], self._slots[block]
        half = len(slots) // 2
        upper = self._new_block()
        self._priorities[upper] = priorities[half:]
        self._slots[upper] = moved = slots[half:]
        del priorities[half:]
        del slots[half:]
        where = self._block
        for slot in moved:
            where[slot] = upper
        self._order.insert(position + 1, upper)
        self._maxes.insert(position + 1, self._maxes[position])
        self._maxes[position] = priorities[-1]

    def _join(self, position: int) -> None:
        """Merge the small block at ``position`` with a neighbour (split again if too large)."""
        if position + 1 == len(self._order):
            if position == 0:
                return  # the only block may be small
            position -= 1
        block, following = self._order[position], self._order[position + 1]
        moved = self._slots[following]
        self._priorities[block].extend(self._priorities[following])
        self._slots[block].extend(moved)
        where = self._block
        for slot in moved:
            where[slot] = block
        self._maxes[position] = self._maxes[position + 1]
        self._drop(position + 1)
        if len(self._slots[block]) > 2 * LOAD:
            self._split(position)


def _find(slots: array, slot: int) -> int:
    """Where ``slot`` is in ``slots``, by a byte search (``array.index`` makes an int per entry)."""
    data, needle = slots.tobytes(), array("i", [slot]).tobytes()
    at = data.find(needle)
    while at > 0 and at % _SLOT:  # matched across two entries
        at = data.find(needle, at + 1)
    if at < 0:
        raise KeyError(f"slot {slot} is not in its block")
    return at // _SLOT
