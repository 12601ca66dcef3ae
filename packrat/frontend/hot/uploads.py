"""``PUT``/``POST /<key>`` when writes need no credentials."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import TYPE_CHECKING

from tornado import httputil
from tornado.http1connection import HTTP1Connection

from packrat.core.errors import PackratError
from packrat.frontend.hot.request import HotRequest
from packrat.frontend.uploads import BodyReceiver

if TYPE_CHECKING:
    from packrat.frontend.hot.routes import HotRoutes

log = logging.getLogger("packrat.frontend")


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
