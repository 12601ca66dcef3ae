"""What every hot request shares: counted in flight, answered in one ``send``, logged once."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from tornado import httputil
from tornado.http1connection import HTTP1Connection

from packrat.core.errors import PackratError
from packrat.frontend.accesslog import CLIENT_CLOSED, describe
from packrat.frontend.base import BaseHandler

if TYPE_CHECKING:
    from packrat.frontend.hot.routes import HotRoutes


class HotRequest(httputil.HTTPMessageDelegate):
    """One request on a hot route: counted in flight, one access line however it ends."""

    route = "other"
    received = 0  # request body bytes
    failure: PackratError | None = None  # the error answered, for the access line

    def __init__(
        self,
        routes: HotRoutes,
        connection: HTTP1Connection,
        start_line: httputil.RequestStartLine,
        headers: httputil.HTTPHeaders,
        path: str,
    ) -> None:
        self.routes = routes
        self.connection = connection
        self.method = start_line.method
        self.version = start_line.version
        connection_header = headers.get("Connection")
        self.connection_header = connection_header and connection_header.lower()
        self.path = path
        self.user_agent = headers.get("User-Agent", "")
        self.started = time.monotonic()
        self.status = 0
        self.sent = 0
        self.logged = False
        BaseHandler.in_flight += 1

    def headers_received(self, start_line: Any, headers: httputil.HTTPHeaders) -> None:
        pass  # taken with them

    def on_connection_close(self) -> None:
        self.done(CLIENT_CLOSED)

    def respond(self, status: int, fields: list[tuple[str, str]], body: bytes | memoryview) -> None:
        """Write a whole answer, headers and body in one ``send``, and end it.

        The header block is built here rather than by ``write_headers``
        (``HTTP1Connection`` takes a pre-encoded one through ``write``): a
        tenth of a small read's time.  So the connection headers that
        ``write_headers`` would add are added here, by the same rule
        (``HTTP1Connection._can_keep_alive``), and every value is known to be
        printable ASCII (``ObjectRead`` takes no object whose stored content
        type is not).
        """
        self.status = status
        lines = [f"HTTP/1.1 {status} {httputil.responses.get(status, 'Unknown')}"]
        lines += [f"{name}: {value}" for name, value in fields]
        if self.version == "HTTP/1.1":
            if self.connection_header == "close":
                lines.append("Connection: close")
        elif self.connection_header == "keep-alive":
            lines.append("Connection: Keep-Alive")
        lines.append("\r\n")
        self.connection.write("\r\n".join(lines).encode("ascii") + body)
        self.connection.finish()
        self.sent = len(body)
        self.done(status)

    def done(self, status: int) -> None:
        """Log and count the request, once; release what it holds."""
        if self.logged:
            return
        self.logged = True
        BaseHandler.in_flight -= 1
        self.release()
        context = getattr(self.connection, "context", None)
        self.routes.request_log.record(
            self.route,
            getattr(context, "remote_ip", None) or "-",
            self.method,
            self.path,
            self.user_agent,
            status,
            self.sent,
            self.received,
            time.monotonic() - self.started,
            *describe(self.failure, status),
        )

    def release(self) -> None:
        pass
