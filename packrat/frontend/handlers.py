"""Tornado handlers for the pages: what is not an object.

``GET /``              status page with an upload form
``POST /``             the form's upload (fields ``key`` and ``file``)
``GET /api/openapi.json``  the OpenAPI 3 description of the API
``GET|HEAD /favicon.ico``  a redirect to the icon under ``/static/``
``/static/...``        the page's stylesheet, script and icon

(``/healthz``, ``/readyz``, ``/metrics`` and ``/api/stats`` are in
``observability``, WebDAV collections in ``webdav``; objects and
``/exists/<key>`` are answered by ``objects``, without ``RequestHandler``.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tornado.web import StaticFileHandler, stream_request_body

from packrat.core.errors import CoordinatorUnavailable, NotFound, PackratError, Unauthorized
from packrat.frontend import page
from packrat.frontend.accesslog import Counted
from packrat.frontend.base import BaseHandler, security_headers
from packrat.frontend.observability import current_stats
from packrat.frontend.uploads import UploadReceiver

OPENAPI_PATH = Path(__file__).parent / "openapi.json"
# Only this origin's own script, stylesheet, icon and /api/stats; nothing inline.
STATUS_CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self'; "
    "style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@stream_request_body
class StatusHandler(BaseHandler):
    """``GET /``: the status page; ``POST /``: the form's upload.

    The page is complete without JavaScript; its script (``/static/``, the
    only one the policy allows) refreshes the figures and uploads with
    progress.  A form posted by a browser (``Accept`` preferring HTML) gets
    a page with the result or the error in words and a link back; API
    clients get JSON, errors included.
    """

    route = "/"

    def set_default_headers(self) -> None:
        super().set_default_headers()
        self.set_header("Content-Security-Policy", STATUS_CSP)
        self.set_header("X-Frame-Options", "DENY")
        # Not no-referrer: then a browser sends Origin: null on the page's own form
        # posts, which the cross-site rule (crosssite) cannot tell from another site's.
        self.set_header("Referrer-Policy", "same-origin")

    async def prepare(self) -> None:
        await self.authorize()
        if self.request.method == "POST":
            self.receiver = UploadReceiver(self, self.frontend, multipart=True)

    def get_template_namespace(self) -> dict[str, Any]:
        return {**super().get_template_namespace(), **page.HELPERS}

    async def get(self) -> None:
        try:
            stats: dict[str, Any] | None = await current_stats(self)
        except CoordinatorUnavailable:
            stats = None
        self.render("status.html", **page.status_args(stats, self.frontend.settings.max_file_size))

    async def post(self) -> None:
        assert self.receiver is not None
        if not self.receiver.complete():
            return
        stored = await self.receiver.commit_form(None)
        if self._wants_html():
            self.render("result.html", upload=stored, error=None)
        else:
            self.write_json(stored)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """The API's errors in words for a browser's form; JSON otherwise.

        A 401 keeps the API's answer: its challenge is what makes a browser
        ask for a password.  A bug (no ``PackratError``) is answered as JSON.
        """
        error = kwargs.get("exc_info", (None, None, None))[1]
        if (
            self.request.method == "POST"
            and isinstance(error, PackratError)
            and not isinstance(error, Unauthorized)
            and self._wants_html()
        ):
            for name, value in error.headers.items():
                self.set_header(name, value)
            self.render("result.html", error=error.code, message=error.message, status=status_code)
        else:
            super().write_error(status_code, **kwargs)

    def _wants_html(self) -> bool:
        return page.prefers_html(self.request.headers.get("Accept"))


class OpenAPIHandler(BaseHandler):
    """``GET /api/openapi.json``: the API's description (no credentials needed)."""

    route = "/api/openapi.json"

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


class FaviconHandler(BaseHandler):
    """``GET /favicon.ico``: what browsers ask for by themselves, sent to the icon.

    A route of its own, so it is neither a cache miss nor a missing object.
    """

    route = "/favicon.ico"

    async def prepare(self) -> None:
        pass  # public, like /static/

    def get(self) -> None:
        self.set_header("Cache-Control", "public, max-age=86400")
        self.redirect(page.static_url("favicon.svg"), permanent=True)

    head = get


class StaticHandler(Counted, StaticFileHandler):
    """The status page's stylesheet, script and icon, with the headers every response carries."""

    route = "/static/"

    def set_default_headers(self) -> None:
        security_headers(self)
        self.set_header("Cache-Control", "public, max-age=3600")
