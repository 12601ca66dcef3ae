"""The coordinator's message loop: one thread, one ROUTER socket.

It never reads object contents: a commit is a stat, a rename and the unlinks
of the victims, so it answers thousands of messages a second.  Requests whose
``deadline`` has passed are refused as ``stale`` so that a commit queued
while the coordinator was down is never applied after the front end gave up.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time
from pathlib import Path

import zmq

from packrat import protocol
from packrat.config import Settings
from packrat.coordinator.index import Index
from packrat.coordinator.recovery import rebuild, save_snapshot, sweep_staging
from packrat.storage import CorruptObject, Layout, read_object_meta

log = logging.getLogger("packrat.coordinator")

NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
SWEEP_INTERVAL = 10.0  # seconds between staging sweeps
POLL_MS = 100  # longest the loop sleeps before looking at timers and signals


class Coordinator:
    """Owns the index and applies every change to ``objects/``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.layout = Layout(settings.cache_root)
        self.index = Index(settings.cache_policy, settings.cache_max_size, settings.cache_low_water)
        self.stopping = False

    # -- start-up -------------------------------------------------------

    def load(self) -> None:
        self.layout.create()
        swept = sweep_staging(self.layout, self.settings.coordinator_stale_staging)
        report = rebuild(self.layout, self.index)
        over = self.index.make_room(0)  # max_size may have shrunk since the last run
        self._delete_files(over)
        log.info(
            "index loaded in %.2fs: %d from snapshot, %d adopted, %d dropped, %d corrupt, "
            "%d over max_size evicted, %d stale staging files removed; %d objects, %d bytes",
            report.seconds,
            report.restored,
            report.adopted,
            report.dropped,
            report.corrupt,
            len(over),
            swept,
            len(self.index),
            self.index.used,
        )

    # -- the loop -------------------------------------------------------

    def run(self, handle_signals: bool = True) -> None:
        """Load the index, then serve until SIGTERM/SIGINT; snapshot on the way out.

        Without ``handle_signals`` (a coordinator in a thread, for in-process
        tests) it serves until ``stopping`` is set.
        """
        if handle_signals:
            signal.signal(signal.SIGTERM, self._request_stop)
            signal.signal(signal.SIGINT, self._request_stop)
        self.load()
        context = zmq.Context()
        socket = context.socket(zmq.ROUTER)
        socket.linger = 0
        _prepare_endpoint(self.settings.coordinator_endpoint)
        socket.bind(self.settings.coordinator_endpoint)
        log.info("coordinator listening on %s", self.settings.coordinator_endpoint)
        next_snapshot = time.monotonic() + self.settings.coordinator_snapshot_interval
        next_sweep = time.monotonic() + SWEEP_INTERVAL
        try:
            while not self.stopping:
                if socket.poll(POLL_MS):
                    self._drain(socket)
                now = time.monotonic()
                if now >= next_snapshot:
                    self.snapshot()
                    next_snapshot = now + self.settings.coordinator_snapshot_interval
                if now >= next_sweep:
                    sweep_staging(self.layout, self.settings.coordinator_stale_staging)
                    next_sweep = now + SWEEP_INTERVAL
        finally:
            socket.close()
            context.term()
            if self.snapshot(clean=True):
                log.info("coordinator stopped; snapshot of %d objects saved", len(self.index))

    def snapshot(self, clean: bool = False) -> bool:
        """Save the index; a failure is logged, never fatal (the files are the truth)."""
        try:
            save_snapshot(self.layout, self.index, clean=clean)
        except OSError as e:
            log.error("could not save the index snapshot: %s", e)
            return False
        return True

    def _request_stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _drain(self, socket: zmq.Socket) -> None:
        """Handle every message already queued, without blocking."""
        while True:
            try:
                identity, frame = socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:  # not two frames: not one of ours
                continue
            reply = self.handle(frame)
            if reply is not None:
                socket.send_multipart([identity, protocol.encode(reply)])

    # -- messages -------------------------------------------------------

    def handle(self, frame: bytes) -> protocol.Message | None:
        """Apply one request; return the reply (None for fire-and-forget)."""
        try:
            message = protocol.decode(frame)
        except protocol.ProtocolError as e:
            log.warning("dropping bad message: %s", e)
            return None
        op = message.get("op")
        request_id = message.get("id")
        if op == "touch":
            self.index.touch(message.get("keys", ()), message.get("misses", 0))
            return None
        deadline = message.get("deadline")
        if deadline is not None and time.time() > deadline:
            return protocol.reply_error(request_id, "stale", "the request expired before it ran")
        try:
            if op == "commit":
                return self._commit(request_id, message)
            if op == "delete":
                return self._delete(request_id, message)
            if op == "stats":
                return protocol.reply_ok(request_id, **self.index.stats())
        except (KeyError, TypeError, ValueError) as e:
            return protocol.reply_error(request_id, "bad_request", f"malformed {op} request: {e}")
        except OSError as e:
            # The coordinator outlives any one failed file operation.
            log.error("%s failed: %s", op, e)
            code = "insufficient_storage" if e.errno in NO_SPACE else "io_error"
            return protocol.reply_error(
                request_id, code, f"{op} failed on the server: {e.strerror}"
            )
        return protocol.reply_error(request_id, "bad_request", f"unknown op {op!r}")

    def _commit(self, request_id: int, message: protocol.Message) -> protocol.Message:
        key: str = message["key"]
        size: int = message["size"]
        staging = self.layout.staging_path(message["staging"])
        if size > self.index.max_size:
            staging.unlink(missing_ok=True)
            return protocol.reply_error(
                request_id,
                "too_large",
                f"{size} bytes is more than the whole cache ({self.index.max_size} bytes)",
            )
        try:
            actual = staging.stat().st_size
        except FileNotFoundError:
            return protocol.reply_error(request_id, "staging_missing", "the staged upload is gone")
        if actual != size:
            staging.unlink(missing_ok=True)
            return protocol.reply_error(
                request_id, "bad_request", f"staged file has {actual} bytes, commit says {size}"
            )
        # Evict first, so the bytes on disk never exceed max_size, then
        # rename: a crash between the rename and the index update leaves a
        # complete object that start-up adopts.
        victims = self.index.make_room(size)
        # The key's own old version may be a victim: the rename replaces it,
        # so readers never see it missing in between.
        self._delete_files([victim for victim in victims if victim[0] != key])
        target = self.layout.object_path(key)
        if not _publish(staging, target):  # the front end gave up and removed it meanwhile
            return protocol.reply_error(request_id, "staging_missing", "the staged upload is gone")
        # The commit time, so start-up can tell files committed after a snapshot.
        os.utime(target)
        self.index.insert(key, size)
        return protocol.reply_ok(request_id, evicted=len(victims))

    def _delete(self, request_id: int, message: protocol.Message) -> protocol.Message:
        key: str = message["key"]
        reason = message.get("reason", "client")
        path = self.layout.object_path(key)
        if reason == "corrupt" and not _has_digest(path, message.get("sha256")):
            # Replaced since the front end read it: the new object is not the bad one.
            return protocol.reply_ok(request_id)
        found = self.index.remove(key)
        try:
            path.unlink()
            found = True
        except FileNotFoundError:
            pass
        if reason == "corrupt":
            log.error("dropped corrupt object %r (%s)", key, path)
        if not found:
            return protocol.reply_error(request_id, "not_found", f"no object under key {key!r}")
        return protocol.reply_ok(request_id)

    def _delete_files(self, victims: list[tuple[str, int]]) -> None:
        for key, _ in victims:
            self.layout.object_path(key).unlink(missing_ok=True)


def _publish(staging: Path, target: Path) -> bool:
    """Rename ``staging`` to ``target``; False if the staged file is gone.

    The fan-out directory is created only when the rename says it is missing,
    which saves a system call on every commit once the cache has filled in.
    """
    try:
        os.replace(staging, target)
    except FileNotFoundError:
        if not staging.exists():
            return False
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(staging, target)
        except FileNotFoundError:
            return False
    return True


def _has_digest(path: Path, sha256: str | None) -> bool:
    """Whether the object at ``path`` still claims digest ``sha256``."""
    try:
        meta, _ = read_object_meta(path)
    except (OSError, CorruptObject):
        return True  # unreadable: dropping it is right either way
    return meta.sha256 == sha256


def _prepare_endpoint(endpoint: str) -> None:
    """Create the directory of an ipc:// endpoint."""
    if endpoint.startswith("ipc://"):
        Path(endpoint[len("ipc://") :]).parent.mkdir(parents=True, exist_ok=True)


def run(settings: Settings) -> None:
    Coordinator(settings).run()
