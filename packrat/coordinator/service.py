"""The coordinator's logic: typed requests in, replies out, the index kept exact.

It never reads object contents: a commit is a rename (the claim), the
unlinks of its victims, a stamp and a rename into place, so it answers
thousands of requests a second.  Order within a commit keeps the disk within
``max_size`` and the index equal to the files: the staged file is claimed
first (a front end that gives up can no longer take it away), the victims
are removed before the new file goes in, and a failure after the index made
room undoes what would otherwise leave the index and the disk apart.
"""

from __future__ import annotations

import logging
import os
import time

from packrat.coordinator.activity import Activity
from packrat.coordinator.index import Index
from packrat.coordinator.protocol import Commit, Delete, Drop, Reply, Request, Stats, Touch
from packrat.coordinator.snapshotter import ROWS, SnapshotJob
from packrat.core.errors import ErrorCode
from packrat.core.keys import InvalidKey, validate_key
from packrat.core.settings import Settings
from packrat.store import Layout, key_digest, sweep_staging
from packrat.store.scan import OBJECT_NAME, rebuild, timestamp_granularity
from packrat.store.snapshot import load_snapshot
from packrat.store.staging import no_space
from packrat.store.writer import BadStaging, ObjectWriter, StagingMissing

log = logging.getLogger("packrat.coordinator")


class Coordinator:
    """Owns the index and applies every change to ``objects/``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.layout = Layout(settings.cache_root)
        self.writer = ObjectWriter(self.layout)
        self.index = Index(settings.cache_policy, settings.cache_max_size, settings.cache_low_water)
        self.activity = Activity()
        self.changes = 0  # since the last snapshot
        self.started_at = time.time()

    # -- start-up and snapshots -------------------------------------------

    def load(self) -> None:
        """Open the store, sweep staging and rebuild the index from the files."""
        started = time.monotonic()
        self.writer.open()
        swept = sweep_staging(self.layout, self.settings.coordinator_stale_staging)
        snapshot = load_snapshot(self.layout)
        rebuilt = rebuild(self.layout, snapshot, timestamp_granularity(self.layout))
        self.index.load(rebuilt.keys, rebuilt.charges, rebuilt.seen, rebuilt.order)
        self.writer.clock_ns = rebuilt.sequence
        self.index.overhead = self.writer.dirs.total
        over = self._evict(self.index.make_room(0))  # max_size may have shrunk
        report = rebuilt.report
        log.info(
            "index loaded in %.2fs (files scanned in %.2fs; %s snapshot): %d restored, "
            "%d adopted, %d dropped, %d non-objects removed, %d moved from the old layout, "
            "%d over max_size evicted, %d staging files removed; %d objects, %d bytes",
            time.monotonic() - started,
            report.seconds,
            "clean" if snapshot.clean else "no" if not len(snapshot) else "aged",
            report.restored,
            report.adopted,
            report.dropped,
            report.removed,
            report.migrated,
            over,
            swept,
            len(self.index),
            self.index.disk_bytes,
        )

    def snapshot(self, clean: bool = False) -> bool:
        """Save the whole index now; a failure is logged, never fatal (the files are the truth).

        The server writes periodic snapshots a slice at a time
        (``begin_snapshot``); this is for the clean one at shutdown.
        """
        try:
            self.begin_snapshot().finish(clean)
        except OSError as e:
            log.error("could not save the index snapshot: %s", e)
            return False
        self.changes = 0
        return True

    def begin_snapshot(self, rows: int = ROWS) -> SnapshotJob:
        """A snapshot of the index to be written step by step, ``rows`` per block."""
        return SnapshotJob(self.index, self.layout, self.writer.clock_ns, rows)

    def close(self) -> None:
        self.writer.close()

    # -- requests ---------------------------------------------------------

    def handle(self, request: Request) -> Reply | None:
        """Apply one request; return its reply (None for a ``Touch``)."""
        if isinstance(request, Touch):
            self.index.touch(request.keys, request.misses)
            self.activity.reads(
                time.time(),
                len(request.keys),
                request.misses,
                request.bytes_in,
                request.bytes_out,
                request.number,
                request.pid,
            )
            if request.keys:  # an empty batch (a heartbeat) changes no recency
                self.changes += 1
            return None
        if time.time() > request.deadline:
            return _error(request.id, ErrorCode.STALE, "the request expired before it ran")
        if isinstance(request, Stats):
            return Reply(request.id, stats=self.stats())
        try:
            if isinstance(request, Drop):
                return self.drop(request)
            validate_key(request.key)
            if isinstance(request, Commit):
                return self.commit(request)
            return self.delete(request)
        except InvalidKey as e:
            return _error(request.id, ErrorCode.INVALID_MESSAGE, e.message)
        except OSError as e:
            # The coordinator outlives any one failed file operation.
            op = type(request).__name__.lower()
            log.error("%s failed: %s", op, e)
            code = ErrorCode.INSUFFICIENT_STORAGE if no_space(e) else ErrorCode.IO_ERROR
            return _error(request.id, code, f"the {op} failed on the server: {e.strerror}")

    def commit(self, request: Commit) -> Reply:
        key = request.key
        try:
            claimed = self.writer.claim(request.staging, request.file_size, key)
        except StagingMissing as e:
            return _error(request.id, ErrorCode.STAGING_MISSING, str(e))
        except (ValueError, BadStaging) as e:
            return _error(request.id, ErrorCode.INVALID_MESSAGE, str(e))
        if claimed.charge > self.index.capacity:
            self.writer.discard(claimed.name)
            return _error(
                request.id,
                ErrorCode.TOO_LARGE,
                f"the object takes {claimed.charge} bytes on disk, more than the whole cache "
                f"({self.index.capacity} bytes)",
            )
        victims = self.index.make_room(claimed.charge)
        # The key's old version may be a victim: the rename replaces it, so
        # readers never see it missing in between.
        replaced_victim = any(victim == key for victim, _ in victims)
        self._evict([victim for victim in victims if victim[0] != key])
        try:
            growth = self.writer.publish(claimed)
        except OSError:
            self.writer.discard(claimed.name)
            if replaced_victim:  # it left the index: its file goes too
                self.writer.remove(key)
            raise
        stored_at = self.index.insert(key, claimed.charge)
        self.activity.uploaded(stored_at, key, request.size, request.filename)
        self.changes += 1
        if growth:
            self.index.overhead = self.writer.dirs.total
            self._evict(self.index.make_room(0))
        return Reply(request.id, evicted=len(victims))

    def delete(self, request: Delete) -> Reply:
        key = request.key
        found = self.index.remove(key)
        found = self.writer.remove(key) or found
        if not found:
            return _error(request.id, ErrorCode.NOT_FOUND, f"no object under key {key!r}")
        self.activity.removed(key)
        self.changes += 1
        return Reply(request.id)

    def drop(self, request: Drop) -> Reply:
        """Remove a corrupt file if it is still the one the reader saw; forget its key."""
        if not OBJECT_NAME.fullmatch(request.name):
            return _error(request.id, ErrorCode.INVALID_MESSAGE, "not an object file name")
        if self.writer.remove_inode(request.name, request.inode):
            key = request.key
            if key is None or key_digest(key) != request.name:
                key = self._key_named(request.name)
            if key is not None:
                self.index.remove(key)
                self.activity.removed(key)
            self.changes += 1
            log.error("dropped the corrupt object file %s (key %r)", request.name, key)
        return Reply(request.id)  # replaced since: the new file is not the bad one

    def _key_named(self, name: str) -> str | None:
        """The indexed key whose object file is ``name`` (a scan: only for rare repairs)."""
        return next((key for key in self.index.all_keys() if key_digest(key) == name), None)

    def stats(self) -> dict[str, object]:
        """The index's figures and the activity: what ``GET /api/stats`` answers."""
        now = time.time()
        index = self.index
        counters = index.counters
        reads = counters.hits + counters.misses
        return {
            "uptime_seconds": round(now - self.started_at, 3),
            "started_at": self.started_at,
            "objects": len(index),
            "bytes": index.disk_bytes,
            "max_size": index.max_size,
            "policy": index.policy_name,
            "hits": counters.hits,
            "misses": counters.misses,
            "hit_ratio": counters.hits / reads if reads else None,
            "evictions": counters.evictions,
            "evicted_bytes": counters.evicted_bytes,
            "commits": counters.commits,
            "processes": [
                {"role": "coordinator", "pid": os.getpid(), "started_at": self.started_at},
                *self.activity.frontend_rows(now),
            ],
            "recent_uploads": self.activity.recent_uploads(),
            "history": {
                "interval_seconds": self.activity.history.interval,
                "buckets": self.activity.history.buckets(now),
            },
        }

    def _evict(self, victims: list[tuple[str, int]]) -> int:
        for key, cost in victims:
            self.writer.remove(key)
            self.activity.removed(key)
            log.debug("evicted %r (%d bytes)", key, cost)
        if victims:
            self.changes += 1
        return len(victims)


def _error(request_id: int, code: ErrorCode, message: str) -> Reply:
    return Reply(request_id, error=code, message=message)
