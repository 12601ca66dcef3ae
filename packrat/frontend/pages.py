"""Tornado's ``Application`` behind the one parser: the adapter that serves what is not an object.

The status page and its form, static files, the OpenAPI document, health,
metrics, stats and WebDAV collections stay Tornado ``RequestHandler``\\ s.
They are reached through ``TornadoDelegate``, which gives Tornado's routing
delegate the request as ``HTTP1Connection`` would (a ``RequestStartLine`` and
``HTTPHeaders``, the body chunk by chunk, awaiting what it returns), and
``TornadoConnection``, which implements Tornado's ``HTTPConnection`` over the
exchange: ``write_headers``, ``write`` and ``finish`` with Tornado's rules
(chunked output for an HTTP/1.1 answer of unknown length, no body for
``HEAD`` or ``304``, no more and no fewer bytes than ``Content-Length``, no
CR or LF in a header).  Everything else about the connection (framing,
limits, keep-alive, timeouts, ``100 Continue``, the access record) is
``http1``'s, as for objects.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from typing import Any

from tornado import httputil
from tornado.concurrent import Future
from tornado.web import Application

from packrat.core.errors import BadRequest
from packrat.frontend.http1 import Delegate, Exchange

_CR_OR_LF = re.compile(r"[\r\n]")


class _Context:
    """What Tornado's ``HTTPServerRequest`` reads from ``connection.context``."""

    __slots__ = ("address", "protocol", "remote_ip")

    def __init__(self, remote_ip: str, protocol: str) -> None:
        self.remote_ip = remote_ip
        self.protocol = protocol
        self.address = (remote_ip, 0)

    def __str__(self) -> str:
        return self.remote_ip


class TornadoConnection(httputil.HTTPConnection):
    """Tornado's ``HTTPConnection`` over one ``Exchange``."""

    def __init__(self, exchange: Exchange) -> None:
        self.exchange = exchange
        connection = exchange.connection
        self.context = _Context(connection.remote, "https" if connection.tls else "http")
        self._close_callback: Any = None
        self._remaining: int | None = None  # body bytes Content-Length still promises
        self._head_only = False

    def set_close_callback(self, callback: Any) -> None:
        self._close_callback = callback

    def set_max_body_size(self, max_body_size: int) -> None:
        self.exchange.set_max_body_size(max_body_size)

    def set_body_timeout(self, timeout: float) -> None:
        pass  # the server's sweep bounds every body by [frontend] body_timeout

    def close(self) -> None:
        """Cut the connection (``HTTP1Connection.close``: a stalled upload of the form)."""
        self.exchange.close()

    def detach(self) -> Any:
        raise NotImplementedError("a Packrat connection cannot be detached")

    def write_headers(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
        chunk: bytes | None = None,
    ) -> Future[None]:
        assert isinstance(start_line, httputil.ResponseStartLine)
        request = self.exchange.request
        code = start_line.code
        self._head_only = request.method == "HEAD" or code == 304
        chunked = (
            request.version == "HTTP/1.1"
            and not self._head_only
            and code not in (204, 304)
            and not 100 <= code < 200
            and "Content-Length" not in headers
            and "Transfer-Encoding" not in headers
        )
        if self._head_only:
            self._remaining = 0
        elif "Content-Length" in headers:
            self._remaining = int(headers["Content-Length"])
        fields = []
        for name, value in headers.get_all():
            if name.lower() == "connection":
                continue  # the connection's own, from http1
            if _CR_OR_LF.search(name) or _CR_OR_LF.search(str(value)):
                raise ValueError(f"Illegal characters (CR or LF) in header: {name!r}")
            fields.append((name, str(value)))
        if chunk and not self._head_only:
            self._count(chunk)
            self.exchange.start(code, fields, chunked, chunk)
        else:
            self.exchange.start(code, fields, chunked)
        return self._when_drained()

    def write(self, chunk: bytes) -> Future[None]:
        if not self._head_only:
            self._count(chunk)
            self.exchange.write(chunk)
        return self._when_drained()

    def _count(self, chunk: bytes) -> None:
        if self._remaining is not None:
            self._remaining -= len(chunk)
            if self._remaining < 0:
                self.exchange.close()
                raise httputil.HTTPOutputError("Tried to write more data than Content-Length")

    def finish(self) -> None:
        if self._remaining and not self.exchange.closed:
            remaining = self._remaining
            self.exchange.close()
            raise httputil.HTTPOutputError(
                f"Tried to write {remaining} bytes less than Content-Length"
            )
        # After Tornado's log_function has named the route (RequestHandler.finish
        # calls it right after this), so the access record has it.
        asyncio.get_running_loop().call_soon(self.exchange.end)

    def _when_drained(self) -> Future[None]:
        future: Future[None] = Future()
        if self.exchange.closed:
            future.set_result(None)
            return future
        task = asyncio.ensure_future(self.exchange.drain())

        def done(task: asyncio.Task[None]) -> None:
            if not future.done():
                future.set_result(None)
            if not task.cancelled():
                task.exception()  # a closed connection: Tornado hears of it from close_callback

        task.add_done_callback(done)
        return future

    def closed_by_client(self) -> None:
        callback, self._close_callback = self._close_callback, None
        if callback is not None:
            callback()


class TornadoDelegate(Delegate):
    """One request answered by the ``Application``."""

    def __init__(self, application: Application, exchange: Exchange) -> None:
        self.exchange = exchange
        self.connection = TornadoConnection(exchange)
        self.delegate = application.start_request(None, self.connection)

    def headers_received(self) -> Awaitable[None] | None:
        request = self.exchange.request
        headers = httputil.HTTPHeaders()
        for name, value in request.fields:
            headers.add(name.decode("latin-1"), value.decode("latin-1"))
        start_line = httputil.RequestStartLine(request.method, request.target, request.version)
        try:
            return self.delegate.headers_received(start_line, headers)
        except httputil.HTTPInputError as e:
            raise BadRequest(f"the request is malformed: {e}") from None

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return self.delegate.data_received(chunk)

    def finish(self) -> None:
        self.delegate.finish()

    def on_connection_close(self) -> None:
        self.connection.closed_by_client()
        if not self.exchange.request_complete:
            self.delegate.on_connection_close()

    def failed(self, error: BaseException) -> None:
        self.on_connection_close()  # a handler receiving an upload removes its staging file
