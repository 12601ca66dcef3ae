"""Doubly linked queues of slots, threaded through two shared ``array`` columns."""

from __future__ import annotations

from array import array
from collections.abc import Iterator

NONE = -1


class Links:
    """``prev`` and ``next`` of every slot; a slot is in at most one ``Queue`` at a time."""

    def __init__(self) -> None:
        self.prev = array("i")
        self.next = array("i")

    def resize(self, length: int) -> None:
        """Make room for slots below ``length``."""
        extra = length - len(self.prev)
        if extra > 0:
            filler = array("i", [NONE]) * extra
            self.prev.extend(filler)
            self.next.extend(filler)


class Queue:
    """A FIFO of slots: ``head`` is the oldest, ``tail`` the newest.

    >>> links = Links(); links.resize(4); queue = Queue(links)
    >>> for slot in (2, 0, 3): queue.push(slot)
    >>> queue.move_to_end(2); queue.remove(0); list(queue), queue.pop(), len(queue)
    ([3, 2], 3, 1)
    """

    __slots__ = ("count", "head", "links", "tail")

    def __init__(self, links: Links) -> None:
        self.links = links
        self.head = NONE
        self.tail = NONE
        self.count = 0

    def __len__(self) -> int:
        return self.count

    def __bool__(self) -> bool:
        return self.count > 0

    def __iter__(self) -> Iterator[int]:
        slot, following = self.head, self.links.next
        while slot != NONE:
            yield slot
            slot = following[slot]

    def push(self, slot: int) -> None:
        """Append ``slot`` as the newest."""
        links = self.links
        links.prev[slot] = self.tail
        links.next[slot] = NONE
        if self.tail == NONE:
            self.head = slot
        else:
            links.next[self.tail] = slot
        self.tail = slot
        self.count += 1

    def push_front(self, slot: int) -> None:
        """Put ``slot`` first in line, as the oldest."""
        links = self.links
        links.prev[slot] = NONE
        links.next[slot] = self.head
        if self.head == NONE:
            self.tail = slot
        else:
            links.prev[self.head] = slot
        self.head = slot
        self.count += 1

    def pop(self) -> int:
        """Remove and return the oldest slot (the queue must not be empty)."""
        slot = self.head
        self.remove(slot)
        return slot

    def remove(self, slot: int) -> None:
        links = self.links
        before, after = links.prev[slot], links.next[slot]
        if before == NONE:
            self.head = after
        else:
            links.next[before] = after
        if after == NONE:
            self.tail = before
        else:
            links.prev[after] = before
        self.count -= 1

    def move_to_end(self, slot: int) -> None:
        if slot != self.tail:
            self.remove(slot)
            self.push(slot)
