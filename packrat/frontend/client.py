"""The front end's side of the coordinator protocol.

One DEALER socket per front end, integrated with the event loop
(``zmq.asyncio``), so a request never blocks other clients.  ``immediate``
makes a send fail at once while no coordinator is connected, so writes get a
quick 503 instead of queueing for a coordinator that may never come; ZeroMQ
reconnects by itself when the coordinator is back.

Reads are reported in batches (``touch``) every ``touch_interval`` seconds,
fire-and-forget: recency reaches the coordinator without delaying responses.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Coroutine
from typing import Any

import zmq
import zmq.asyncio

from packrat import protocol
from packrat.errors import COORDINATOR_ERRORS, CoordinatorUnavailable, PackratError

log = logging.getLogger("packrat.frontend")

MAX_PENDING_TOUCHES = 100_000  # reads kept while the coordinator is down
CONNECT_WAIT_MS = 1000  # how long a request waits for a (re)connection


class CoordinatorClient:
    """Request/reply and touch batching over one DEALER socket."""

    def __init__(self, endpoint: str, timeout: float, touch_interval: float) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.touch_interval = touch_interval
        self._context = zmq.asyncio.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.linger = 0
        self._socket.immediate = True
        self._socket.reconnect_ivl = 100
        self._socket.reconnect_ivl_max = 1000
        self._socket.connect(endpoint)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[protocol.Message]] = {}
        self._touched: list[str] = []
        self._misses = 0
        self._tasks: set[asyncio.Task[None]] = set()

    def start(self) -> None:
        """Start the reply reader and the touch flusher (needs a running loop)."""
        self.spawn(self._read_replies())
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
        self._socket.close()
        self._context.term()

    async def request(self, op: str, **fields: Any) -> protocol.Message:
        """Send one request and wait for its reply.

        Raises ``CoordinatorUnavailable`` when the coordinator is down or
        silent past the timeout, or the mapped ``PackratError`` when it
        answers with an error.
        """
        request_id = next(self._ids)
        message = {"op": op, "id": request_id, "deadline": time.time() + self.timeout, **fields}
        future: asyncio.Future[protocol.Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            # With ``immediate`` the socket is writable only while connected;
            # a short wait covers start-up and reconnection.
            if not await self._socket.poll(CONNECT_WAIT_MS, zmq.POLLOUT):
                raise CoordinatorUnavailable(
                    "the cache coordinator is not reachable; retry shortly"
                )
            # Reads reported first: one socket keeps order, so a commit never
            # overtakes the reads that came before it.
            await self._send_touches()
            await self._socket.send(protocol.encode(message))
            try:
                reply = await asyncio.wait_for(future, self.timeout)
            except TimeoutError:
                raise CoordinatorUnavailable(
                    "the cache coordinator did not answer in time; retry shortly"
                ) from None
        finally:
            self._pending.pop(request_id, None)
        if not reply.get("ok"):
            error = COORDINATOR_ERRORS.get(reply.get("error", ""), PackratError)
            raise error(reply.get("message", "the coordinator refused the request"))
        return reply

    def touch(self, key: str) -> None:
        self._touched.append(key)

    def miss(self) -> None:
        self._misses += 1

    async def _read_replies(self) -> None:
        while True:
            frame = await self._socket.recv()
            try:
                reply = protocol.decode(frame)
            except protocol.ProtocolError as e:
                log.warning("ignoring bad reply from coordinator: %s", e)
                continue
            future = self._pending.get(reply.get("id"))
            if future is not None and not future.done():
                future.set_result(reply)

    async def _flush_touches(self) -> None:
        while True:
            await asyncio.sleep(self.touch_interval)
            await self._send_touches()

    async def _send_touches(self) -> None:
        """Report the reads gathered so far, fire-and-forget."""
        if not self._touched and not self._misses:
            return
        keys, misses = self._touched, self._misses
        self._touched, self._misses = [], 0
        message = {"op": "touch", "keys": keys, "misses": misses}
        try:
            await self._socket.send(protocol.encode(message), flags=zmq.NOBLOCK)
        except zmq.Again:
            # Coordinator down: keep the newest reads for when it is back.
            self._touched = (keys + self._touched)[-MAX_PENDING_TOUCHES:]
            self._misses += misses
