"""The hot routes without ``RequestHandler``: ``GET``/``HEAD /<key>`` of a stored object,
``GET /exists/<key>``, and ``PUT``/``POST /<key>`` uploads.

Most requests a cache sees are reads that need nothing but the disk, and
Tornado's ``RequestHandler`` life cycle (routing, the handler object and its
header dictionary, ``prepare``, the coroutine that runs it, ``finish``) cost
more than the read itself: half of a small ``GET``'s time in the profile of
docs/benchmarks.md.  Here the server's message delegate answers them
directly, with the same headers, bytes, checks, access line and counts as the
handlers (``downloads`` builds and sends both).

It takes only what it can answer at once: a ``GET`` or ``HEAD`` without a
body, of a valid key, when reads need no credentials, and, for an object, only
when it opens cleanly and the answer is a 200, 206 or 304.  Everything else
(an absent or corrupt object, an unsatisfiable range, credentials to check)
goes to the application as if this module did not exist, and
``ObjectHandler`` or ``ExistsHandler`` answers it, errors included.  An
upload of a valid key is taken when writes need no credentials, and answered
here whatever happens (``uploads.BodyReceiver`` does the work, as for
``ObjectHandler``; its errors get the JSON shape of ``BaseHandler``).
``tests/test_hot.py`` holds both paths to the same answers.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import re
import time
from typing import Any
from urllib.parse import unquote_to_bytes

import tornado
from tornado import httputil
from tornado.escape import parse_qs_bytes
from tornado.http1connection import HTTP1Connection
from tornado.iostream import StreamClosedError

from packrat.errors import PackratError
from packrat.frontend.access import CLIENT_CLOSED, RequestLog, describe
from packrat.frontend.base import BaseHandler
from packrat.frontend.context import Frontend
from packrat.frontend.downloads import Answer, open_object, plan, send_body, small_body
from packrat.frontend.uploads import BodyReceiver
from packrat.keys import validate_key
from packrat.store import CorruptObject, ObjectMeta

log = logging.getLogger("packrat.frontend")

SERVER = f"TornadoServer/{tornado.version}"  # what RequestHandler answers
JSON_TYPE = "application/json; charset=UTF-8"
EXISTS_BODY = {present: json.dumps({"present": present}).encode() for present in (True, False)}
# RequestHandler's own ETag of a GET's body (RequestHandler.compute_etag)
EXISTS_ETAG = {
    present: f'"{hashlib.sha1(body).hexdigest()}"' for present, body in EXISTS_BODY.items()
}
REASONS = {200: "OK", 206: "Partial Content", 304: "Not Modified"}
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")  # what RequestHandler replaces in arguments


class HotRoutes:
    """One front end's hot routes: ``take`` a request, or leave it to the application."""

    def __init__(self, frontend: Frontend, request_log: RequestLog) -> None:
        self.frontend = frontend
        self.request_log = request_log
        self.tasks: set[asyncio.Task[None]] = set()  # bodies being sent
        self._date = ""
        self._date_second = -1

    def take(
        self,
        connection: HTTP1Connection,
        start_line: httputil.RequestStartLine,
        headers: httputil.HTTPHeaders,
    ) -> httputil.HTTPMessageDelegate | None:
        """The delegate that answers this request, or None: the application's turn."""
        method = start_line.method
        if method == "PUT" or method == "POST":
            return self._upload(connection, start_line, headers)
        if method != "GET" and method != "HEAD":
            return None
        if not self.frontend.auth.public_reads:
            return None
        if "Transfer-Encoding" in headers or headers.get("Content-Length", "0") != "0":
            return None
        path = start_line.path.partition("?")[0]
        if path.startswith("/exists/"):
            key = _key(path[len("/exists/") :])
            if key is None or method != "GET" or "If-None-Match" in headers:
                return None  # (a 304 of an exists answer: the handler's)
            return self._exists(connection, start_line, headers, path, key)
        key = _key(path[1:]) if path.startswith("/") else None
        if key is None:
            return None
        return self._read(connection, start_line, headers, path, key)

    def _read(
        self,
        connection: HTTP1Connection,
        start_line: httputil.RequestStartLine,
        headers: httputil.HTTPHeaders,
        path: str,
        key: str,
    ) -> httputil.HTTPMessageDelegate | None:
        frontend = self.frontend
        try:
            opened = open_object(frontend, key)
        except (OSError, CorruptObject):
            return None  # the handler answers: 503 when out of descriptors, or drops it
        if opened is None:
            return None  # a miss: counted and answered 404 by the handler
        fd, meta, inode, data = opened
        if not _PRINTABLE.fullmatch(meta.content_type):
            os.close(fd)
            return None  # a trailer Packrat did not write: Tornado's checks apply
        try:
            answer = plan(frontend, headers, meta, start_line.method == "GET")
        except PackratError:  # 416
            os.close(fd)
            return None
        body: bytes | memoryview | None = b""
        if answer.body:
            body = None if data is None else small_body(data, meta, answer)
            if data is not None and body is None:
                os.close(fd)
                return None  # corrupt: the handler finds it again, cuts and drops it
        frontend.coordinator.touch(key)
        frontend.metrics.hits.inc()
        return ObjectRead(
            self, connection, start_line, headers, path, fd, meta, inode, answer, body
        )

    def _upload(
        self,
        connection: HTTP1Connection,
        start_line: httputil.RequestStartLine,
        headers: httputil.HTTPHeaders,
    ) -> httputil.HTTPMessageDelegate | None:
        if self.frontend.auth.enabled:
            return None  # writes need credentials: the handler checks them
        path, _, query = start_line.path.partition("?")
        key = _key(path[1:]) if path.startswith("/") else None
        if key is None or path.startswith("/exists/"):
            return None
        filename = None
        if query:
            try:
                filename = _query_argument(query, "filename")
            except UnicodeDecodeError:
                return None  # the handler answers 400
        return UploadRequest(self, connection, start_line, headers, path, key, filename)

    def _exists(
        self,
        connection: HTTP1Connection,
        start_line: httputil.RequestStartLine,
        headers: httputil.HTTPHeaders,
        path: str,
        key: str,
    ) -> httputil.HTTPMessageDelegate | None:
        try:
            opened = open_object(self.frontend, key)
        except (OSError, CorruptObject):
            return None
        if opened is not None:
            os.close(opened[0])
        return ExistsRead(self, connection, start_line, headers, path, opened is not None)

    def common_fields(self, json_body: bool) -> list[tuple[str, str]]:
        """The headers every answer carries, as ``RequestHandler`` and ``BaseHandler`` set them."""
        now = int(time.time())
        if now != self._date_second:
            self._date_second = now
            self._date = httputil.format_timestamp(now)
        fields = [("Server", SERVER), ("Date", self._date), ("X-Content-Type-Options", "nosniff")]
        if json_body:
            fields += [("Content-Type", JSON_TYPE), ("Cache-Control", "no-store")]
        return fields


def _query_argument(query: str, name: str) -> str | None:
    """The last value of a query argument, as ``RequestHandler.get_query_argument`` reads it."""
    values = parse_qs_bytes(query, keep_blank_values=True).get(name)
    if not values:
        return None
    return _CONTROL.sub(" ", values[-1].decode("utf-8")).strip()


def _key(raw: str) -> str | None:
    """The key of a path's tail, decoded as Tornado decodes path arguments; None if invalid."""
    try:
        return validate_key(unquote_to_bytes(raw).decode("utf-8"))
    except (UnicodeDecodeError, PackratError):
        return None


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


class ExistsRead(HotRequest):
    """``GET /exists/<key>``: whether the object opened."""

    route = "/exists/{key}"

    def __init__(
        self,
        routes: HotRoutes,
        connection: HTTP1Connection,
        start_line: Any,
        headers: httputil.HTTPHeaders,
        path: str,
        present: bool,
    ) -> None:
        super().__init__(routes, connection, start_line, headers, path)
        self.present = present

    def finish(self) -> None:
        body = EXISTS_BODY[self.present]
        fields = self.routes.common_fields(json_body=True)
        fields.append(("Etag", EXISTS_ETAG[self.present]))
        fields.append(("Content-Length", str(len(body))))
        self.respond(200, fields, body)


class ObjectRead(HotRequest):
    """``GET``/``HEAD /<key>`` of an object that opened cleanly."""

    route = "/{key}"

    def __init__(
        self,
        routes: HotRoutes,
        connection: HTTP1Connection,
        start_line: Any,
        headers: httputil.HTTPHeaders,
        path: str,
        fd: int,
        meta: ObjectMeta,
        inode: tuple[int, int],
        answer: Answer,
        body: bytes | memoryview | None,
    ) -> None:
        super().__init__(routes, connection, start_line, headers, path)
        self.fd = fd
        self.meta = meta
        self.inode = inode
        self.answer = answer
        self.body = body  # None: too large to hold, sent from the file

    def finish(self) -> None:
        answer = self.answer
        fields = self.routes.common_fields(json_body=False) + answer.headers
        if self.body is not None:
            self.respond(answer.status, fields, self.body)
            return
        task = asyncio.ensure_future(self._send(httputil.HTTPHeaders(fields)))
        self.routes.tasks.add(task)
        task.add_done_callback(self.routes.tasks.discard)

    async def _send(self, headers: httputil.HTTPHeaders) -> None:
        answer = self.answer
        connection = self.connection
        self.status = answer.status
        try:
            await connection.write_headers(
                httputil.ResponseStartLine("HTTP/1.1", answer.status, REASONS[answer.status]),
                headers,
            )
            self.sent = await send_body(
                connection, self.routes.frontend, self.fd, self.meta, self.inode, answer
            )
            if not connection.stream.closed():
                connection.finish()
        except StreamClosedError:
            self.done(CLIENT_CLOSED)
            return
        except Exception:
            log.exception("sending %r failed", self.meta.key)
            connection.close()
            self.done(500)
            return
        self.done(answer.status)

    def release(self) -> None:
        os.close(self.fd)


class UploadRequest(HotRequest):
    """``PUT``/``POST /<key>`` when writes need no credentials: the body streamed to
    ``staging/`` and committed, as ``ObjectHandler`` does it (``uploads.BodyReceiver``)."""

    route = "/{key}"

    def __init__(
        self,
        routes: HotRoutes,
        connection: HTTP1Connection,
        start_line: httputil.RequestStartLine,
        headers: httputil.HTTPHeaders,
        path: str,
        key: str,
        filename: str | None,
    ) -> None:
        super().__init__(routes, connection, start_line, headers, path)
        self.key = key
        self.filename = filename
        self.receiver: BodyReceiver | None = None
        try:
            self.receiver = BodyReceiver(
                routes.frontend, headers, connection, start_line.method == "POST", self.fail
            )
        except PackratError as error:
            self.fail(error)

    def data_received(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if self.receiver is not None:
            self.receiver.feed(chunk)

    def finish(self) -> None:
        if self.receiver is None or not self.receiver.complete():
            return  # answered already
        task = asyncio.ensure_future(self._commit(self.receiver))
        self.routes.tasks.add(task)
        task.add_done_callback(self.routes.tasks.discard)

    async def _commit(self, receiver: BodyReceiver) -> None:
        try:
            if self.method == "POST":
                result = await receiver.commit_form(self.key)
            else:
                result = await receiver.commit_raw(self.key, self.filename)
        except PackratError as error:
            self.fail(error)
            return
        except Exception:
            log.exception("committing %r failed", self.key)
            self.fail(PackratError("the server failed to handle the request"))
            return
        if self.logged:
            return  # the client left meanwhile
        body = json.dumps(result).encode()
        fields = self.routes.common_fields(json_body=True)
        fields.append(("Content-Length", str(len(body))))
        self.respond(200, fields, body)

    def fail(self, error: PackratError) -> None:
        """Answer ``error`` in the JSON shape of ``BaseHandler.write_error``.

        The staging file goes first, before the client hears of the failure.
        """
        self.release()
        if self.logged:
            return
        self.failure = error
        body = json.dumps(
            {"success": False, "error": str(error.code), "message": error.message}
        ).encode()
        fields = self.routes.common_fields(json_body=True)
        fields += [(name, str(value)) for name, value in error.headers.items()]
        fields.append(("Content-Length", str(len(body))))
        self.respond(error.status, fields, body)

    def release(self) -> None:
        if self.receiver is not None:
            self.receiver.end()
