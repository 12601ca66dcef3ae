"""The HTTP server: one listener, one parser, every connection swept for timeouts.

``Server`` accepts connections on the shared port and gives each a
``http1.Connection``; the router it is given (``app.route``) picks who
answers each request.  It owns what spans connections:

* **Accepting.**  When the process runs out of file descriptors,
  ``accept()`` fails with ``EMFILE`` while the listening socket stays
  readable; a naive accept loop would spin.  Here accepting pauses for
  ``ACCEPT_PAUSE`` seconds instead (as nginx does), while the connections
  already open keep being served; ``fdlimit.raise_open_file_limit`` makes
  that rare.  TLS connections are wrapped by asyncio's SSL transport.
* **Timeouts, by one sweep** every quarter of ``idle_timeout`` (at most a
  second) rather than a timer per request: a connection that waited
  ``idle_timeout`` seconds for a request's headers, or ``body_timeout`` for
  a body, is closed.
* **Draining.**  ``stop`` closes the listening sockets (new connections go
  to the other front ends sharing the port) and idle connections;
  ``drain`` waits for the answers under way (``in_flight``) and closes each
  connection as its answer ends.
* **Accounting.**  Every exchange is recorded once, through ``record``
  (the access line and the counts), whoever answered it, refusals of
  malformed requests included.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import time
from collections.abc import Callable
from typing import Any

from packrat.frontend.http1 import Connection, Delegate, Exchange, Limits

log = logging.getLogger("packrat.frontend")

ACCEPT_PAUSE = 0.5  # seconds without accepting after EMFILE
ACCEPT_BATCH = 128  # connections accepted per readiness event at most
TLS_HANDSHAKE_TIMEOUT = 10.0  # seconds
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_WARN_EVERY = 10.0  # seconds between two warnings about exhausted descriptors


class Server:
    """Accepts connections and hands each request to ``route``'s delegate.

    ``record(exchange, status)`` is called once per exchange, when it ends.
    """

    def __init__(
        self,
        route: Callable[[Exchange], Delegate],
        record: Callable[[Exchange, int], None],
        limits: Limits,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.route = route
        self.record = record
        self.limits = limits
        self.ssl_context = ssl_context
        self.in_flight = 0  # exchanges begun and not yet recorded
        self.connections: set[Connection] = set()
        self._accepting: list[Callable[[], None]] = []
        self._handshakes: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        self._stopped = False

    # -- connections

    def add_sockets(self, sockets: list[socket.socket]) -> None:
        """Serve connections accepted on ``sockets`` (listening already)."""
        for sock in sockets:
            sock.setblocking(False)
            self._accepting.append(accept_connections(sock, self._accepted))
        self._sweep_later()

    def _accepted(self, sock: socket.socket, address: Any) -> None:
        loop = asyncio.get_running_loop()
        task = loop.create_task(
            loop.connect_accepted_socket(
                lambda: Connection(self),
                sock,
                ssl=self.ssl_context,
                ssl_handshake_timeout=TLS_HANDSHAKE_TIMEOUT if self.ssl_context else None,
            )
        )
        self._handshakes.add(task)
        task.add_done_callback(self._handshake_done)

    def _handshake_done(self, task: asyncio.Task[Any]) -> None:
        self._handshakes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.debug("a connection failed before its first request: %s", task.exception())

    def connection_made(self, connection: Connection) -> None:
        if self._stopped:  # taken from the queue as the listener closed: one answer, then close
            connection.draining = True
        self.connections.add(connection)

    def connection_lost(self, connection: Connection) -> None:
        self.connections.discard(connection)

    # -- timeouts

    def _sweep_later(self) -> None:
        interval = min(self.limits.idle_timeout / 4, 1.0)
        self._sweeper = asyncio.get_running_loop().call_later(interval, self._sweep)

    def _sweep(self) -> None:
        """Close connections that waited too long for headers or for a body."""
        now = time.monotonic()
        idle, body = self.limits.idle_timeout, self.limits.body_timeout
        for connection in list(self.connections):
            since = connection.waiting_since
            if since is not None and now - since > idle:
                connection.close()
                continue
            started = connection.body_started
            if started is not None and now - started > body:
                log.info("a request body took over %.0fs; closing", body)
                connection.abort()
        self._sweep_later()

    # -- stopping

    def stop(self) -> None:
        """Stop accepting; close idle connections, the others once their answer ends.

        The listening sockets are closed, not only left unread: with
        ``SO_REUSEPORT`` the kernel would go on queueing new connections on
        them for the whole drain (and reset them at exit); closed, it hands
        them to the other front ends.  Those already queued are taken first
        and get one answer each.
        """
        self._stopped = True
        for close in self._accepting:
            close()
        self._accepting.clear()
        for connection in list(self.connections):
            connection.drain_and_close()

    async def drain(self, grace: float) -> None:
        """Wait up to ``grace`` seconds for the answers under way, then close everything."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + grace
        while self.in_flight and loop.time() < deadline:
            await asyncio.sleep(0.05)
        if self.in_flight:
            log.warning("closing with %d requests still in flight", self.in_flight)
        for connection in list(self.connections):
            connection.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.sleep(0)  # let connection_lost run


def accept_connections(
    sock: socket.socket, callback: Callable[[socket.socket, Any], None]
) -> Callable[[], None]:
    """An accept loop on the running event loop, pausing on ``EMFILE``; returns the closer,
    which takes the connections still queued and closes ``sock``."""
    loop = asyncio.get_running_loop()
    state = {"listening": True, "removed": False, "warned_at": -_WARN_EVERY}

    def accept() -> None:
        for _ in range(ACCEPT_BATCH):
            if state["removed"]:
                return
            try:
                connection, address = sock.accept()
            except BlockingIOError:
                return
            except ConnectionAbortedError:
                continue
            except OSError as e:
                if e.errno not in _OUT_OF_RESOURCES:
                    raise
                pause(e)
                return
            callback(connection, address)

    def pause(error: OSError) -> None:
        now = time.monotonic()
        if now - state["warned_at"] >= _WARN_EVERY:
            state["warned_at"] = now
            log.warning(
                "accept() failed (%s); not accepting for %.1fs at a time until it works",
                error.strerror,
                ACCEPT_PAUSE,
            )
        loop.remove_reader(sock)
        state["listening"] = False
        loop.call_later(ACCEPT_PAUSE, resume)

    def resume() -> None:
        if not state["removed"] and not state["listening"]:
            state["listening"] = True
            loop.add_reader(sock, accept)

    def close() -> None:
        if state["listening"]:
            loop.remove_reader(sock)
        with contextlib.suppress(OSError):  # out of descriptors: those queued are reset
            while True:
                try:
                    connection, address = sock.accept()
                except ConnectionAbortedError:
                    continue
                callback(connection, address)
        state["removed"] = True
        sock.close()

    loop.add_reader(sock, accept)
    return close
