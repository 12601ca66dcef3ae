"""HTTP/1.1 on one connection: requests read with httptools, checked, answered in order.

Every request of a front end, objects and pages alike, is read here: the one
parser (llhttp, through httptools, as uvicorn reads HTTP) and the one place
that decides whether bytes are a request.  ``Connection`` is the asyncio
protocol of one client connection; each request on it becomes an
``Exchange`` (the request, its answer, its access record), handed to a
``Delegate`` that the server's router picks once the headers are in: the
object path (``objects``) or Tornado's ``Application`` (``pages``).

A request is refused with a JSON ``400 bad_request`` (``envelope``), and the
connection closed after the answer (where a next request would start is
unknown), when:

* the request line is malformed: not ``method SP target SP version`` (llhttp,
  like nginx, lets several spaces stand for one), a method that is not one
  llhttp knows, in capitals (an unknown one is 400 here, as in nginx;
  Tornado answered 405), a target with spaces or control characters, a
  version other than HTTP/1.0 or HTTP/1.1 (HTTP/0.9's bare ``GET /`` and
  HTTP/2.0 included);
* a header line is malformed: a name that is not a token, whitespace
  before the colon, a control character in a value, a line folded with
  obs-fold, a bare CR, lines not ended by CRLF;
* the framing is ambiguous: both ``Content-Length`` and
  ``Transfer-Encoding``, several ``Content-Length`` headers, one that is
  not plain digits or overflows, a transfer coding other than a final
  ``chunked`` (RFC 9112 6.1, 6.3);
* a chunk of a chunked body is malformed (its size, its extension, its
  CRLF): the answer is the same JSON 400 when no answer has begun, as the
  rest of the request is unknown;
* the request line and headers exceed ``max_header_size`` bytes;
* an HTTP/1.1 request has no ``Host``, several, or one that is not
  ``uri-host [":" port]`` (RFC 9112 3.2, RFC 3986 3.2.2; a comma is refused
  as Tornado refuses it, as the mark of headers joined by a proxy); an
  HTTP/1.0 request may omit it, but one it sends is checked the same way;
* the request asks to switch protocols (``Upgrade``) and carries a body:
  llhttp would not read that body as HTTP (a request without one is
  answered as if ``Upgrade`` were absent, as Tornado and nginx do).

A body larger than the request's limit (``max_body_size`` unless the
delegate raises it, as uploads do) is answered ``413 too_large`` before it
is read when declared, else as soon as it is over.  ``Expect:
100-continue`` is answered ``100 Continue`` only once the delegate has read
the headers and wants the body, so a refused upload is never sent.

Keep-alive follows RFC 9112 9.3 (llhttp's ``should_keep_alive``): HTTP/1.1
unless ``Connection: close``, HTTP/1.0 only with ``Connection:
keep-alive``.  Pipelined requests are answered in order: a request whose
headers arrive while another is answered waits its turn, and reading
pauses meanwhile.  An answer that ends before its request's body was read
closes the connection after it (``Connection: close``).  A delegate that
returns an awaitable from ``headers_received`` or ``data_received`` holds
the body back until it resolves (flow control), and reading pauses while
more than ``BODY_BUFFER`` bytes wait.  Writes go through the transport's
buffer; ``Exchange.drain`` waits while it holds more than ``WRITE_HIGH``
bytes, so a slow reader slows the writer.

Timeouts are applied by one sweep of the server (``server``), not a timer
per request: a connection waiting for a request's headers for
``idle_timeout`` seconds (an idle keep-alive connection, or a slowloris) is
closed, and so is one whose request body takes over ``body_timeout``.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import httptools

from packrat.core.errors import BadRequest, PackratError, TooLarge
from packrat.frontend import envelope

log = logging.getLogger("packrat.frontend")

CLIENT_CLOSED = 499  # nginx's "client closed request", for the access record
BODY_BUFFER = 256 * 1024  # request body bytes held for a busy delegate before reading pauses
WRITE_HIGH = 256 * 1024  # response bytes buffered before a writer waits
LINE_OVERHEAD = 4  # ": " and CRLF of a header line, counted against max_header_size
# uri-host [ ":" port ] (RFC 3986 3.2.2): an IP literal, or a reg-name of
# unreserved, percent-encoded and sub-delims characters but the comma.
_HOST = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+;=]|%[0-9A-Fa-f]{2})*)(?::[0-9]*)?"
)
# Host values found well-formed, not matched again: clients name the server
# the same few ways (bounded, so made-up hosts cannot grow it).
_GOOD_HOSTS: set[str] = set()
MAX_GOOD_HOSTS = 256
# Header names as sent, each with its lower-case text: clients send the same few
# (one dictionary lookup a header instead of a decode and a lower; bounded as above).
_NAMES: dict[bytes, str] = {}
MAX_NAMES = 256
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_END = object()  # the end of a request body, in an exchange's inbox
# An answer's headers: (name, value) fields, or blocks of ready "Name: value\r\n" lines
# (what stays the same from one answer to the next, made once: ``envelope.common_lines``).
Fields = list[tuple[str, str] | str]


@dataclass(frozen=True)
class Limits:
    """A front end's limits on what one client may send or hold."""

    max_header_size: int  # bytes of request line and headers
    max_body_size: int  # bytes of body, unless the delegate raises it (uploads)
    idle_timeout: float  # seconds to wait for a request's headers
    body_timeout: float  # seconds to receive one request body


class Listener(Protocol):
    """What connections need of their server (``server.Server``)."""

    limits: Limits
    in_flight: int  # exchanges begun and not yet recorded

    def route(self, exchange: Exchange) -> Delegate: ...

    def record(self, exchange: Exchange, status: int) -> None: ...

    def connection_made(self, connection: Connection) -> None: ...

    def connection_lost(self, connection: Connection) -> None: ...


class Request:
    """One request's line and headers, as read.

    ``headers`` maps lower-case names to values (repeated headers joined by
    ``,``, as Tornado's ``HTTPHeaders`` does); ``fields`` keeps every header
    as sent (undecoded bytes), for Tornado's handlers.  ``path`` and ``query`` are the raw
    (still percent-encoded) parts of the target.
    """

    __slots__ = (
        "body_expected",
        "content_length",
        "fields",
        "headers",
        "keep_alive",
        "method",
        "path",
        "query",
        "started",
        "target",
        "version",
    )

    def __init__(
        self,
        method: str,
        target: str,
        version: str,
        fields: list[tuple[bytes, bytes]],
        headers: dict[str, str],
        keep_alive: bool,
    ) -> None:
        self.method = method
        self.target = target
        self.path, _, self.query = target.partition("?")
        self.version = version
        self.fields = fields
        self.headers = headers
        self.keep_alive = keep_alive
        self.started = time.monotonic()
        length = headers.get("content-length")
        self.content_length = int(length) if length is not None else None
        self.body_expected = bool(self.content_length) or "transfer-encoding" in headers


class Delegate:
    """What answers one request (Tornado's ``HTTPMessageDelegate``, without arguments).

    The exchange is given to the constructor.  ``headers_received`` runs once
    the request is this connection's turn; ``data_received`` gets each body
    chunk and ``finish`` the end of the body; any of them may return an
    awaitable, which holds the rest of the body back until it resolves.
    ``on_connection_close`` is called if the connection closes before the
    answer ended, and ``failed`` just before an error is answered for the
    request (a malformed body, a limit): what it holds (a staging file) goes
    before the client hears of the failure.
    """

    __slots__ = ()  # a delegate per request: its subclasses may keep no ``__dict__``

    def headers_received(self) -> Awaitable[None] | None:
        return None

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return None

    def finish(self) -> Awaitable[None] | None:
        return None

    def on_connection_close(self) -> None:
        pass

    def failed(self, error: PackratError) -> None:
        pass


class Exchange:
    """One request and its answer: written here, recorded once however it ends.

    The delegate answers with ``respond`` (a whole answer in one write) or
    ``start`` then ``write`` and ``end``.  ``route``, ``failure`` and
    ``sent``/``received`` feed the access record, written by ``done``.
    """

    __slots__ = (
        "_begun",
        "_blocked",
        "_chunked",
        "_delivered",
        "_inbox",
        "_inbox_bytes",
        "connection",
        "delegate",
        "error_answer",
        "failure",
        "head_sent",
        "logged",
        "max_body_size",
        "received",
        "request",
        "request_complete",
        "response_complete",
        "route",
        "sent",
        "status",
    )

    def __init__(self, connection: Connection, request: Request) -> None:
        self.connection = connection
        self.request = request
        self.delegate: Delegate | None = None
        # How errors are answered: the JSON envelope, unless a build tool's route
        # asks for its tool's shape (Nx's text/plain, turbo's error object).
        self.error_answer = envelope.error_answer
        self.route = "other"
        self.failure: BaseException | None = None
        self.status = 0
        self.sent = 0  # response body bytes
        self.received = 0  # request body bytes
        self.head_sent = False
        self.request_complete = not request.body_expected
        self.response_complete = False
        self.logged = False
        self.max_body_size = connection.server.limits.max_body_size
        self._chunked = False
        self._delivered = 0  # body bytes handed to the delegate
        self._begun = False
        self._blocked = False
        self._inbox: collections.deque[Any] | None = None
        self._inbox_bytes = 0

    # -- the request side, driven by the connection

    def begin(self) -> None:
        """This request's turn: route it, then hand it what arrived meanwhile."""
        server = self.connection.server
        server.in_flight += 1
        self._begun = True
        try:
            self.delegate = server.route(self)
            waiting = self.delegate.headers_received()
            if waiting is not None:
                self._wait_for(waiting)
        except PackratError as error:
            self.fail(error)
            return
        except Exception:
            log.exception("answering %s %r failed", self.request.method, self.request.path)
            self.fail(PackratError("the server failed to handle the request"))
            return
        if not self.response_complete:  # most reads are answered already: no call
            self._pump()

    def body_chunk(self, data: bytes) -> None:
        self.received += len(data)
        self._deliver(data)

    def body_end(self) -> None:
        self.request_complete = True
        self._deliver(_END)

    def set_max_body_size(self, size: int) -> None:
        """Raise (or lower) this request's body limit; checked against a declared length."""
        self.max_body_size = size
        declared = self.request.content_length
        if declared is not None and declared > size and not self.response_complete:
            raise TooLarge(f"the request body is larger than {size} bytes")

    def _deliver(self, item: Any) -> None:
        if self.response_complete and self.head_sent:
            return  # answered already: the rest of the body is not wanted
        if self._blocked or self._inbox or self.delegate is None:
            if self._inbox is None:
                self._inbox = collections.deque()
            self._inbox.append(item)
            if item is not _END:
                self._inbox_bytes += len(item)
                if self._inbox_bytes > BODY_BUFFER:
                    self.connection.pause_reading()
            return
        self._hand(item)

    def _hand(self, item: Any) -> None:
        delegate = self.delegate
        assert delegate is not None
        try:
            if item is _END:
                self._call(delegate.finish)
            else:
                # Checked as the delegate gets it: it may have raised the limit meanwhile.
                self._delivered += len(item)
                if self._delivered > self.max_body_size:
                    raise TooLarge(f"the request body is larger than {self.max_body_size} bytes")
                self._call(delegate.data_received, item)
        except PackratError as error:
            self.fail(error)
        except Exception:
            log.exception("answering %s %r failed", self.request.method, self.request.path)
            self.fail(PackratError("the server failed to handle the request"))

    def _call(self, method: Callable[..., Awaitable[None] | None], *args: Any) -> None:
        waiting = method(*args)
        if waiting is not None:
            self._wait_for(waiting)

    def _wait_for(self, waiting: Awaitable[None]) -> None:
        """Hold the rest of the body back until the delegate's ``waiting`` resolves."""
        self._blocked = True
        future = asyncio.ensure_future(waiting)
        future.add_done_callback(self._unblock)

    def _unblock(self, future: asyncio.Future[None]) -> None:
        self._blocked = False
        if future.cancelled():
            return
        error = future.exception()
        if isinstance(error, PackratError):
            self.fail(error)
            return
        if error is not None:
            log.error(
                "answering %s %r failed",
                self.request.method,
                self.request.path,
                exc_info=(type(error), error, error.__traceback__),
            )
            self.fail(PackratError("the server failed to handle the request"))
            return
        self._pump()

    def _pump(self) -> None:
        """Hand over what waited while the delegate was busy."""
        if self.response_complete:
            return
        inbox = self._inbox
        if not inbox:
            self._expect_body()
            return
        while inbox and not self._blocked and not self.response_complete:
            item = inbox.popleft()
            if item is not _END:
                self._inbox_bytes -= len(item)
            self._hand(item)
        if self._inbox_bytes <= BODY_BUFFER:
            self.connection.resume_reading()
        if not inbox:
            self._expect_body()

    def _expect_body(self) -> None:
        """The delegate is ready for the body: refuse a declared length over the limit,
        or say ``100 Continue`` if the client waits for it."""
        request = self.request
        if self.request_complete or self.head_sent or self._blocked:
            return
        declared = request.content_length
        if declared is not None and declared > self.max_body_size:
            self.fail(TooLarge(f"the request body is larger than {self.max_body_size} bytes"))
            return
        if self.received == 0 and request.headers.get("expect", "").lower() == "100-continue":
            request.headers["expect"] = ""  # once
            self.connection.write(_CONTINUE)

    # -- the response side, used by delegates

    def respond(self, status: int, fields: Fields, body: bytes | memoryview) -> None:
        """Write a whole answer (headers and body in one write) and end it.

        ``Content-Length`` must be among ``fields``; the body is left out
        for ``HEAD`` and ``304``.
        """
        self._write_whole(self._head(status, fields), status, body)

    def respond_block(
        self, status: int, block: tuple[bytes, bytes], body: bytes | memoryview
    ) -> None:
        """``respond``, with the status line and headers encoded already but for
        ``Date``, which goes between the two parts of ``block`` (``head_blocks``):
        the object path's usual answers, made once per answer, not per request."""
        before, after = block
        self._write_whole(
            self._head_end(status, before + envelope.date_line() + after), status, body
        )

    def _write_whole(self, head: bytes, status: int, body: bytes | memoryview) -> None:
        if self.request.method == "HEAD" or status == 304 or not body:
            self.connection.write(head)
        else:
            self.connection.write(head + body)
            self.sent = len(body)
        self.end()

    def start(
        self,
        status: int,
        fields: Fields,
        chunked: bool = False,
        body: bytes | memoryview = b"",
    ) -> None:
        """Write the status line and headers, and the first ``body`` bytes with them;
        ``chunked``: the body goes in chunks (HTTP/1.1, length unknown)."""
        self._chunked = chunked
        if chunked:
            fields = [*fields, ("Transfer-Encoding", "chunked")]
        head = self._head(status, fields)
        if body:
            self.sent += len(body)
            if chunked:
                head += b"%x\r\n" % len(body) + body + b"\r\n"
            else:
                head += body
        self.connection.write(head)

    def write(self, data: bytes | memoryview) -> None:
        """Write body bytes (after ``start``); ``drain`` to wait for a slow reader."""
        if not data:
            return
        self.sent += len(data)
        if self._chunked:
            self.connection.write(b"%x\r\n" % len(data) + bytes(data) + b"\r\n")
        else:
            self.connection.write(data)

    def wrote_around(self, count: int) -> None:
        """Count body bytes the delegate wrote to the socket itself (``sendfile``)."""
        self.sent += count

    async def drain(self) -> None:
        """Wait until the transport's buffer is below ``WRITE_HIGH`` (``StreamClosedError``-free:
        a closed connection raises ``ConnectionResetError``)."""
        await self.connection.drain()

    async def flushed(self) -> None:
        """Wait until everything written has left the transport's buffer (before ``sendfile``)."""
        await self.connection.flushed()

    def end(self) -> None:
        """The answer is complete: record it, then read the next request (or close)."""
        if self.response_complete:
            return
        if self._chunked:
            self.connection.write(b"0\r\n\r\n")
        self.response_complete = True
        self.done(self.status)
        self.connection.exchange_ended(self)

    def fail(self, error: PackratError) -> None:
        """Answer ``error`` as JSON, or cut the connection if an answer has begun."""
        if self.response_complete:
            return
        self.failure = error
        if self.delegate is not None:
            try:
                self.delegate.failed(error)
            except Exception:
                log.exception("cleaning up after %s failed", self.request.path)
        if self.head_sent:
            self.connection.close()
            return
        status, fields, body = self.error_answer(error)
        self.respond(status, fields, body)

    def close(self) -> None:
        """Cut the connection (a transfer that cannot finish)."""
        self.connection.close()

    @property
    def closed(self) -> bool:
        return self.connection.closed

    def _head(self, status: int, fields: Fields) -> bytes:
        return self._head_end(status, head_block(status, fields))

    def _head_end(self, status: int, block: bytes) -> bytes:
        """The status line and headers, with the connection headers of RFC 9112 9.6.

        The connection is kept only if the request was read whole (an
        answer given before its body was read ends the connection).  Values
        are written as given: the object path builds only safe ones and the
        Tornado adapter checks its handlers' as ``HTTP1Connection`` does.
        """
        self.status = status
        self.head_sent = True
        request = self.request
        keep = request.keep_alive and self.request_complete and not self.connection.draining
        request.keep_alive = keep
        if request.version == "HTTP/1.1":
            return block + (b"\r\n" if keep else b"Connection: close\r\n\r\n")
        return block + (b"Connection: keep-alive\r\n\r\n" if keep else b"\r\n")

    def done(self, status: int) -> None:
        """Record the exchange (access line and counts), once; it leaves the in-flight count."""
        if self.logged:
            return
        self.logged = True
        server = self.connection.server
        if self._begun:
            server.in_flight -= 1
        server.record(self, status)


REASONS = {
    100: "Continue",
    200: "OK",
    201: "Created",
    204: "No Content",
    206: "Partial Content",
    207: "Multi-Status",
    301: "Moved Permanently",
    302: "Found",
    304: "Not Modified",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    416: "Range Not Satisfiable",
    500: "Internal Server Error",
    503: "Service Unavailable",
    507: "Insufficient Storage",
}


STATUS_LINES = {status: f"HTTP/1.1 {status} {reason}\r\n" for status, reason in REASONS.items()}


def head_block(status: int, fields: Fields) -> bytes:
    """An answer's status line and header lines, encoded; the blank line that ends
    them and the connection's headers are added per exchange (``Exchange._head_end``)."""
    lines = [STATUS_LINES.get(status) or f"HTTP/1.1 {status} Unknown\r\n"]
    for field in fields:
        lines.append(field if type(field) is str else f"{field[0]}: {field[1]}\r\n")
    return "".join(lines).encode("latin-1")


def head_blocks(status: int, lines: str, json_body: bool = False) -> tuple[bytes, bytes]:
    """The status line and headers of an answer with the common headers
    (``envelope.common_fields``) and ``lines``, encoded before and after its
    ``Date`` line, for ``Exchange.respond_block`` (made once, kept by the caller)."""
    before, after = envelope.common_around_date(json_body)
    return head_block(status, [before]), (after + lines).encode("latin-1")


class _Refused(Exception):
    """Raised from a parser callback to stop parsing after a refusal was answered."""


class Connection(asyncio.Protocol):
    """One client connection: bytes in through httptools, exchanges answered in order."""

    def __init__(self, server: Listener) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.remote = "-"
        self.tls = False
        self.current: Exchange | None = None  # being answered
        self.reading: Exchange | None = None  # whose request is being read
        self.waiting: collections.deque[Exchange] = collections.deque()  # pipelined
        self.closed = False
        self.draining = False
        self._broken = False  # a request was refused: read nothing more
        self._eof = False
        self.waiting_since: float | None = time.monotonic()  # for the header timeout
        self.body_started: float | None = None  # for the body timeout
        self._url = b""
        self._fields: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._in_head = False
        self._read_paused = False
        self._write_paused = False
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._flush_waiters: list[asyncio.Future[None]] = []

    # -- asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.transport.set_write_buffer_limits(WRITE_HIGH)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.remote = peer[0]
        self.tls = transport.get_extra_info("sslcontext") is not None
        self.server.connection_made(self)

    def data_received(self, data: bytes) -> None:
        if self.closed or self._broken:
            return
        in_head = self._in_head
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self._upgrade_requested(data, upgrade.args[0])
            return
        except httptools.HttpParserCallbackError as e:
            if isinstance(e.__context__, _Refused):
                return
            raise
        except httptools.HttpParserError as e:
            self._refuse(f"the request is malformed: {_reason(e)}")
            return
        if self._in_head:  # still reading a request's headers: bound them now
            self._head_bytes += len(data) if in_head else 0
            if self._head_bytes > self.server.limits.max_header_size:
                self._refuse(self._head_too_large())

    def eof_received(self) -> bool | None:
        """The client sent all it will: answer what it asked for whole, then close."""
        self._eof = True
        current = self.current
        if current is None or not current.request_complete:
            return None  # nothing to answer, or a body that will never end: close
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        for waiter in self._drain_waiters + self._flush_waiters:
            if not waiter.done():
                waiter.set_exception(ConnectionResetError("the client closed the connection"))
        self._drain_waiters.clear()
        self._flush_waiters.clear()
        for exchange in [self.current, *self.waiting]:
            if exchange is None or exchange.response_complete:
                continue
            if exchange.delegate is not None:
                try:
                    exchange.delegate.on_connection_close()
                except Exception:
                    log.exception("on_connection_close failed")
            exchange.done(CLIENT_CLOSED)
        self.current = None
        self.waiting.clear()
        self.server.connection_lost(self)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        waiters, self._drain_waiters = self._drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        transport = self.transport
        if not self._flush_waiters or transport is None:
            return
        if transport.get_write_buffer_size() == 0:
            transport.set_write_buffer_limits(WRITE_HIGH)
            flushed, self._flush_waiters = self._flush_waiters, []
            for waiter in flushed:
                if not waiter.done():
                    waiter.set_result(None)

    # -- httptools callbacks

    def on_message_begin(self) -> None:
        self._url = b""
        self._fields = []
        self._head_bytes = 0
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._fields.append((name, value))

    def on_headers_complete(self) -> None:
        self._in_head = False
        self.waiting_since = None
        parser = self.parser
        method = parser.get_method().decode("ascii")
        version = "HTTP/" + parser.get_http_version()
        target = self._url.decode("latin-1")
        fields = self._fields
        headers: dict[str, str] = {}
        size = len(self._url) + len(method) + 12
        hosts = 0  # Host headers after the first
        names = _NAMES
        for name, raw in fields:
            size += len(name) + len(raw) + LINE_OVERHEAD
            lower = names.get(name)
            if lower is None:
                lower = _lower_name(name)
            value = raw.decode("latin-1")
            if lower in headers:
                headers[lower] += "," + value
                if lower == "host":
                    hosts += 1
            else:
                headers[lower] = value
        if "host" in headers:
            hosts += 1
        request = Request(method, target, version, fields, headers, parser.should_keep_alive())
        if request.body_expected:
            self.body_started = request.started
        exchange = Exchange(self, request)
        self.reading = exchange
        problem = None
        if size > self.server.limits.max_header_size:
            problem = self._head_too_large()
        elif version != "HTTP/1.1" and version != "HTTP/1.0":
            problem = f"{version} is not served here: HTTP/1.1 or HTTP/1.0"
        elif (version == "HTTP/1.1" or hosts) and (
            hosts != 1 or headers["host"] not in _GOOD_HOSTS
        ):
            problem = host_problem(headers.get("host"), hosts)
        if problem is None and parser.should_upgrade() and request.body_expected:
            problem = "a request that asks to switch protocols (Upgrade) cannot carry a body here"
        if problem is not None:
            self._refuse(problem, exchange)
            raise _Refused
        if self.current is None:
            self.current = exchange
            exchange.begin()
        else:
            self.waiting.append(exchange)
            self.pause_reading()

    def on_body(self, body: bytes) -> None:
        exchange = self.reading
        if exchange is not None:
            exchange.body_chunk(body)

    def on_message_complete(self) -> None:
        self.body_started = None
        exchange = self.reading
        self.reading = None
        if exchange is None:
            return
        if exchange.response_complete and exchange.head_sent:  # answered: nothing to hand
            exchange.request_complete = True
        else:
            exchange.body_end()

    # -- refusing what is not a request

    def _head_too_large(self) -> str:
        limit = self.server.limits.max_header_size
        return f"the request line and headers are larger than {limit} bytes"

    def _refuse(self, problem: str, exchange: Exchange | None = None) -> None:
        """Answer what cannot be read as a request with the JSON 400, then close.

        Parsing stops here.  If another answer is under way on the
        connection, it is finished first and the refused request only
        recorded (its answer could not be given in order).
        """
        if self.closed:
            return
        self._broken = True
        if exchange is None:
            exchange = self.reading
        if exchange is None or exchange.response_complete:
            exchange = Exchange(self, self._unread_request())
        error = BadRequest(problem)
        for queued in self.waiting:
            if queued is not exchange:
                queued.done(CLIENT_CLOSED)
        self.waiting.clear()
        if exchange.head_sent or (self.current is not None and self.current is not exchange):
            exchange.failure = error
            if exchange.delegate is not None:
                exchange.delegate.failed(error)
            exchange.done(error.status)
            if self.current is exchange or self.current is None:
                self.close()
            else:
                self.current.request.keep_alive = False
            return
        self.current = exchange
        exchange.request.keep_alive = False
        exchange.fail(error)

    def _unread_request(self) -> Request:
        """What was read of a request whose line or headers could not be read, for its record."""
        try:
            method = self.parser.get_method().decode("ascii", "replace")
        except httptools.HttpParserError:
            method = "-"
        headers = {}
        for name, value in self._fields:
            headers[name.decode("latin-1").lower()] = value.decode("latin-1")
        target = self._url.decode("latin-1") if self._url else "-"
        return Request(method or "-", target, "HTTP/1.1", [], headers, False)

    def _upgrade_requested(self, data: bytes, offset: int) -> None:
        """llhttp stops at a request that asks to switch protocols; we never switch:
        the request (which has no body, else it was refused) was answered as any
        other, and the bytes after it are the next requests."""
        if offset < len(data):
            self.data_received(data[offset:])

    # -- the order of exchanges

    def exchange_ended(self, exchange: Exchange) -> None:
        """``exchange``'s answer is written: the next one's turn, or close."""
        if exchange is not self.current:
            return
        self.current = None
        if not exchange.request.keep_alive or self.draining or self._broken:
            self.close()
            return
        if self._eof and not self.waiting:
            self.close()
            return
        if self.waiting:
            self.current = self.waiting.popleft()
            if not self.waiting:
                self.resume_reading()
            self.current.begin()
        else:
            self.waiting_since = time.monotonic()
            if self._read_paused:
                self.resume_reading()

    # -- reading and writing

    def pause_reading(self) -> None:
        if not self._read_paused and self.transport is not None and not self.closed:
            self._read_paused = True
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self._read_paused and self.transport is not None and not self.closed:
            self._read_paused = False
            self.transport.resume_reading()

    def write(self, data: bytes | memoryview) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)

    async def drain(self) -> None:
        if self.closed:
            raise ConnectionResetError("the client closed the connection")
        if not self._write_paused:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._drain_waiters.append(waiter)
        await waiter

    async def flushed(self) -> None:
        """Wait until the transport's buffer is empty (``resume_writing`` at 0 bytes)."""
        transport = self.transport
        if self.closed or transport is None:
            raise ConnectionResetError("the client closed the connection")
        if transport.get_write_buffer_size() == 0:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._flush_waiters.append(waiter)
        transport.set_write_buffer_limits(0)  # pauses now, resumes when empty
        await waiter

    def close(self) -> None:
        """Close once what was written has been sent."""
        if self.transport is not None and not self.transport.is_closing():
            self.transport.close()

    def abort(self) -> None:
        """Close at once, dropping what was not sent (a client past a timeout)."""
        if self.transport is not None:
            self.transport.abort()

    def drain_and_close(self) -> None:
        """The server is stopping: close now if idle, else after the current answer."""
        self.draining = True
        if self.current is None:
            self.close()


def host_problem(host: str | None, count: int) -> str | None:
    """Why a request's ``Host`` is refused, or None.

    >>> host_problem("cache.example:5050", 1) is None, host_problem("[::1]:80", 1) is None
    (True, True)
    >>> host_problem(None, 0), host_problem("a", 2)
    ('the request has no Host header', 'the request has 2 Host headers')
    >>> host_problem("a/b@c", 1)
    "the Host header is not a host name and port: 'a/b@c'"
    """
    if count == 0 or host is None:
        return "the request has no Host header"
    if count > 1:
        return f"the request has {count} Host headers"
    if host in _GOOD_HOSTS:
        return None
    if not _HOST.fullmatch(host):
        return f"the Host header is not a host name and port: {host!r}"
    if len(_GOOD_HOSTS) < MAX_GOOD_HOSTS:
        _GOOD_HOSTS.add(host)
    return None


def _lower_name(name: bytes) -> str:
    """A header name's lower-case text, remembered (see ``_NAMES``)."""
    lower = name.decode("latin-1").lower()
    if len(_NAMES) < MAX_NAMES:
        _NAMES[name] = lower
    return lower


def _reason(error: Exception) -> str:
    """llhttp's reason, e.g. "Invalid header value char"."""
    text = str(error).strip()
    return text[0].lower() + text[1:] if text else type(error).__name__
