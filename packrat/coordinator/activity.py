"""What the status page shows besides the index: front ends, recent uploads, the last hour.

The coordinator sees every commit and every batch of reads, so it keeps
these figures; front ends only report.  Everything here is per batch or
per commit, never per key read, so the coordinator's cost per read stays
what the policy costs.  Time is passed in (``now``), as in the index, so
the same code is tested with a made-up clock.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from packrat.core.pids import alive

HISTORY_INTERVAL = 60  # seconds per bucket of the history
HISTORY_BUCKETS = 60  # the last hour
RECENT_UPLOADS = 10
# A front end reports at least every ``client.HEARTBEAT`` (5) seconds; one
# not heard of for three of those is "silent" (stopped, hung or restarting).
SILENT_AFTER = 15.0


class History:
    """Per-minute totals of hits, misses, uploads and traffic over the last hour.

    >>> history = History()
    >>> history.add(3600 * 24 + 61, hits=3, bytes_out=10)
    >>> history.add(3600 * 24 + 119, misses=1)
    >>> history.buckets(3600 * 24 + 125)[-2:]  # doctest: +NORMALIZE_WHITESPACE
    [{'start': 86460, 'hits': 3, 'misses': 1, 'uploads': 0, 'bytes_in': 0, 'bytes_out': 10},
     {'start': 86520, 'hits': 0, 'misses': 0, 'uploads': 0, 'bytes_in': 0, 'bytes_out': 0}]
    """

    FIELDS = ("hits", "misses", "uploads", "bytes_in", "bytes_out")

    def __init__(self, interval: int = HISTORY_INTERVAL, length: int = HISTORY_BUCKETS) -> None:
        self.interval = interval
        self.length = length
        # [start, hits, misses, uploads, bytes_in, bytes_out], oldest first
        self._buckets: deque[list[int]] = deque(maxlen=length)

    def add(
        self,
        now: float,
        hits: int = 0,
        misses: int = 0,
        uploads: int = 0,
        bytes_in: int = 0,
        bytes_out: int = 0,
    ) -> None:
        start = int(now // self.interval) * self.interval
        buckets = self._buckets
        # A clock that steps back adds to the newest bucket rather than reorder them.
        if not buckets or start > buckets[-1][0]:
            buckets.append([start, 0, 0, 0, 0, 0])
        bucket = buckets[-1]
        bucket[1] += hits
        bucket[2] += misses
        bucket[3] += uploads
        bucket[4] += bytes_in
        bucket[5] += bytes_out

    def buckets(self, now: float) -> list[dict[str, int]]:
        """The ``length`` buckets up to ``now``'s, oldest first; quiet minutes are zeros."""
        last = int(now // self.interval) * self.interval
        kept = {bucket[0]: bucket for bucket in self._buckets}
        rows = []
        for n in range(self.length - 1, -1, -1):
            start = last - n * self.interval
            values = kept.get(start, (start, 0, 0, 0, 0, 0))
            rows.append({"start": start, **dict(zip(self.FIELDS, values[1:], strict=True))})
        return rows


@dataclass(slots=True)
class RecentUpload:
    key: str
    size: int  # data bytes
    filename: str
    stored_at: float


class Activity:
    """Front ends seen, the latest uploads still stored, and the history."""

    def __init__(self) -> None:
        self.history = History()
        self.frontends: dict[tuple[int, int], float] = {}  # (number, pid): last seen
        self._recent: OrderedDict[str, RecentUpload] = OrderedDict()

    def reads(
        self,
        now: float,
        hits: int,
        misses: int,
        bytes_in: int,
        bytes_out: int,
        number: int,
        pid: int,
    ) -> None:
        """One batch of reads (a ``Touch``) from front end ``number`` (``pid`` 0: anonymous)."""
        self.history.add(now, hits=hits, misses=misses, bytes_in=bytes_in, bytes_out=bytes_out)
        if pid:
            self.frontends[(number, pid)] = now

    def uploaded(self, now: float, key: str, size: int, filename: str) -> None:
        self.history.add(now, uploads=1)
        recent = self._recent
        recent.pop(key, None)
        recent[key] = RecentUpload(key, size, filename, now)
        if len(recent) > RECENT_UPLOADS:
            recent.popitem(last=False)

    def removed(self, key: str) -> None:
        """``key`` was evicted, deleted or dropped: it is no longer a recent upload."""
        self._recent.pop(key, None)

    def recent_uploads(self) -> list[dict[str, Any]]:
        """Newest first."""
        return [
            {"key": r.key, "size": r.size, "filename": r.filename, "stored_at": r.stored_at}
            for r in reversed(self._recent.values())
        ]

    def frontend_rows(
        self, now: float, running: Callable[[int], bool] = alive
    ) -> list[dict[str, Any]]:
        """A row per front-end process, by number then pid.

        A process replaced by a newer one of the same number (a restart) is
        forgotten once it has exited; two that run at once under one number
        (a set-up mistake) both stay listed, so the status page shows it.
        """
        newest: dict[int, float] = {}
        for (number, _), last_seen in self.frontends.items():
            newest[number] = max(newest.get(number, last_seen), last_seen)
        for (number, pid), last_seen in list(self.frontends.items()):
            if last_seen < newest[number] and not running(pid):
                del self.frontends[(number, pid)]
        rows = []
        for (number, pid), last_seen in sorted(self.frontends.items()):
            age = max(now - last_seen, 0.0)
            rows.append(
                {
                    "role": "frontend",
                    "number": number,
                    "pid": pid,
                    "last_seen_seconds": round(age, 3),
                    "state": "running" if age <= SILENT_AFTER else "silent",
                }
            )
        return rows
