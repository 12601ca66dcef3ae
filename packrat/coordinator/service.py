"""The coordinator's logic: typed requests in, replies out, the index kept exact.

It never reads object contents: a commit is a rename (the claim), the
unlinks of its victims, a stamp and a rename into place, so it answers
thousands of requests a second.  Order within a commit keeps the disk within
``max_size`` and the index equal to the files: the staged file is claimed
first (a front end that gives up can no longer take it away), the victims
are removed before the new file goes in, and a failure after the index made
room undoes what would otherwise leave the index and the disk apart.

The file work itself is queued by ``FileWork`` in the server and run after
the turn's messages are decided, in the order they were; the index is
decided ahead of it (the disk's future state), and a reply that needs a
file change waits for it.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from functools import partial

from packrat.coordinator.activity import Activity
from packrat.coordinator.filework import FileWork
from packrat.coordinator.index import Index
from packrat.coordinator.protocol import (
    Commit,
    Delete,
    Drop,
    ListKeys,
    Purge,
    Reply,
    Request,
    Stats,
    Touch,
)
from packrat.coordinator.snapshotter import ROWS, SnapshotJob
from packrat.core.errors import ErrorCode
from packrat.core.keys import InvalidKey, validate_key
from packrat.core.logs import Event, log_event
from packrat.core.settings import Settings
from packrat.store import Layout, key_digest, sweep_staging
from packrat.store.scan import OBJECT_NAME, rebuild, timestamp_granularity
from packrat.store.snapshot import load_snapshot
from packrat.store.staging import no_space
from packrat.store.writer import BadStaging, Claimed, ObjectWriter, StagingMissing

log = logging.getLogger("packrat.coordinator")

Respond = Callable[[Reply], None]


class Coordinator:
    """Owns the index and applies every change to ``objects/``."""

    def __init__(self, settings: Settings, files: FileWork | None = None) -> None:
        self.settings = settings
        self.layout = Layout(settings.cache_root)
        self.writer = ObjectWriter(self.layout)
        self.index = Index(settings.cache_policy, settings.cache_max_size, settings.cache_low_water)
        self.files = files if files is not None else FileWork()
        # Keys whose commit is decided and indexed but whose file is not renamed in yet.
        self.pending: dict[str, _Publish] = {}
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
        over = self.index.make_room(0)  # max_size may have shrunk
        for victim, _ in over:
            self.writer.remove(victim)
        self._forget(over)
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
            len(over),
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
        self.files.close()  # what was decided reaches the disk first
        self.writer.close()

    # -- requests ---------------------------------------------------------

    def handle(self, request: Request, respond: Respond | None = None) -> Reply | None:
        """Apply one request; its reply goes to ``respond`` once any file work is done.

        Without ``respond`` the reply is returned, which needs the file work
        done at once (``FileWork()``, not queued: tools and tests).  A
        ``Touch`` has no reply.
        """
        replies: list[Reply] = []
        self.dispatch(request, respond or replies.append)
        return replies[0] if replies else None

    def dispatch(self, request: Request, respond: Respond) -> None:
        """Apply one request, its reply to ``respond`` (the server's path: no wrapper)."""
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
            return
        if time.time() > request.deadline:
            respond(_error(request.id, ErrorCode.STALE, "the request expired before it ran"))
        elif isinstance(request, Stats):
            respond(Reply(request.id, stats=self.stats()))
        elif isinstance(request, ListKeys):
            page, more = self.index.list_keys(
                request.prefix, request.after, request.limit, request.collections
            )
            respond(Reply(request.id, keys=tuple(page), more=more))
        elif isinstance(request, Drop):
            self.drop(request, respond)
        elif isinstance(request, Purge):
            self.purge(request, respond)
        else:
            try:
                validate_key(request.key)
            except InvalidKey as e:
                respond(_error(request.id, ErrorCode.INVALID_MESSAGE, e.message))
                return
            if isinstance(request, Commit):
                self.commit(request, respond)
            else:
                self.delete(request, respond)

    def commit(self, request: Commit, respond: Respond) -> None:
        """Claim the staged file (file work), then decide (``_claimed``)."""
        if request.only_if_absent and request.key in self.index:
            respond(Reply(request.id, present=True))
            return
        # ``partial``s, not closures: they call straight through, a Python frame less each.
        self.files.submit(
            partial(self.writer.claim, request.staging, request.file_size, request.key),
            partial(self._claimed, request, respond),
        )

    def _claimed(self, request: Commit, respond: Respond, claimed: Claimed | Exception) -> None:
        """Make room and index the object, then publish it (file work, ``_published``)."""
        if isinstance(claimed, Exception):
            respond(_claim_failed(request, claimed))
            return
        key, index = request.key, self.index
        capacity = index.capacity
        if claimed.charge > capacity:
            self.files.submit(lambda: self.writer.discard(claimed.name), _ignore)
            respond(
                _error(
                    request.id,
                    ErrorCode.TOO_LARGE,
                    f"the object takes {claimed.charge} bytes on disk, more than the whole "
                    f"cache ({capacity} bytes)",
                )
            )
            return
        victims = index.make_room(claimed.charge)
        publish = _Publish(claimed, index.insert(key, claimed.charge))
        self.pending[key] = publish
        doomed: list[str] = []
        if victims:
            self._forget(victims)
            # The key's old version may be a victim: the rename replaces it, so
            # readers never see it missing in between.  The others go first, so
            # the disk never holds more than max_size.
            doomed = [victim for victim, _ in victims if victim != key]
        self.files.submit(
            partial(self._publish, publish, doomed),
            partial(self._published, request, publish, len(victims), respond),
        )

    def _publish(self, publish: _Publish, doomed: list[str]) -> bool | None:
        """File work: remove the victims, stamp and rename the object in; True if its
        fan-out directory grew, None if it was evicted before its turn came."""
        for victim in doomed:
            self.writer.remove(victim)
        claimed = publish.claimed
        if publish.cancelled:
            self.writer.discard(claimed.name)
            self.writer.remove(claimed.key)  # an older version
            return None
        try:
            return self.writer.publish(claimed) > 0
        except OSError:
            self.writer.discard(claimed.name)
            self.writer.remove(claimed.key)  # it left the index with the failure
            raise

    def _published(
        self,
        request: Commit,
        publish: _Publish,
        evicted: int,
        respond: Respond,
        grown: bool | Exception | None,
    ) -> None:
        key = request.key
        latest = self.pending.get(key) is publish
        if latest:
            del self.pending[key]
        if isinstance(grown, Exception):
            if latest:  # else a later commit or delete of the key has its own file work
                self.index.remove(key)
                self.activity.removed(key)
            respond(_failed(request, grown))
            return
        self.changes += 1
        if grown is None:  # evicted for a directory's growth before it was renamed in
            respond(Reply(request.id, evicted=evicted))
            return
        self.activity.uploaded(publish.stored_at, key, request.size, request.filename)
        if grown:
            # Paid for before the next job: nothing reaches the disk before it.
            self.index.overhead = self.writer.dirs.total
            for victim, _ in self.index.make_room(0):
                if victim in self.pending:
                    self.pending[victim].cancelled = True
                else:
                    self.writer.remove(victim)
                self._forget([(victim, 0)])
        respond(Reply(request.id, evicted=evicted))

    def delete(self, request: Delete, respond: Respond) -> None:
        key = request.key
        indexed = self.index.remove(key)
        if indexed:
            self.activity.removed(key)
            self.changes += 1

        def removed(found: bool | Exception) -> None:
            if isinstance(found, Exception):
                respond(_failed(request, found))
            elif found or indexed:
                respond(Reply(request.id))
            else:
                respond(_error(request.id, ErrorCode.NOT_FOUND, f"no object under key {key!r}"))

        self.files.submit(lambda: self.writer.remove(key), removed)

    def purge(self, request: Purge, respond: Respond) -> None:
        """Remove a batch of the keys under a prefix: at most ``limit``, so a big purge
        is many short requests.  Files first: a key whose file could not be removed
        stays in the index too."""
        page, more = self.index.list_keys(request.prefix, "", request.limit)

        def remove_files() -> tuple[list[str], OSError | None]:
            removed: list[str] = []
            try:
                for key in page:
                    self.writer.remove(key)
                    removed.append(key)
            except OSError as e:
                return removed, e
            return removed, None

        def removed_files(result: tuple[list[str], OSError | None] | Exception) -> None:
            if isinstance(result, Exception):
                respond(_failed(request, result))
                return
            removed, error = result
            for key in removed:
                # A commit of the key decided since has its own file coming: keep it.
                if key not in self.pending and self.index.remove(key):
                    self.activity.removed(key)
            if removed:
                self.changes += 1
                log.info("purged %d keys under %r", len(removed), request.prefix)
            if error is not None:
                respond(_failed(request, error))
            else:
                respond(Reply(request.id, keys=tuple(page), more=more))

        self.files.submit(remove_files, removed_files)

    def drop(self, request: Drop, respond: Respond) -> None:
        """Remove a corrupt file if it is still the one the reader saw; forget its key."""
        if not OBJECT_NAME.fullmatch(request.name):
            respond(_error(request.id, ErrorCode.INVALID_MESSAGE, "not an object file name"))
            return

        def dropped(removed: bool | Exception) -> None:
            if isinstance(removed, Exception):
                respond(_failed(request, removed))
                return
            if removed:
                key = request.key
                if key is None or key_digest(key) != request.name:
                    key = self._key_named(request.name)
                # A commit of the key decided since has its own file coming: keep it.
                if key is not None and key not in self.pending:
                    self.index.remove(key)
                    self.activity.removed(key)
                self.changes += 1
                log.error("dropped the corrupt object file %s (key %r)", request.name, key)
            respond(Reply(request.id))  # replaced since: the new file is not the bad one

        self.files.submit(lambda: self.writer.remove_inode(request.name, request.inode), dropped)

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

    def _forget(self, victims: list[tuple[str, int]]) -> None:
        """Evicted keys leave the activity's recent uploads (their files go by file work)."""
        logged = log.isEnabledFor(logging.DEBUG)
        for key, cost in victims:
            self.activity.removed(key)
            if logged:
                log_event(log, logging.DEBUG, Evicted(key, cost))
        if victims:
            self.changes += 1


class Evicted(Event):
    """The line of one eviction, at ``debug``: about one per commit in a full cache,
    which at ``info`` took 3 % of the coordinator's CPU even through ``log_event``
    (it skips the ``LogRecord`` and the handler chain); the counts are in the stats."""

    __slots__ = ("bytes", "key")

    def __init__(self, key: str, cost: int) -> None:
        self.key = key
        self.bytes = cost

    def __str__(self) -> str:
        return f"evicted {self.key!r} ({self.bytes} bytes)"

    def fields(self) -> dict[str, object]:
        return {"key": self.key, "bytes": self.bytes}


class _Publish:
    """A commit decided and indexed, its file not renamed in yet (``Coordinator.pending``)."""

    __slots__ = ("cancelled", "claimed", "stored_at")

    def __init__(self, claimed: Claimed, stored_at: float) -> None:
        self.claimed = claimed
        self.stored_at = stored_at
        self.cancelled = False  # evicted before its turn: discard instead of renaming


def _error(request_id: int, code: ErrorCode, message: str) -> Reply:
    return Reply(request_id, error=code, message=message)


def _claim_failed(request: Commit, error: Exception) -> Reply:
    """The reply to a commit whose claim failed: the staged file gone or not as described."""
    if isinstance(error, StagingMissing):
        return _error(request.id, ErrorCode.STAGING_MISSING, str(error))
    if isinstance(error, ValueError | BadStaging):
        return _error(request.id, ErrorCode.INVALID_MESSAGE, str(error))
    return _failed(request, error)


def _failed(request: Request, error: Exception) -> Reply:
    """The reply to a request whose file work failed; the coordinator goes on."""
    op = type(request).__name__.lower()
    log.error("%s failed: %s", op, error)
    if isinstance(error, OSError):
        code = ErrorCode.INSUFFICIENT_STORAGE if no_space(error) else ErrorCode.IO_ERROR
        return _error(request.id, code, f"the {op} failed on the server: {error.strerror}")
    return _error(request.id, ErrorCode.IO_ERROR, f"the {op} failed on the server: {error}")


def _ignore(result: object) -> None:
    pass
