"""Which requests the hot routes take, and the headers every answer carries."""

from __future__ import annotations

import asyncio
import os
import re
import time
from urllib.parse import unquote_to_bytes

import tornado
from tornado import httputil
from tornado.escape import parse_qs_bytes
from tornado.http1connection import HTTP1Connection

from packrat.core.errors import PackratError
from packrat.core.keys import validate_key
from packrat.frontend.accesslog import RequestLog
from packrat.frontend.dependencies import Dependencies
from packrat.frontend.downloads import open_to_send, plan, small_body
from packrat.frontend.hot.reads import ExistsRead, ObjectRead
from packrat.frontend.hot.uploads import UploadRequest
from packrat.store import CorruptObject

SERVER = f"TornadoServer/{tornado.version}"  # what RequestHandler answers
JSON_TYPE = "application/json; charset=UTF-8"
_PRINTABLE = re.compile(r"[\x20-\x7e]*")
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")  # what RequestHandler replaces in arguments


class HotRoutes:
    """One front end's hot routes: ``take`` a request, or leave it to the application."""

    def __init__(self, frontend: Dependencies, request_log: RequestLog) -> None:
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
            opened = open_to_send(frontend, key)
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
            opened = open_to_send(self.frontend, key)
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
