"""Talking to the coordinator: one client, asynchronous for front ends, blocking for tools.

Both speak over one DEALER socket with ``immediate`` set, so a send fails
at once while no coordinator is connected (writes get a quick 503 instead
of queueing for a coordinator that may never come); ZeroMQ reconnects by
itself when the coordinator is back.  Every request carries a deadline, and
a reply that does not come in time raises ``CoordinatorUnavailable``; an
error reply raises the ``PackratError`` of its code.

The asynchronous client also batches reads: ``touch``/``miss`` (and the
HTTP ``traffic``) are sent every ``touch_interval`` seconds fire-and-forget,
and before every request, so a commit never overtakes the reads that came
before it.  Each batch names the front end (its number and pid), and an
idle front end sends an empty one every ``HEARTBEAT`` seconds, so the
coordinator can tell which front ends are alive.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import zmq

from packrat.coordinator import protocol
from packrat.coordinator.curve import secure_client
from packrat.coordinator.protocol import (
    MAX_PAGE,
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
from packrat.core.errors import CoordinatorUnavailable, ErrorCode, NotFound, PackratError

log = logging.getLogger("packrat.coordinator.client")

MAX_PENDING_TOUCHES = 100_000  # reads kept while the coordinator is down
CONNECT_WAIT_MS = 1000  # how long a request waits for a (re)connection
CONNECT_RETRY = 0.01  # seconds between two tries meanwhile
# pyzmq's constants are enum flags; an operation on one builds a new enum
# member, a few percent of a small upload: the front end's path uses ints.
_NOBLOCK, _EVENTS, _POLLIN = int(zmq.NOBLOCK), int(zmq.EVENTS), int(zmq.POLLIN)
HEARTBEAT = 5.0  # seconds: the longest a front end stays unheard of
UNREACHABLE = "the cache coordinator is not reachable; retry shortly"
SILENT = "the cache coordinator did not answer in time; retry shortly"


class _Requests:
    """Request building and reply checking, shared by both clients."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._ids = itertools.count(1)

    def commit(
        self,
        key: str,
        staging: str,
        file_size: int,
        size: int = 0,
        filename: str = "",
        only_if_absent: bool = False,
    ) -> Commit:
        return Commit(
            self._next_id(),
            self._deadline(),
            key,
            staging,
            file_size,
            size,
            filename,
            only_if_absent,
        )

    def delete(self, key: str) -> Delete:
        return Delete(self._next_id(), self._deadline(), key)

    def drop(self, name: str, inode: tuple[int, int], key: str | None) -> Drop:
        return Drop(self._next_id(), self._deadline(), name, inode, key)

    def stats(self, timeout: float | None = None) -> Stats:
        return Stats(self._next_id(), self._deadline(timeout))

    def list_keys(self, prefix: str, after: str, limit: int, collections: bool) -> ListKeys:
        return ListKeys(self._next_id(), self._deadline(), prefix, after, limit, collections)

    def purge(self, prefix: str, limit: int) -> Purge:
        return Purge(self._next_id(), self._deadline(), prefix, limit)

    def _next_id(self) -> int:
        return next(self._ids)

    def _deadline(self, timeout: float | None = None) -> float:
        return time.time() + (timeout or self.timeout)


def _settle(
    future: asyncio.Future[Reply | CoordinatorUnavailable], outcome: Reply | CoordinatorUnavailable
) -> None:
    if not future.done():  # not cancelled meanwhile
        future.set_result(outcome)


def checked(reply: Reply) -> Reply:
    """``reply``, or the ``PackratError`` its error code stands for (``NotFound`` for a
    delete of a key the index does not hold, which callers tell from other refusals)."""
    if reply.error is None:
        return reply
    message = reply.message or "the coordinator refused the request"
    if reply.error == ErrorCode.NOT_FOUND:
        raise NotFound(message)
    raise PackratError(message, code=reply.error)


def _dealer(context: zmq.Context[Any], endpoint: str, curve_keys: Path | None) -> zmq.Socket[Any]:
    socket = context.socket(zmq.DEALER)
    socket.linger = 0
    socket.immediate = True
    socket.reconnect_ivl = 100
    socket.reconnect_ivl_max = 1000
    if curve_keys is not None:
        secure_client(socket, curve_keys)
    socket.connect(endpoint)
    return socket


# What a request's sender hears once: its reply (unchecked) or CoordinatorUnavailable.
Answered = Callable[[Reply | CoordinatorUnavailable], None]
AnyRequest = Commit | Delete | Drop | ListKeys | Purge | Stats
_OP = {cls: cls.__name__.lower() for cls in (Commit, Delete, Drop, ListKeys, Purge, Stats)}


class AsyncCoordinatorClient:
    """The front end's client: requests, replies and batched reads on the event loop.

    ``number`` is the front end's, sent with each batch of reads;
    ``observe(op, seconds)``, when set, hears of every request's round trip
    (failed ones included), for the front end's metrics.

    It drives a plain ZeroMQ socket from the event loop itself rather than
    through ``zmq.asyncio``, whose futures, pollers and timers were a third of
    a small upload's time in the front end: sends never block (``NOBLOCK``),
    and replies are read when the socket's ``FD`` wakes the loop.  That
    descriptor only signals a change, and only once the socket was found
    empty: replies are read until ``EVENTS`` says none is left, and a send
    made while a reply may be on its way (it can take the wake-up in) is
    followed by a read.  ``send_request`` sends a request and calls back with its
    reply from the reader itself (an upload's commit: no task, no future);
    ``request`` awaits one.  One timer, at the soonest deadline, expires the
    requests not answered in time (not one timer per request).
    """

    def __init__(
        self,
        endpoint: str,
        timeout: float,
        touch_interval: float,
        curve_keys: Path | None = None,
    ) -> None:
        self.touch_interval = touch_interval
        self.requests = _Requests(timeout)
        self.number = 0
        self.observe: Callable[[str, float], None] | None = None
        self._context: zmq.Context[Any] = zmq.Context()
        self._socket = _dealer(self._context, endpoint, curve_keys)
        self._loop: asyncio.AbstractEventLoop | None = None
        # id -> (expiry in loop time, start in perf_counter time, request, answered)
        self._pending: dict[int, tuple[float, float, AnyRequest, Answered]] = {}
        self._expiry: asyncio.TimerHandle | None = None
        self._expiry_at = 0.0
        self._unanswered = 0  # requests sent whose reply was not read (expired ones too)
        self._reading_soon = False
        self._touched: list[str] = []
        self._misses = 0
        self._bytes_in = 0
        self._bytes_out = 0
        self._last_sent = 0.0  # monotonic time of the last batch
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start reading replies and the touch flusher (needs a running loop)."""
        self._watch()
        self.spawn(self._flush_touches())

    def spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        """Run ``coroutine`` in the background, keeping a reference until it ends."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        """Stop the background tasks (and wait for them), then the socket."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._expiry is not None:
            self._expiry.cancel()
        if self._loop is not None:
            self._loop.remove_reader(self._socket.FD)
        self._socket.close()
        self._context.term()

    async def commit(
        self,
        key: str,
        staging: str,
        file_size: int,
        size: int = 0,
        filename: str = "",
        only_if_absent: bool = False,
    ) -> Reply:
        return await self.request(
            self.requests.commit(key, staging, file_size, size, filename, only_if_absent)
        )

    async def delete(self, key: str) -> Reply:
        return await self.request(self.requests.delete(key))

    async def drop(self, name: str, inode: tuple[int, int], key: str | None = None) -> Reply:
        return await self.request(self.requests.drop(name, inode, key))

    async def stats(self, timeout: float | None = None) -> dict[str, Any]:
        """The coordinator's figures; ``timeout`` shortens the wait (health probes)."""
        return (await self.request(self.requests.stats(timeout), timeout)).stats

    async def list_keys(
        self, prefix: str, after: str = "", limit: int = MAX_PAGE, collections: bool = False
    ) -> tuple[tuple[str, ...], bool]:
        """A page of the keys under ``prefix`` after ``after``, and whether more follow."""
        reply = await self.request(self.requests.list_keys(prefix, after, limit, collections))
        return reply.keys, reply.more

    async def purge(self, prefix: str, limit: int = MAX_PAGE) -> tuple[tuple[str, ...], bool]:
        """Remove a batch of keys under ``prefix``: those removed, and whether more remain."""
        reply = await self.request(self.requests.purge(prefix, limit))
        return reply.keys, reply.more

    async def request(self, request: AnyRequest, timeout: float | None = None) -> Reply:
        """Send one request and wait for its reply, checked (see the module docstring)."""
        future: asyncio.Future[Reply | CoordinatorUnavailable] = self._watch().create_future()
        self.send_request(request, functools.partial(_settle, future), timeout)
        outcome = await future
        if isinstance(outcome, CoordinatorUnavailable):
            raise outcome
        return checked(outcome)

    def send_request(
        self, request: AnyRequest, answered: Answered, timeout: float | None = None
    ) -> None:
        """Send ``request`` now (after the reads it must not overtake) and call ``answered``
        once, from the loop, with its reply (unchecked: ``checked``) or
        ``CoordinatorUnavailable`` (not connected, or no reply in time)."""
        loop = self._loop or self._watch()
        started = time.perf_counter()
        frame = protocol.encode(request)
        if self._touched or self._misses:
            self._send_touches()  # traffic counts alone can wait
        try:
            self._send(frame)
        except zmq.Again:
            # Not connected: ``immediate`` refuses the message; wait a little.
            self.spawn(self._send_later(request, frame, started, answered, timeout))
            return
        self._expect(loop, request, started, answered, timeout)

    def _expect(
        self,
        loop: asyncio.AbstractEventLoop,
        request: AnyRequest,
        started: float,
        answered: Answered,
        timeout: float | None,
    ) -> None:
        """Wait for the reply of ``request``, sent, until its timeout."""
        self._unanswered += 1
        expires = loop.time() + (timeout or self.requests.timeout)
        self._pending[request.id] = (expires, started, request, answered)
        if self._expiry is None or expires < self._expiry_at:
            if self._expiry is not None:
                self._expiry.cancel()
            self._expiry = loop.call_at(expires, self._expire)
            self._expiry_at = expires

    async def _send_later(
        self,
        request: AnyRequest,
        frame: bytes,
        started: float,
        answered: Answered,
        timeout: float | None,
    ) -> None:
        """Send a request the socket refused: with ``immediate`` it takes a message only
        while connected; a short wait (``CONNECT_WAIT_MS``) covers start-up and
        reconnection."""
        deadline = time.monotonic() + CONNECT_WAIT_MS / 1000
        while True:
            await asyncio.sleep(CONNECT_RETRY)
            if self._touched or self._misses:
                self._send_touches()
            try:
                self._send(frame)
                break
            except zmq.Again:
                if time.monotonic() >= deadline:
                    self._answer(request, started, answered, CoordinatorUnavailable(UNREACHABLE))
                    return
        self._expect(asyncio.get_running_loop(), request, started, answered, timeout)

    def _answer(
        self,
        request: AnyRequest,
        started: float,
        answered: Answered,
        outcome: Reply | CoordinatorUnavailable,
    ) -> None:
        if self.observe is not None:
            self.observe(_OP[type(request)], time.perf_counter() - started)
        try:
            answered(outcome)
        except Exception:  # the reader must go on: unread replies would stall the socket
            log.exception("handling the coordinator's answer to request %d failed", request.id)

    def _expire(self) -> None:
        """The timer of the soonest deadline: answer what is overdue, then wait for the next."""
        self._expiry = None
        loop = self._watch()
        now = loop.time()
        overdue = [
            request_id for request_id, (expires, *_) in self._pending.items() if expires <= now
        ]
        for request_id in overdue:
            _, started, request, answered = self._pending.pop(request_id)
            self._answer(request, started, answered, CoordinatorUnavailable(SILENT))
        if self._pending and self._expiry is None:
            self._expiry_at = min(expires for expires, *_ in self._pending.values())
            self._expiry = loop.call_at(self._expiry_at, self._expire)

    def touch(self, key: str) -> None:
        self._touched.append(key)

    def miss(self) -> None:
        self._misses += 1

    def traffic(self, received: int, sent: int) -> None:
        """Count one request's HTTP body bytes, for the coordinator's history."""
        self._bytes_in += received
        self._bytes_out += sent

    def _watch(self) -> asyncio.AbstractEventLoop:
        """Have the running loop read replies as they come (once)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._loop.add_reader(self._socket.FD, self._read_replies)
            self._loop.call_soon(self._read_replies, False)
        return self._loop

    def _send(self, frame: bytes) -> None:
        """Send without blocking (``zmq.Again`` when not connected).

        A send may process the socket's commands, and with them take in the
        wake-up of a reply that arrived meanwhile: with a reply on its way, the
        replies are read on the next turn (once a turn).
        """
        self._socket.send(frame, _NOBLOCK)
        if self._unanswered and not self._reading_soon and self._loop is not None:
            self._reading_soon = True
            self._loop.call_soon(self._read_replies, False)

    def _read_replies(self, woken: bool = True) -> None:
        """Take every reply the socket holds, until ``EVENTS`` says it is empty (that check
        is what re-arms the ``FD``'s wake-up).  Woken by the ``FD`` with a reply awaited,
        the first ``recv`` is tried at once (not after a read made just in case: a failed
        ``recv`` costs more than ``EVENTS``)."""
        self._reading_soon = False
        socket = self._socket
        pending = self._pending
        expected = woken and bool(pending)
        while expected or socket.getsockopt(_EVENTS) & _POLLIN:
            expected = False
            try:
                frame = socket.recv(_NOBLOCK)
            except zmq.Again:
                continue  # a wake-up with no reply yet: EVENTS re-arms it
            if self._unanswered:
                self._unanswered -= 1
            try:
                reply = protocol.decode_reply(frame)
            except protocol.ProtocolError as e:
                log.warning("ignoring a bad reply from the coordinator: %s", e)
                continue
            waiting = pending.pop(reply.id, None)
            if waiting is not None:
                self._answer(waiting[2], waiting[1], waiting[3], reply)

    async def _flush_touches(self) -> None:
        while True:
            await asyncio.sleep(self.touch_interval)
            self._send_touches(heartbeat=time.monotonic() - self._last_sent >= HEARTBEAT)

    def _send_touches(self, heartbeat: bool = False) -> None:
        """Report the reads and traffic gathered so far, fire-and-forget."""
        if not (self._touched or self._misses or self._bytes_in or self._bytes_out or heartbeat):
            return
        keys, misses = self._touched, self._misses
        bytes_in, bytes_out = self._bytes_in, self._bytes_out
        self._touched, self._misses, self._bytes_in, self._bytes_out = [], 0, 0, 0
        touch = Touch(tuple(keys), misses, bytes_in, bytes_out, self.number, os.getpid())
        try:
            self._send(protocol.encode(touch))
        except zmq.Again:
            # Coordinator down: keep the newest reads for when it is back.
            self._touched = (keys + self._touched)[-MAX_PENDING_TOUCHES:]
            self._misses += misses
            self._bytes_in += bytes_in
            self._bytes_out += bytes_out
            return
        self._last_sent = time.monotonic()


class CoordinatorClient:
    """The blocking client, for ``packrat fsck``, benchmarks and tests."""

    def __init__(self, endpoint: str, timeout: float, curve_keys: Path | None = None) -> None:
        self.requests = _Requests(timeout)
        self._context: zmq.Context[Any] = zmq.Context()
        self._socket = _dealer(self._context, endpoint, curve_keys)
        self._socket.sndtimeo = int(timeout * 1000)

    def __enter__(self) -> CoordinatorClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._socket.close()
        self._context.term()

    def commit(
        self, key: str, staging: str, file_size: int, size: int = 0, filename: str = ""
    ) -> Reply:
        return self.request(self.requests.commit(key, staging, file_size, size, filename))

    def delete(self, key: str) -> Reply:
        return self.request(self.requests.delete(key))

    def drop(self, name: str, inode: tuple[int, int], key: str | None = None) -> Reply:
        return self.request(self.requests.drop(name, inode, key))

    def stats(self) -> dict[str, Any]:
        return self.request(self.requests.stats()).stats

    def touch(self, keys: list[str], misses: int = 0) -> None:
        self.send(Touch(tuple(keys), misses))

    def send(self, request: Request) -> None:
        """Send without waiting for a reply (several requests in flight, or a touch)."""
        try:
            self._socket.send(protocol.encode(request))
        except zmq.Again:
            raise CoordinatorUnavailable(UNREACHABLE) from None

    def receive(self) -> Reply:
        """The next reply, unchecked; ``CoordinatorUnavailable`` past the timeout."""
        if not self._socket.poll(int(self.requests.timeout * 1000)):
            raise CoordinatorUnavailable(SILENT)
        return protocol.decode_reply(self._socket.recv())

    def request(self, request: Commit | Delete | Drop | ListKeys | Purge | Stats) -> Reply:
        self.send(request)
        while True:
            reply = self.receive()
            if reply.id == request.id:
                return checked(reply)
