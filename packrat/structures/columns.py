"""Per-slot columns: ``array``s indexed by slot, grown as slots are handed out."""

from __future__ import annotations

from array import array

STEP = 1 << 16  # most entries added at once


def length_for(slot: int) -> int:
    """A column length with room for ``slot`` and a little to spare.

    Doubling, as ``list`` does, would leave up to half of a column of
    millions of entries unused (a third of the memory at three million
    objects), and filling the new half holds the loop: about 3 ms per
    column at three million slots, and a policy has several.  An eighth,
    at most ``STEP`` entries, keeps each growth under a millisecond; the
    ``realloc`` beneath moves a large column's pages (``mremap``) rather
    than copying them, and ``array`` itself over-allocates by a sixteenth.
    """
    return slot + 1 + min(slot >> 3, STEP) + 64


def grow(column: array, length: int, fill: int = 0) -> None:
    """Extend ``column`` to ``length`` entries of ``fill``."""
    extra = length - len(column)
    if extra > 0:
        column.extend(array(column.typecode, [fill]) * extra)
