"""The read-through: a local miss fetched from the store, served while it is staged.

A front end that misses a key asks ``ReadThrough``:

* ``head(key)``: the store's metadata only (``HEAD``, ``exists``): nothing is
  staged, and a ``HEAD`` answers the headers a local object would;
* ``fetch(key)``: a ``Fetch`` whose bytes arrive from the store into a staging
  file, then are verified (their sha256 against the object's metadata) and
  committed like an upload, so the next read is local.  Every client reading
  it meanwhile streams from that staging file as it grows (``Fetch.read``),
  and the last byte of any answer waits until the whole object is verified:
  a client gets the object, or a cut connection, never a clean 200 with wrong
  bytes.  ``LOCAL`` means the object appeared on the disk meanwhile: read it
  there; ``None`` means absent, or the store is unavailable (404 at once
  while the breaker is open).

Concurrent misses for one key make one fetch: in a process, the later ones
read the first one's staging file; across the node's front ends, a byte-range
lock on ``state/fetching`` (at an offset drawn from the key) makes the others
wait until the object is local.  A fetch goes on if its client leaves.

The committed object carries the store's version (``fetched_version``), so the
uploader never sends it back, and its commit is refused if the key was stored
locally meanwhile (a newer upload is never replaced by the store's version).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from packrat.core.errors import PackratError
from packrat.core.settings import Settings
from packrat.objectstore.breaker import OPEN
from packrat.objectstore.metadata import Stored
from packrat.objectstore.store import ObjectStore, StoreUnavailable
from packrat.store import Layout, ObjectMeta, StagedFile, key_digest, open_key

log = logging.getLogger("packrat.objectstore")

THREADS = 8  # store requests and fetches under way at once in one front end
CHUNK = 1 << 20  # bytes read from the store, and sent to a reader, at a time
LOCK_SPAN = 1 << 62  # offsets in state/fetching drawn from keys
WAIT_POLL = 0.05  # seconds between looks while another process fetches a key
WAIT_MAX = 300.0  # seconds before giving up on it (a 404)
LOCAL = "local"  # fetch(): the object is on the disk now


class FetchFailed(Exception):
    """The fetch cannot deliver the object (the store broke off, or the bytes are wrong)."""


# commit(key, staging name, file size, data size, filename) -> committed?
Commit = Callable[[str, str, int, int, str], Awaitable[bool]]


class Fetch:
    """One object on its way from the store to the disk; any number of readers follow it."""

    def __init__(self, stored: Stored, body: Any, staged: StagedFile, reader_fd: int) -> None:
        self.meta = stored.meta
        self.version = stored.version
        self.body = body  # the store's answer, read on a thread
        self.staged = staged
        self.reader_fd = reader_fd  # the staging file, read while it grows
        self.available = 0  # bytes readers may take: all once verified, else size - 1
        self.failure: str | None = None
        self.done = asyncio.get_running_loop().create_future()  # True: committed locally
        self._changed = asyncio.Event()
        self._readers = 0
        self._finished = False

    def progress(self, written: int, verified: bool) -> None:
        """(On the loop.)  ``written`` bytes are in the staging file."""
        self.available = written if verified else min(written, self.meta.size - 1)
        self._wake()

    def fail(self, reason: str) -> None:
        self.failure = reason
        self._wake()

    async def read(self, start: int, stop: int) -> AsyncIterator[bytes]:
        """The bytes ``start:stop`` of the data as they arrive; ``FetchFailed`` if it breaks.

        The last byte of the object only comes once the whole object has
        been verified, and so does a range's last byte.
        """
        self._readers += 1
        try:
            offset = start
            while offset < stop:
                if self.failure is not None:
                    raise FetchFailed(self.failure)
                limit = min(self.available, stop)
                if offset + 1 >= stop and not self._verified:
                    limit = min(limit, stop - 1)
                if limit <= offset:
                    await self._changed.wait()
                    continue
                chunk = os.pread(self.reader_fd, min(limit - offset, CHUNK), offset)
                if not chunk:
                    raise FetchFailed("the staging file is shorter than written")
                offset += len(chunk)
                yield chunk
            while not self._verified:  # an empty answer, too, waits for the digest
                if self.failure is not None:
                    raise FetchFailed(self.failure)
                await self._changed.wait()
        finally:
            self._readers -= 1
            self._close_reader()

    @property
    def _verified(self) -> bool:
        return self.available == self.meta.size and self.failure is None

    def finish(self) -> None:
        self._finished = True
        self._wake()
        self._close_reader()

    def _close_reader(self) -> None:
        if self._finished and not self._readers and self.reader_fd >= 0:
            os.close(self.reader_fd)
            self.reader_fd = -1

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class ReadThrough:
    """One front end's read-through to the store (see the module docstring)."""

    def __init__(self, settings: Settings, layout: Layout, commit: Commit) -> None:
        self.layout = layout
        self.commit = commit
        self.store = ObjectStore(settings, pool_size=THREADS)
        self.max_size = settings.max_file_size  # larger objects are not fetched
        self.metrics = self.store.metrics
        self.pool = ThreadPoolExecutor(THREADS, thread_name_prefix="objectstore")
        self.fetches: dict[str, Fetch] = {}
        self.starting: dict[str, asyncio.Future[Fetch | str | None]] = {}
        self.heads: dict[str, asyncio.Future[Stored | None]] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self._lock_fd = os.open(layout.fetch_lock_path(), os.O_RDWR | os.O_CREAT, 0o600)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)
        os.close(self._lock_fd)

    def status(self) -> dict[str, Any]:
        breaker = self.store.breaker
        return {"breaker": breaker.state, "last_error": self.store.last_error or None}

    # -- HEAD and exists ----------------------------------------------------

    async def head(self, key: str) -> ObjectMeta | None:
        """The store's metadata of ``key``; None when absent or unavailable."""
        if self._open_now():
            self.metrics.fetches.labels("unavailable").inc()
            return None
        pending = self.heads.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self.heads[key] = pending
            stored: Stored | None = None
            try:
                stored = await self._run(self.store.head, key)
            except StoreUnavailable:
                self.metrics.fetches.labels("unavailable").inc()
            finally:
                del self.heads[key]
                pending.set_result(stored)  # the others asking meanwhile get it too
        stored = await asyncio.shield(pending)
        return None if stored is None else stored.meta

    # -- GET ------------------------------------------------------------------

    async def fetch(self, key: str) -> Fetch | str | None:
        """A ``Fetch`` of ``key`` (joined if one is under way), ``LOCAL``, or None."""
        fetch = self.fetches.get(key)
        if fetch is not None:
            return fetch
        starting = self.starting.get(key)
        if starting is not None:
            return await asyncio.shield(starting)
        if self._open_now():
            self.metrics.fetches.labels("unavailable").inc()
            return None
        future: asyncio.Future[Fetch | str | None] = asyncio.get_running_loop().create_future()
        self.starting[key] = future
        result: Fetch | str | None = None
        try:
            result = await self._begin(key)
        finally:
            del self.starting[key]
            future.set_result(result)
        return result

    async def _begin(self, key: str) -> Fetch | str | None:
        """Take the key's lock (waiting for another front end's fetch), then start."""
        offset = int(key_digest(key)[:15], 16) % LOCK_SPAN
        give_up = time.monotonic() + WAIT_MAX
        while not await self._run(self._try_lock, offset):
            # Another front end fetches it: wait until it is local (or the lock is free).
            await asyncio.sleep(WAIT_POLL)
            if self._is_local(key):
                return LOCAL
            if time.monotonic() > give_up:
                log.warning("gave up waiting for another front end's fetch of %r", key)
                return None
        fetch: Fetch | None = None
        try:
            if self._is_local(key):
                return LOCAL
            fetch = await self._start(key)
        finally:
            if fetch is None:
                await self._run(self._unlock, offset)
        if fetch is None:
            return None
        self.fetches[key] = fetch
        task = asyncio.ensure_future(self._complete(key, fetch, offset))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return fetch

    async def _start(self, key: str) -> Fetch | None:
        """Ask the store for ``key``; a ``Fetch`` once its headers are in."""
        try:
            got = await self._run(self.store.get, key)
        except StoreUnavailable:
            self.metrics.fetches.labels("unavailable").inc()
            return None
        if got is None:
            self.metrics.fetches.labels("absent").inc()
            return None
        stored, body = got
        if stored.meta.size > self.max_size:
            body.close()
            log.warning(
                "not fetching %r from the store: %d bytes, more than max_file_size (%d)",
                key,
                stored.meta.size,
                self.max_size,
            )
            self.metrics.fetches.labels("absent").inc()
            return None
        try:
            staged = StagedFile(self.layout)
        except OSError as e:
            body.close()
            log.error("cannot stage %r fetched from the store: %s", key, e)
            return None
        reader_fd = os.open(staged.name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.layout.staging_fd)
        return Fetch(stored, body, staged, reader_fd)

    async def _complete(self, key: str, fetch: Fetch, offset: int) -> None:
        """Receive, verify and commit ``fetch``; its readers follow along."""
        loop = asyncio.get_running_loop()
        committed = False
        try:
            problem = await loop.run_in_executor(self.pool, self._receive, loop, fetch)
            if problem is not None:
                log.error("fetching %r from the store failed: %s", key, problem)
                self.metrics.fetches.labels(
                    "corrupt" if "sha256" in problem else "unavailable"
                ).inc()
                fetch.fail(problem)
                fetch.staged.discard()
                return
            self.metrics.fetches.labels("fetched").inc()
            meta = fetch.meta
            sealed, file_size = fetch.staged.seal(
                key,
                meta.filename,
                meta.content_type,
                meta.stored_at,
                meta.fetched_version,
                meta.headers,
            )
            try:
                committed = await self.commit(
                    key, fetch.staged.name, file_size, sealed.size, sealed.filename
                )
            except PackratError as e:
                log.warning("could not commit %r fetched from the store: %s", key, e.message)
            if not committed:
                fetch.staged.discard()
        except BaseException as e:
            fetch.fail(f"the fetch failed: {e}")
            fetch.staged.discard()
            raise
        finally:
            del self.fetches[key]
            fetch.finish()
            if not fetch.done.done():
                fetch.done.set_result(committed)
            await loop.run_in_executor(self.pool, self._unlock, offset)

    def _receive(self, loop: asyncio.AbstractEventLoop, fetch: Fetch) -> str | None:
        """(On a thread.)  Copy the body into the staging file; the problem, or None."""
        body = fetch.body
        staged = fetch.staged
        size = fetch.meta.size
        try:
            while staged.size < size:
                chunk = self.store.read_chunk(body, min(CHUNK, size - staged.size))
                if not chunk:
                    return f"the store sent {staged.size} of {size} bytes"
                staged.write(chunk)
                staged.flush()
                if staged.size < size:
                    loop.call_soon_threadsafe(fetch.progress, staged.size, False)
            if self.store.read_chunk(body, 1):
                return f"the store sent more than the {size} bytes its metadata says"
        except StoreUnavailable as e:
            return str(e)
        except OSError as e:
            return f"staging failed: {e}"
        finally:
            body.close()
        if staged.hexdigest() != fetch.meta.sha256:
            return "the bytes do not match the sha256 in the object's metadata"
        loop.call_soon_threadsafe(fetch.progress, size, True)
        return None

    # -- plumbing ---------------------------------------------------------------

    def _open_now(self) -> bool:
        """The breaker is open and no probe is due: fail fast, without a thread hop."""
        breaker = self.store.breaker
        return breaker.state == OPEN and breaker.seconds_until_probe() > 0

    def _is_local(self, key: str) -> bool:
        try:
            opened = open_key(self.layout, key)
        except Exception:  # corrupt or unreadable: the local path deals with it
            return False
        if opened is None:
            return False
        os.close(opened[0])
        return True

    def _try_lock(self, offset: int) -> bool:
        try:
            fcntl.lockf(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, offset)
        except OSError:
            return False
        return True

    def _unlock(self, offset: int) -> None:
        with contextlib.suppress(OSError):
            fcntl.lockf(self._lock_fd, fcntl.LOCK_UN, 1, offset)

    async def _run(self, function: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self.pool, function, *args)
