"""The uploader's backlog: objects committed locally and not yet in the store.

The durable queue is the object files themselves.  Every commit stamps its
file's mtime with a strictly increasing commit number (``ObjectWriter``), so
"everything committed after X" is a question the disk answers.  The uploader
keeps one number on disk, the *mark*: every object whose commit number is at
or below it has reached the store (or was replaced, deleted or evicted
before it could).  After a restart or a ``kill -9`` it walks the fan-out
directories once and takes back every file stamped after the mark; while it
runs, inotify tells it of each new commit.  Nothing is written per object,
and nothing can be committed without being found again.

``Backlog`` is the part in memory: what is pending (the newest commit number
per object file), what is being uploaded, and the mark it is safe to write.
The mark never passes a pending or in-flight object, nor an object it had no
room for (``max_objects``: beyond it, new commits are left on the disk and
found again by a walk once the backlog has room), and trails the clock by
``LAG_NS``, so a commit whose rename is seen late (its number was taken a
moment before) is never passed over: at worst a restart looks at the last
``LAG_NS`` of commits again, which the store's versions make harmless.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field

LAG_NS = 30 * 1_000_000_000  # the mark stays this far behind the clock


@dataclass
class Backlog:
    """Pending uploads by object file name (``sha256(key)``), oldest commit first."""

    max_objects: int
    pending: dict[str, int] = field(default_factory=dict)  # name -> commit number
    sizes: dict[str, int] = field(default_factory=dict)  # name -> bytes, pending or in flight
    in_flight: dict[str, int] = field(default_factory=dict)
    untracked_from: int | None = None  # smallest commit number left on the disk (full)
    _heap: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pending) + len(self.in_flight)

    @property
    def bytes(self) -> int:
        return sum(self.sizes.values())

    def add(self, name: str, stamp: int, size: int) -> bool:
        """Take commit ``stamp`` of ``name``; False when there is no room (left on disk)."""
        known = self.pending.get(name)
        if known is not None and known >= stamp:
            return True
        if self.in_flight.get(name, -1) >= stamp:
            return True
        if known is None and len(self) >= self.max_objects:
            if self.untracked_from is None or stamp < self.untracked_from:
                self.untracked_from = stamp
            return False
        self.pending[name] = stamp
        self.sizes[name] = size
        heapq.heappush(self._heap, (stamp, name))
        return True

    def take(self) -> tuple[str, int] | None:
        """The oldest pending object not being uploaded, now in flight; None if none."""
        while self._heap:
            stamp, name = heapq.heappop(self._heap)
            if self.pending.get(name) != stamp:
                continue  # replaced by a newer commit, or dropped
            if name in self.in_flight:
                heapq.heappush(self._heap, (stamp, name))
                return None  # (its previous version is still going)
            del self.pending[name]
            self.in_flight[name] = stamp
            return name, stamp
        return None

    def has_work(self) -> bool:
        return any(name not in self.in_flight for name in self.pending)

    def finished(self, name: str, stamp: int, retry: bool = False) -> None:
        """The upload of ``stamp`` ended; ``retry``: it failed and goes back in the queue."""
        if self.in_flight.get(name) == stamp:
            del self.in_flight[name]
        if retry and self.pending.get(name, -1) < stamp:
            self.pending[name] = stamp
            heapq.heappush(self._heap, (stamp, name))
        elif name not in self.pending:
            self.sizes.pop(name, None)

    def drop(self, name: str) -> bool:
        """Forget ``name``'s pending upload (its file is gone); True if one was pending."""
        stamp = self.pending.pop(name, None)
        if name not in self.in_flight:
            self.sizes.pop(name, None)
        return stamp is not None

    def mark(self, now_ns: int) -> int:
        """The highest commit number all of whose objects, and all before, are settled."""
        floor = now_ns - LAG_NS
        for stamps in (self.pending.values(), self.in_flight.values()):
            if stamps:
                floor = min(floor, min(stamps) - 1)
        if self.untracked_from is not None:
            floor = min(floor, self.untracked_from - 1)
        return floor

    def oldest(self) -> int | None:
        """The commit number of the oldest object waiting, if any."""
        stamps = [*self.pending.values(), *self.in_flight.values()]
        return min(stamps) if stamps else None
