"""The HTTP server around the application: framing checked first, then the hot routes,
slow headers cut by one sweep, accepts that survive EMFILE.

Tornado refuses a request whose framing is ambiguous (both
``Content-Length`` and ``Transfer-Encoding``, unequal ``Content-Length``
values, one that is not plain digits, a transfer coding other than
``chunked``) with a bare ``400`` and no body.  The headers reach our
delegate before Tornado looks at them, so ``FramingCheck`` answers such a
request with the JSON error shape itself and closes the connection (after a
framing error nobody knows where the next request starts).  A malformed
chunk inside a chunked body is found by Tornado only while it reads the
body; that one keeps Tornado's bare ``400``.

A well-framed request goes to ``hot.HotRoutes`` first (reads, exists and
uploads answered without ``RequestHandler``), else to the application.

When the process runs out of file descriptors, ``accept()`` fails with
``EMFILE`` while the listening socket stays readable; Tornado's accept loop
would log a traceback and spin.  Here accepting pauses for
``ACCEPT_PAUSE`` seconds instead (as nginx does) while the connections
already open keep being served; ``fdlimit.raise_open_file_limit`` makes
that rare.
"""

from __future__ import annotations

import errno
import json
import logging
import re
import socket
import time
from collections.abc import Callable, Iterable
from typing import Any

from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.ioloop import IOLoop, PeriodicCallback
from tornado.iostream import IOStream

from packrat.core.errors import ErrorCode
from packrat.frontend.accesslog import RequestLog
from packrat.frontend.hot import HotRoutes

log = logging.getLogger("packrat.frontend")

ACCEPT_PAUSE = 0.5  # seconds without accepting after EMFILE
ACCEPT_BATCH = 128  # connections accepted per readiness event at most
_OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_LENGTH = re.compile(r"[0-9]{1,18}")
_WARN_EVERY = 10.0  # seconds between two warnings about exhausted descriptors


def framing_problem(headers: httputil.HTTPHeaders) -> str | None:
    """Why Tornado would refuse these request headers' framing, or None.

    >>> framing_problem(httputil.HTTPHeaders({"Content-Length": "12"})) is None
    True
    >>> framing_problem(httputil.HTTPHeaders({"Content-Length": "\\u00b2"}))
    'Content-Length must be a decimal number of at most 18 digits'
    """
    length = headers.get("Content-Length")
    coding = headers.get("Transfer-Encoding")
    if length is not None and coding is not None:
        return "a request may not have both Content-Length and Transfer-Encoding"
    if coding is not None and coding.strip().lower() != "chunked":
        return "the only Transfer-Encoding accepted is chunked"
    if length is not None:
        values = {value.strip() for value in length.split(",")}
        if len(values) != 1:
            return "several different Content-Length values"
        if not _LENGTH.fullmatch(values.pop()):
            return "Content-Length must be a decimal number of at most 18 digits"
    return None


class FramingCheck(httputil.HTTPMessageDelegate):
    """Answers a request with broken framing in JSON; passes every other one on.

    A well-framed request goes to the hot routes (``hot``) when they take it,
    else to the application's delegate, made only then.
    """

    def __init__(
        self,
        server: PackratHTTPServer,
        server_conn: object,
        connection: httputil.HTTPConnection,
        request_log: RequestLog | None = None,
    ) -> None:
        self.server = server
        self.server_conn = server_conn
        self.connection = connection
        self.request_log = request_log
        self.answered = False
        self.delegate: httputil.HTTPMessageDelegate | None = None

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Any:
        self.server.headers_in(self)
        problem = framing_problem(headers)
        if problem is None:
            hot = self.server.hot
            delegate = None
            if hot is not None and isinstance(start_line, httputil.RequestStartLine):
                delegate = hot.take(self.connection, start_line, headers)  # type: ignore[arg-type]
            if delegate is None:
                delegate = self.server.application_delegate(self.server_conn, self.connection)
            self.delegate = delegate
            return delegate.headers_received(start_line, headers)
        # Tornado reads no body once these are gone; it closes the
        # connection after our answer because the request was not read whole.
        for name in ("Content-Length", "Transfer-Encoding"):
            if name in headers:
                del headers[name]
        self.answered = True
        body = json.dumps(
            {"success": False, "error": str(ErrorCode.BAD_REQUEST), "message": problem}
        ).encode()
        self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", 400, "Bad Request"),
            httputil.HTTPHeaders(
                {
                    "Content-Type": "application/json; charset=UTF-8",
                    "Content-Length": str(len(body)),
                    "Connection": "close",
                    "Cache-Control": "no-store",
                    "X-Content-Type-Options": "nosniff",
                }
            ),
            body,
        )
        self.connection.finish()
        if self.request_log is not None and isinstance(start_line, httputil.RequestStartLine):
            context = getattr(self.connection, "context", None)
            self.request_log.record(
                "other",
                getattr(context, "remote_ip", None) or "-",
                start_line.method,
                start_line.path.partition("?")[0],
                headers.get("User-Agent", ""),
                400,
                len(body),
                0,
                0.0,
                str(ErrorCode.BAD_REQUEST),
                problem,
            )
        return None

    def data_received(self, chunk: bytes) -> Any:
        return None if self.delegate is None else self.delegate.data_received(chunk)

    def finish(self) -> None:
        if self.delegate is not None:
            self.delegate.finish()

    def on_connection_close(self) -> None:
        self.server.headers_in(self)
        if self.delegate is not None:
            self.delegate.on_connection_close()


class PackratHTTPServer(HTTPServer):
    """Tornado's ``HTTPServer`` with ``FramingCheck``, the hot routes and pausing accepts.

    ``hot`` is set by ``app.make_server``; without it every request goes to
    the application.
    """

    hot: HotRoutes | None = None
    _header_timeout: float | None = None
    _waiting: dict[FramingCheck, float] | None = None  # requests by deadline for their headers
    _sweeper: PeriodicCallback | None = None

    def watch_headers(self, timeout: float) -> None:
        """Close a connection whose next request's headers take over ``timeout`` seconds.

        Tornado's own ``idle_connection_timeout`` does the same by wrapping
        every header read in ``gen.with_timeout`` (a timer and two futures,
        5 % of a small read's time); here one periodic sweep does it for
        every connection, at most a quarter of ``timeout`` late (and at most
        a second).  It bounds an idle keep-alive connection as well as a
        slowloris sending its headers byte by byte.
        """
        self.conn_params.header_timeout = None
        self._header_timeout = timeout
        self._waiting = {}
        self._sweeper = PeriodicCallback(self._cut_slow_headers, min(timeout / 4, 1.0) * 1000)
        self._sweeper.start()

    def headers_in(self, request: FramingCheck) -> None:
        """``request``'s headers have arrived (or its connection closed)."""
        if self._waiting is not None:
            self._waiting.pop(request, None)

    def _cut_slow_headers(self) -> None:
        assert self._waiting is not None
        now = time.monotonic()
        late = [request for request, deadline in self._waiting.items() if deadline < now]
        for request in late:
            del self._waiting[request]
            request.connection.close()

    def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.stop()
        super().stop()

    def handle_stream(self, stream: IOStream, address: tuple) -> None:
        # Every answer is written whole (headers and body in one write, or
        # sendfile): Nagle's algorithm could only delay it.  Tornado turns it
        # off and on again around each response, two system calls a request.
        stream.set_nodelay(True)
        stream.set_nodelay = _leave_nodelay  # type: ignore[method-assign]
        super().handle_stream(stream, address)

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        request_log = getattr(self.request_callback, "settings", {}).get("log_function")
        request = FramingCheck(self, server_conn, request_conn, request_log)
        if self._waiting is not None:
            assert self._header_timeout is not None
            self._waiting[request] = time.monotonic() + self._header_timeout
        return request

    def application_delegate(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        """What Tornado's ``HTTPServer`` hands a request to."""
        return super().start_request(server_conn, request_conn)

    def add_sockets(self, sockets: Iterable[socket.socket]) -> None:
        for sock in sockets:
            self._sockets[sock.fileno()] = sock
            self._handlers[sock.fileno()] = accept_connections(sock, self._handle_connection)


def _leave_nodelay(value: bool) -> None:
    """``IOStream.set_nodelay`` of a stream that keeps ``TCP_NODELAY`` on."""


def accept_connections(
    sock: socket.socket, callback: Callable[[socket.socket, Any], None]
) -> Callable[[], None]:
    """Tornado's ``add_accept_handler``, pausing on ``EMFILE``; returns the remover."""
    io_loop = IOLoop.current()
    state = {"listening": True, "removed": False, "warned_at": -_WARN_EVERY}

    def accept(fd: Any, events: int) -> None:
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
        io_loop.remove_handler(sock)
        state["listening"] = False
        io_loop.call_later(ACCEPT_PAUSE, resume)

    def resume() -> None:
        if not state["removed"] and not state["listening"]:
            state["listening"] = True
            io_loop.add_handler(sock, accept, IOLoop.READ)

    def remove() -> None:
        if state["listening"]:
            io_loop.remove_handler(sock)
        state["removed"] = True

    io_loop.add_handler(sock, accept, IOLoop.READ)
    return remove
