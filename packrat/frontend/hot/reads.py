"""``GET /exists/<key>``, and ``GET``/``HEAD /<key>`` of an object that opened cleanly."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
from typing import TYPE_CHECKING, Any

from tornado import httputil
from tornado.http1connection import HTTP1Connection
from tornado.iostream import StreamClosedError

from packrat.frontend.accesslog import CLIENT_CLOSED
from packrat.frontend.downloads import Answer, send_body
from packrat.frontend.hot.request import HotRequest
from packrat.store import ObjectMeta

if TYPE_CHECKING:
    from packrat.frontend.hot.routes import HotRoutes

log = logging.getLogger("packrat.frontend")

EXISTS_BODY = {present: json.dumps({"present": present}).encode() for present in (True, False)}
# RequestHandler's own ETag of a GET's body (RequestHandler.compute_etag)
EXISTS_ETAG = {
    present: f'"{hashlib.sha1(body).hexdigest()}"' for present, body in EXISTS_BODY.items()
}
REASONS = {200: "OK", 206: "Partial Content", 304: "Not Modified"}


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
