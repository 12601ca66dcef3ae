"""The uploader process (``packrat uploader``): write-through to the store, in the background.

An upload is acknowledged once it is committed locally, as without a store;
this process then sends it to the store.  It learns of commits from inotify
on the fan-out directories (a commit is a rename into one), and after a
start, a restart or a lost event from one walk of the directories for files
committed after its mark (``backlog``): the object files are the queue.

For each object, oldest commit first, ``concurrency`` at a time:

* a file committed since (a newer version of the key) is left to its own
  turn, and an object fetched from the store is never sent back;
* the store's version of the key is looked at: if it is this version or a
  newer one (another node's later upload), nothing is sent; otherwise the
  object is put conditionally on what was seen (``If-Match`` its ETag, or
  ``If-None-Match: *``), so a writer that got in between is never
  overwritten by an older version: the check starts again;
* the store verifies the bytes against their sha256 (``upload_checksum``).

A store that fails opens the breaker: uploads wait and retry with it, the
backlog grows (bounded in memory by ``max_backlog``; the rest stays on the
disk) and drains when the store is back.  An object the local disk evicts
before its upload is in neither place; it is counted
(``packrat_objectstore_lost_before_upload_total``) and logged.

Deletes come from the front ends over this process's socket, so a delete is
ordered after the key's upload under way and before any later one; so do the
lists of the store's keys under a prefix that a purge deletes one by one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import zmq
import zmq.asyncio

from packrat.coordinator.server import _bind  # one rule for binding a local socket
from packrat.core import metrics_directory
from packrat.core.fdlimit import raise_open_file_limit
from packrat.core.settings import Settings, endpoint_problem
from packrat.objectstore import messages
from packrat.objectstore.backlog import Backlog
from packrat.objectstore.store import ObjectStore, PreconditionFailed, Refused, StoreUnavailable
from packrat.objectstore.watch import ARRIVED, DIRECTORY, LEFT, Watcher
from packrat.store import CorruptObject, Layout, key_digest, open_entry
from packrat.store.layout import FANOUT
from packrat.store.scan import OBJECT_NAME

log = logging.getLogger("packrat.objectstore")

MARK_INTERVAL = 1.0  # seconds between writes of the mark and the gauges
STOP_GRACE = 3.0  # seconds uploads under way get after SIGTERM
DELETED_MEMORY = 60.0  # seconds a deleted object's commit is remembered (not re-uploaded)
CONFLICT_TRIES = 5  # conditional puts that lose a race, before trying later


def read_mark(path: Path) -> int:
    """The mark: the mtime (ns) of an empty file, so it costs no disk block; 0 if none."""
    try:
        return os.stat(path).st_mtime_ns
    except FileNotFoundError:
        return 0


def write_mark(path: Path, mark: int) -> None:
    if not path.exists():
        path.touch()
    os.utime(path, ns=(mark, mark))


class Uploader:
    """The backlog, its workers, the inotify watch and the front ends' socket."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.layout = Layout(settings.cache_root)
        self.store = ObjectStore(settings, pool_size=settings.objectstore_concurrency + 2)
        self.metrics = self.store.metrics
        self.backlog = Backlog(settings.objectstore_max_backlog)
        self.pool = ThreadPoolExecutor(
            settings.objectstore_concurrency + 2, thread_name_prefix="upload"
        )
        self.mark = 0
        self.scanning = False
        self.rescan_wanted = False
        self.wake = asyncio.Event()
        self.stopping = asyncio.Event()
        self.finished: dict[str, asyncio.Event] = {}  # in flight, by object file name
        self.deleted: dict[str, tuple[int, float]] = {}  # name -> (commit number, when)
        self.uploaded = 0
        self.lost = 0
        self.tasks: set[asyncio.Task[None]] = set()  # rescans and answers under way

    # -- the process ----------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stopping.set)
        self.layout.create()
        self.layout.open_dirs()
        self.mark = read_mark(self.layout.uploaded_mark_path())
        watcher = Watcher(self.layout)
        loop.add_reader(watcher.fd, self._on_events, watcher)
        context = zmq.asyncio.Context()
        socket = context.socket(zmq.ROUTER)
        socket.linger = 0
        endpoint = self.settings.objectstore_uploader_endpoint
        problem = endpoint_problem(endpoint, None, curve=False)
        if problem:  # config.load refuses it too; this guards Settings made in code
            raise ValueError(f"[objectstore] uploader_endpoint: {problem}")
        _bind(socket, endpoint)
        log.info(
            "uploader for bucket %s listening on %s; uploaded up to commit %d",
            self.settings.objectstore_bucket,
            endpoint,
            self.mark,
        )
        tasks = [
            asyncio.ensure_future(self._scan()),
            asyncio.ensure_future(self._serve(socket)),
            asyncio.ensure_future(self._keep_mark()),
            *(
                asyncio.ensure_future(self._work())
                for _ in range(self.settings.objectstore_concurrency)
            ),
        ]
        for task in tasks:
            task.add_done_callback(_log_failure)
        await self.stopping.wait()
        self.wake.set()
        deadline = loop.time() + STOP_GRACE
        while self.backlog.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._save_mark()
        loop.remove_reader(watcher.fd)
        watcher.close()
        socket.close()
        context.term()
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.layout.close_dirs()
        log.info("uploader stopped; %d objects waiting for the store", len(self.backlog))

    # -- finding work ---------------------------------------------------------

    def _on_events(self, watcher: Watcher) -> None:
        lost: set[str] = set()  # in this batch (a file committed twice, then evicted, is one)
        for kind, name in watcher.read():
            if kind == ARRIVED:
                if not self._found(name) and name not in self.deleted:
                    lost.add(name)  # committed, and gone before we could even look
            elif kind == LEFT:
                if self.backlog.drop(name):
                    lost.add(name)
            elif kind == DIRECTORY:  # a fan-out directory made again: a new one
                self.layout.reopen_fanout(name)
                self._want_rescan()
            else:
                log.warning("inotify lost events; looking at the whole cache again")
                self._want_rescan()
        for name in lost:
            self.lost += 1
            self.metrics.lost.inc()
            log.warning("object file %s left the disk before it reached the store (evicted)", name)

    def _found(self, name: str) -> bool:
        """Take a file that arrived; False when it is gone already."""
        try:
            info = os.stat(name, dir_fd=self.layout.fanout_fd(name), follow_symlinks=False)
        except FileNotFoundError:
            return False
        self._add(name, info.st_mtime_ns, info.st_size)
        return True

    def _add(self, name: str, stamp: int, size: int) -> None:
        if stamp <= self.mark:
            return
        deleted = self.deleted.get(name)
        if deleted is not None and stamp <= deleted[0]:
            return
        if not self.backlog.add(name, stamp, size):
            self.rescan_wanted = True  # left on disk: found again once there is room
        self.wake.set()

    def _want_rescan(self) -> None:
        self.rescan_wanted = True
        if not self.scanning:
            self._spawn(self._scan())

    def _spawn(self, coroutine: Any) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        task.add_done_callback(_log_failure)

    async def _scan(self) -> None:
        """Walk the fan-out directories for files committed after the mark."""
        if self.scanning:
            return
        self.scanning = True
        self.rescan_wanted = False
        self.backlog.untracked_from = None
        started = time.monotonic()
        try:
            found = await asyncio.get_running_loop().run_in_executor(
                self.pool, _files_after, self.layout, self.mark
            )
            found.sort()
            for stamp, name, size in found:
                self._add(name, stamp, size)
        finally:
            self.scanning = False
        log.info(
            "found %d objects committed after the mark in %.1fs; %d waiting for the store",
            len(found),
            time.monotonic() - started,
            len(self.backlog),
        )

    # -- uploading ------------------------------------------------------------

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while not self.stopping.is_set():
            taken = self.backlog.take()
            if taken is None:
                if self.rescan_wanted and not self.backlog.pending and not self.scanning:
                    await self._scan()
                    continue
                self.wake.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await self.wake.wait()
                continue
            name, stamp = taken
            done = self.finished[name] = asyncio.Event()
            retry = True  # unless it ends: a stop mid-upload leaves it to the next start
            try:
                outcome = await loop.run_in_executor(self.pool, self._upload, name, stamp)
                retry = False
            except StoreUnavailable:
                outcome = "unavailable"
            finally:
                self.backlog.finished(name, stamp, retry=retry)
                del self.finished[name]
                done.set()
            if retry:
                await asyncio.sleep(max(self.store.breaker.seconds_until_probe(), 0.2))
                continue
            if outcome == "gone":
                continue
            self.metrics.uploads.labels(outcome).inc()
            if outcome == "uploaded":
                self.uploaded += 1

    def _upload(self, name: str, stamp: int) -> str:
        """(On a thread.)  Send commit ``stamp`` of object file ``name``; the outcome."""
        try:
            opened = open_entry(self.layout.fanout_fd(name), name)
        except (CorruptObject, OSError) as e:
            log.warning("not uploading object file %s: %s", name, e)
            return "gone"
        if opened is None:
            return "gone"
        fd, meta, info = opened
        try:
            if info.st_mtime_ns != stamp:
                return "gone"  # replaced since: the newer commit has its own turn
            if meta.fetched_version:
                return "fetched"
            for _ in range(CONFLICT_TRIES):
                seen = self.store.look(meta.key)
                if seen is not None and seen[0] >= stamp:
                    return "newer_in_store"
                try:
                    self.store.put(meta.key, fd, meta, stamp, seen[1] if seen else None)
                except PreconditionFailed:
                    continue  # another writer got in between: look again
                except Refused as e:
                    if e.code == "BadDigest":
                        log.error(
                            "the store refused key %r: its bytes on this disk do not match "
                            "their sha256 (a damaged object file; packrat fsck finds it)",
                            meta.key,
                        )
                        return "corrupt"
                    log.error("the store refused key %r: %s", meta.key, e)
                    return "refused"
                return "uploaded"
            raise StoreUnavailable(f"key {meta.key!r} kept changing in the store")
        finally:
            os.close(fd)

    # -- the mark -------------------------------------------------------------

    async def _keep_mark(self) -> None:
        while True:
            await asyncio.sleep(MARK_INTERVAL)
            self._save_mark()
            now = time.monotonic()
            for name, (_, when) in list(self.deleted.items()):
                if now - when > DELETED_MEMORY:
                    del self.deleted[name]

    def _save_mark(self) -> None:
        backlog = self.backlog
        self.metrics.backlog.set(len(backlog))
        self.metrics.backlog_bytes.set(backlog.bytes)
        oldest = backlog.oldest()
        self.metrics.backlog_age.set(max(time.time() - oldest / 1e9, 0) if oldest else 0)
        if self.scanning:
            return  # what the walk has not reached yet is not in the backlog
        mark = backlog.mark(time.time_ns())
        if mark > self.mark:
            try:
                write_mark(self.layout.uploaded_mark_path(), mark)
            except OSError as e:
                log.error("could not write the upload mark: %s", e)
                return
            self.mark = mark

    # -- the front ends' requests ---------------------------------------------

    async def _serve(self, socket: zmq.asyncio.Socket) -> None:
        while True:
            frames = await socket.recv_multipart()
            if len(frames) != 2:
                continue
            identity, frame = frames
            try:
                request = messages.decode(frame)
            except messages.BadMessage as e:
                log.warning("refusing a malformed message: %s", e)
                continue
            problem = messages.check_request(request)
            if problem is not None:
                reply = {"id": request["id"], "ok": False, "message": problem}
                await socket.send_multipart([identity, messages.encode(reply)])
                continue
            self._spawn(self._answer(socket, identity, request))

    async def _answer(
        self, socket: zmq.asyncio.Socket, identity: bytes, request: dict[str, Any]
    ) -> None:
        reply: dict[str, Any] = {"id": request["id"], "ok": True}
        try:
            if request["op"] == "status":
                reply["status"] = self.status()
            elif request["op"] == "list":
                reply["keys"], reply["more"] = await asyncio.get_running_loop().run_in_executor(
                    self.pool, self.store.list, request["prefix"], request["limit"]
                )
            else:
                reply["found"] = await self._delete(request["key"])
        except (StoreUnavailable, Refused) as e:
            reply = {"id": request["id"], "ok": False, "message": str(e)}
        with contextlib.suppress(zmq.ZMQError):
            await socket.send_multipart([identity, messages.encode(reply)])

    async def _delete(self, key: str) -> bool:
        """Delete ``key`` in the store after its upload under way; whether it was there."""
        name = key_digest(key)
        with contextlib.suppress(FileNotFoundError):
            info = os.stat(name, dir_fd=self.layout.fanout_fd(name), follow_symlinks=False)
            self.deleted[name] = (info.st_mtime_ns, time.monotonic())
        self.backlog.drop(name)
        running = self.finished.get(name)
        if running is not None:
            await running.wait()
        loop = asyncio.get_running_loop()
        seen = await loop.run_in_executor(self.pool, self.store.look, key)
        if seen is None:
            return False
        await loop.run_in_executor(self.pool, self.store.delete, key)
        self.metrics.deletes.inc()
        return True

    def status(self) -> dict[str, Any]:
        backlog = self.backlog
        oldest = backlog.oldest()
        return {
            "breaker": self.store.breaker.state,
            "last_error": self.store.last_error or None,
            "backlog_objects": len(backlog),
            "backlog_bytes": backlog.bytes,
            "backlog_complete": backlog.untracked_from is None and not self.rescan_wanted,
            "oldest_waiting_seconds": round(time.time() - oldest / 1e9, 3) if oldest else 0,
            "uploaded": self.uploaded,
            "lost_before_upload": self.lost,
            "scanning": self.scanning,
        }


def _log_failure(task: asyncio.Task[Any]) -> None:
    """A background task that failed is a bug: say so (the process goes on)."""
    if not task.cancelled() and task.exception() is not None:
        log.error("uploader task failed", exc_info=task.exception())


def _files_after(layout: Layout, mark: int) -> list[tuple[int, str, int]]:
    """(On a thread.)  ``(commit number, name, size)`` of object files stamped after ``mark``."""
    found = []
    for fanout in FANOUT:
        dir_fd = layout.fanout_fds[fanout]
        with os.scandir(dir_fd) as entries:
            names = [entry.name for entry in entries if OBJECT_NAME.fullmatch(entry.name)]
        for name in names:
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if info.st_mtime_ns > mark:
                found.append((info.st_mtime_ns, name, info.st_size))
    return found


def run(settings: Settings) -> None:
    raise_open_file_limit()
    metrics_directory.use_directory(settings.metrics_directory)
    asyncio.run(Uploader(settings).run())
