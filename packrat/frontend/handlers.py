"""HTTP handlers: the public API.

``GET /``              status page with an upload form
``POST /``             the form's upload (fields ``key`` and ``file``)
``GET|HEAD /<key>``    the object, as an attachment with its uploaded name
                       (ranges, validators and conditional requests: RFC 9110)
``POST /<key>``        upload (multipart/form-data, field ``file``)
``PUT /<key>``         upload (the raw body)
``DELETE /<key>``      remove the object
``GET /exists/<key>``  ``{"present": true|false}``
``GET /api/openapi.json``  the OpenAPI 3 description of all of this

Reads never wait for the coordinator: the object's path is a function of the
key and its metadata is in the file.  Writes stream to ``staging/`` and then
ask the coordinator to commit.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tornado.web import StaticFileHandler

from packrat.errors import CoordinatorUnavailable, NotFound
from packrat.frontend.base import BaseHandler, security_headers
from packrat.frontend.reads import ExistsHandler, ObjectReader
from packrat.frontend.writes import ObjectWriter, UploadHandler

__all__ = [
    "ExistsHandler",
    "NotFoundHandler",
    "ObjectHandler",
    "OpenAPIHandler",
    "StaticHandler",
    "StatusHandler",
]

SMALL_BODY = 64 * 1024  # the most any request that is not an upload may carry
OPENAPI_PATH = Path(__file__).parent / "openapi.json"
STATUS_CSP = (
    "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class StatusHandler(UploadHandler):
    """``GET /``: counters and the upload form; ``POST /``: the form's upload."""

    async def get(self) -> None:
        try:
            stats: dict[str, Any] | None = await self.client.request("stats")
        except CoordinatorUnavailable:
            stats = None
        self.set_header("Content-Security-Policy", STATUS_CSP)
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "no-referrer")
        self.render("status.html", stats=stats, max_file_size=self.settings_.max_file_size)


class ObjectHandler(ObjectReader, ObjectWriter):
    """``/<key>``: ``GET``/``HEAD`` send the object, ``POST``/``PUT`` store it, ``DELETE``."""


class OpenAPIHandler(BaseHandler):
    """``GET /api/openapi.json``: the API's description (no credentials needed)."""

    document = OPENAPI_PATH.read_bytes()

    async def prepare(self) -> None:
        pass  # public, like the rest of the documentation

    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish(self.document)


class NotFoundHandler(BaseHandler):
    """Anything no route matches (``OPTIONS *``, absolute-form targets): JSON 404."""

    async def prepare(self) -> None:
        raise NotFound("no such resource")


class StaticHandler(StaticFileHandler):
    """The status page's stylesheet, with the headers every response carries."""

    def set_default_headers(self) -> None:
        security_headers(self)
        self.set_header("Cache-Control", "public, max-age=3600")
