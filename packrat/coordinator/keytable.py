"""The index's keys: each stored once, in key order, found by hash, numbered by slot.

Ten million keys as Python ``str`` objects in a ``dict`` would take over a
gigabyte; here each key's UTF-8 bytes sit in a *page*, a ``bytearray`` of
the keys of one stretch of the key order, and a key is known by its *slot*,
the small integer the eviction policy and the index's columns use:

* ``_ref[slot]``: where its bytes are (page, offset, length);
* pages in key order, each with its slots sorted by key and its largest
  key (``_maxes``, for ``bisect``), so "keys with this prefix after this
  one" is a binary search and a walk (``list_keys``);
* ``Buckets``: the slots chained by ``hash(key)`` for lookups.

A page holds up to ``2 * PAGE_KEYS`` keys and is split beyond that, and
joins a neighbour below ``PAGE_KEYS // 2`` (a cache removes its oldest keys
first, which would otherwise leave pages of a few keys, each costing a
page's fixed 200 bytes).  A key removed leaves its bytes behind until they
are a quarter of its page, when the page is rewritten.  Each touches one or
two pages only, so no operation costs more than a few hundred keys' worth
of work whatever the table holds.  About ``22 + 1.2 * len(key)`` bytes per
key, after any number of removals.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterator

from packrat.structures.buckets import EMPTY, Buckets

PAGE_KEYS = 64  # a page splits beyond twice this many keys (a short binary search)
PAGE_BYTES = 1 << 16  # offsets are 16 bits; keys are at most 1 KiB
FREE = -1  # in ``_ref``: the slot holds no key


class KeyTable:
    """Keys (``bytes``) <-> slots, in key order.

    >>> table = KeyTable()
    >>> slots = [table.add(key) for key in (b"b/2", b"a/1", b"b/1", b"c")]
    >>> table.find(b"b/1") == slots[2], table.find(b"zz"), table.key(slots[0])
    (True, -1, b'b/2')
    >>> table.remove(slots[0]), table.list_keys(b"b/", b"", 10), len(table)
    (b'b/2', [b'b/1'], 3)
    """

    def __init__(self) -> None:
        self._ref = array("q")  # page << 32 | offset << 16 | length; FREE
        self._chain = array("i")  # next slot in a hash chain, or in the free list
        self._free = EMPTY
        self._buckets = Buckets(self._chain, self._hash_of, typecode="i")
        self._pages: list[bytearray | None] = []
        self._page_slots: list[array | None] = []  # each page's slots, in key order
        self._page_dead: list[int] = []  # bytes of removed keys still in the page
        self._spare_pages: list[int] = []
        self._order: list[int] = []  # page numbers in key order
        self._maxes: list[bytes] = []  # each page's largest key, as ``_order``

    def __len__(self) -> int:
        return self._buckets.count

    @property
    def slot_count(self) -> int:
        """One more than the highest slot handed out (the length of per-slot columns)."""
        return len(self._ref)

    # -- lookups ----------------------------------------------------------

    def find(self, key: bytes) -> int:
        """The slot holding ``key``, or -1."""
        slot = self._buckets.head(hash(key))
        ref, chain, pages, length = self._ref, self._chain, self._pages, len(key)
        while slot != EMPTY:
            where = ref[slot]
            if where & 0xFFFF == length:
                offset = (where >> 16) & 0xFFFF
                if pages[where >> 32][offset : offset + length] == key:
                    return slot
            slot = chain[slot]
        return EMPTY

    def key(self, slot: int) -> bytes:
        where = self._ref[slot]
        offset = (where >> 16) & 0xFFFF
        return bytes(self._pages[where >> 32][offset : offset + (where & 0xFFFF)])

    def ident(self, slot: int) -> int:
        """A 64-bit fingerprint of the slot's key (its hash), for the policy's ghost."""
        return self._hash_of(slot)

    def slots(self) -> Iterator[int]:
        """Every slot in use, in key order."""
        for page in self._order:
            yield from self._page_slots[page]

    def list_keys(self, prefix: bytes, after: bytes, limit: int) -> list[bytes]:
        """Up to ``limit`` keys starting with ``prefix`` and greater than ``after``, in order.

        A binary search and a walk of at most ``limit`` keys: a page of a
        listing costs the same whatever the table holds.
        """
        found = []
        for slot in self.slots_after(max(prefix, after), limit, skip=after):
            key = self.key(slot)
            if not key.startswith(prefix):
                break
            found.append(key)
        return found

    def slots_after(self, start: bytes, limit: int, skip: bytes = b"") -> list[int]:
        """Up to ``limit`` slots whose keys are at least ``start`` (and not ``skip``), in order."""
        position = bisect_left(self._maxes, start)
        if position == len(self._order):
            return []
        page = self._order[position]
        index = self._search(page, start)
        slots = self._page_slots[page]
        if index < len(slots) and self.key(slots[index]) == skip:
            index += 1  # only the first key can be ``skip``: every other is above ``start``
        found = list(slots[index : index + limit])
        order, page_slots = self._order, self._page_slots
        while len(found) < limit and position + 1 < len(order):
            position += 1
            found += page_slots[order[position]][: limit - len(found)]
        return found

    def build(self, keys: list[bytes]) -> None:
        """Fill an empty table with ``keys`` (strictly increasing): slot n holds ``keys[n]``.

        Pages are filled in order and the buckets sized once, so a
        million keys load in about a second (``add`` would search and split).
        """
        if len(self):
            raise ValueError("build fills an empty table")
        self._ref = array("q", [FREE]) * len(keys)
        self._chain = array("i", [EMPTY]) * len(keys)
        self._buckets = Buckets(self._chain, self._hash_of, typecode="i", size=len(keys))
        ref = self._ref
        for start in range(0, len(keys), PAGE_KEYS):
            end = min(start + PAGE_KEYS, len(keys))
            page = self._new_page()
            data = self._pages[page]
            for slot in range(start, end):
                key = keys[slot]
                ref[slot] = page << 32 | len(data) << 16 | len(key)
                data += key
            self._page_slots[page] = array("i", range(start, end))
            self._order.append(page)
            self._maxes.append(keys[end - 1])
        self._buckets.fill(list(map(hash, keys)))

    # -- changes ----------------------------------------------------------

    def add(self, key: bytes) -> int:
        """Store ``key`` (not present yet) and return its new slot."""
        slot = self._free
        if slot == EMPTY:
            slot = len(self._ref)
            self._ref.append(FREE)
            self._chain.append(EMPTY)
        else:
            self._free = self._chain[slot]
        self._place(slot, key)
        self._buckets.add(slot, hash(key))
        return slot

    def remove(self, slot: int) -> bytes:
        """Forget the key in ``slot`` and return it; the slot is handed out again later."""
        key = self.key(slot)
        self._buckets.remove(slot, hash(key))
        position = bisect_left(self._maxes, key)
        page = self._order[position]
        slots = self._page_slots[page]
        index = slots.index(slot)  # a scan in C: cheaper than a binary search in Python
        del slots[index]
        self._page_dead[page] += len(key)
        self._ref[slot] = FREE
        self._chain[slot] = self._free
        self._free = slot
        if not slots:
            self._drop_page(position)
            return key
        if index == len(slots):
            self._maxes[position] = self.key(slots[-1])
        if len(slots) < PAGE_KEYS // 2 and len(self._order) > 1:
            self._join(position)
        elif self._page_dead[page] > len(self._pages[page]) // 4:
            self._rewrite(page, slots)
        return key

    # -- pages ------------------------------------------------------------

    def _hash_of(self, slot: int) -> int:
        return hash(self.key(slot))

    def _search(self, page: int, key: bytes) -> int:
        """Index of the first slot of ``page`` whose key is not below ``key``."""
        slots, data, ref = self._page_slots[page], self._pages[page], self._ref
        low, high = 0, len(slots)
        while low < high:
            middle = (low + high) // 2
            where = ref[slots[middle]]
            offset = (where >> 16) & 0xFFFF
            if data[offset : offset + (where & 0xFFFF)] < key:
                low = middle + 1
            else:
                high = middle
        return low

    def _place(self, slot: int, key: bytes) -> None:
        """Put ``key``'s bytes in its page (a new page for the first key) and sort ``slot`` in."""
        if not self._order:
            page = self._new_page()
            self._order.append(page)
            self._maxes.append(key)
            position = 0
        else:
            position = min(bisect_left(self._maxes, key), len(self._order) - 1)
            page = self._order[position]
        data = self._pages[page]
        if len(data) + len(key) > PAGE_BYTES:
            self._rewrite(page, self._page_slots[page])
            data = self._pages[page]
        self._ref[slot] = page << 32 | len(data) << 16 | len(key)
        data += key
        slots = self._page_slots[page]
        slots.insert(self._search(page, key), slot)  # ``slot`` is not among them yet
        if key > self._maxes[position]:
            self._maxes[position] = key
        if len(slots) > 2 * PAGE_KEYS or len(data) > PAGE_BYTES // 2:
            self._split(position)

    def _new_page(self) -> int:
        if self._spare_pages:
            page = self._spare_pages.pop()
            self._pages[page] = bytearray()
            self._page_slots[page] = array("i")
            self._page_dead[page] = 0
            return page
        self._pages.append(bytearray())
        self._page_slots.append(array("i"))
        self._page_dead.append(0)
        return len(self._pages) - 1

    def _rewrite(self, page: int, slots: array) -> None:
        """Copy ``slots``' keys (from whichever pages hold them) into a fresh ``page``."""
        pages, ref, base = self._pages, self._ref, page << 32
        data = bytearray()
        end = 0  # len(data), kept as it grows: a call less per key
        for slot in slots:
            where = ref[slot]
            offset, length = (where >> 16) & 0xFFFF, where & 0xFFFF
            ref[slot] = base | end << 16 | length
            data += pages[where >> 32][offset : offset + length]
            end += length
        self._pages[page] = data
        self._page_slots[page] = slots
        self._page_dead[page] = 0

    def _split(self, position: int) -> None:
        """Move the upper half of the page at ``position`` in the order to a new page."""
        page = self._order[position]
        slots = self._page_slots[page]
        half = len(slots) // 2
        upper = self._new_page()
        self._rewrite(upper, slots[half:])
        self._rewrite(page, slots[:half])
        self._order.insert(position + 1, upper)
        self._maxes.insert(position + 1, self._maxes[position])
        self._maxes[position] = self.key(slots[half - 1])

    def _join(self, position: int) -> None:
        """Merge the small page at ``position`` with a neighbour (split again if too large)."""
        if position + 1 == len(self._order):
            position -= 1
        page, following = self._order[position], self._order[position + 1]
        self._rewrite(page, self._page_slots[page] + self._page_slots[following])
        self._maxes[position] = self._maxes[position + 1]
        self._drop_page(position + 1)
        if len(self._page_slots[page]) > 2 * PAGE_KEYS or len(self._pages[page]) > PAGE_BYTES // 2:
            self._split(position)

    def _drop_page(self, position: int) -> None:
        page = self._order.pop(position)
        del self._maxes[position]
        self._pages[page] = None
        self._page_slots[page] = None
        self._spare_pages.append(page)
