"""Per-slot columns: ``array``s indexed by slot, grown as slots are handed out."""

from __future__ import annotations

from array import array


def length_for(slot: int) -> int:
    """A column length with room for ``slot`` and an eighth to spare.

    Doubling, as ``list`` does for small lists, would leave up to half of a
    column of millions of entries unused (a third of the memory at three
    million objects); an eighth keeps the copies amortised all the same.
    """
    return slot + 1 + (slot >> 3) + 64


def grow(column: array, length: int, fill: int = 0) -> None:
    """Extend ``column`` to ``length`` entries of ``fill``."""
    extra = length - len(column)
    if extra > 0:
        column.extend(array(column.typecode, [fill]) * extra)
