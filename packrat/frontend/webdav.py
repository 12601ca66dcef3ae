"""Just enough WebDAV for build tools that speak it (sccache's WebDAV backend).

Keys have no directories, but a WebDAV client makes the "collection" of a
path before it puts a file there: it asks ``PROPFIND`` (Depth 0) whether
``/a/b/`` exists and sends ``MKCOL`` when it does not.  Every collection
exists in Packrat, implicitly: ``PROPFIND`` of a path ending in ``/``
answers a 207 Multi-Status describing an empty collection, and ``MKCOL``
answers 201 Created, storing nothing.  Objects themselves are read and
written with ``GET`` and ``PUT`` as usual.
"""

from __future__ import annotations

import time
from xml.sax.saxutils import escape

from tornado.httputil import format_timestamp
from tornado.web import RequestHandler

from packrat.core.keys import validate_key
from packrat.frontend.auth import READ, WRITE
from packrat.frontend.base import BaseHandler

MULTISTATUS = (
    '<?xml version="1.0" encoding="utf-8"?>\n'
    '<D:multistatus xmlns:D="DAV:"><D:response><D:href>{href}</D:href>'
    "<D:propstat><D:prop><D:resourcetype><D:collection/></D:resourcetype>"
    "<D:getlastmodified>{modified}</D:getlastmodified></D:prop>"
    "<D:status>HTTP/1.1 200 OK</D:status></D:propstat></D:response></D:multistatus>"
)


class CollectionHandler(BaseHandler):
    """``/<prefix>/``: ``PROPFIND`` and ``MKCOL`` of the implicit collections of keys."""

    SUPPORTED_METHODS = (*RequestHandler.SUPPORTED_METHODS, "PROPFIND", "MKCOL")
    RIGHTS = {**BaseHandler.RIGHTS, "PROPFIND": READ, "MKCOL": WRITE}

    async def prepare(self) -> None:
        await self.authorize()
        path = self.path_args[0]
        if self.request.method in ("PROPFIND", "MKCOL"):
            path = path.rstrip("/")  # a collection is a key prefix: the same rules
        validate_key(path)  # anything else here is a key with a trailing "/": 400

    def propfind(self, _: str) -> None:
        self.set_status(207)
        self.set_header("Content-Type", 'application/xml; charset="utf-8"')
        modified = format_timestamp(time.time())
        self.finish(MULTISTATUS.format(href=escape(self.request.path), modified=modified))

    def mkcol(self, _: str) -> None:
        self.set_status(201)
        self.finish()
