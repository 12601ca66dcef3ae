"""What every handler shares: the front end's dependencies, access control, JSON errors."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from tornado.web import HTTPError, RequestHandler

from packrat.core.errors import PackratError
from packrat.frontend import envelope
from packrat.frontend.accesslog import Counted
from packrat.frontend.auth import READ, WRITE
from packrat.frontend.dependencies import Dependencies
from packrat.frontend.uploads import UploadReceiver

JSON_TYPE = envelope.JSON_TYPE


def security_headers(handler: RequestHandler) -> None:
    """Headers every response carries, error or not (``envelope``'s, as the object path's)."""
    handler.set_header("Server", envelope.SERVER)
    handler.set_header(*envelope.NOSNIFF)
    handler.set_header(*envelope.NO_STORE)


class BaseHandler(Counted):
    """Shared dependencies, access control and the one JSON error renderer.

    A handler that receives an upload sets ``receiver`` in ``prepare``; the
    body goes to it, and it is ended however the request ends.  ``route``
    names the route in metrics.
    """

    # The right each method needs when ``[auth]`` is on.
    RIGHTS = {"GET": READ, "HEAD": READ, "POST": WRITE, "PUT": WRITE, "DELETE": WRITE}
    route = "other"
    receiver: UploadReceiver | None = None

    def initialize(self, frontend: Dependencies) -> None:
        self.frontend = frontend

    def on_finish(self) -> None:
        self._done()

    def on_connection_close(self) -> None:
        self._done()
        super().on_connection_close()

    def data_received(self, chunk: bytes) -> None:
        if self.receiver is not None:
            self.receiver.feed(chunk)

    def _done(self) -> None:
        if self.receiver is not None:
            self.receiver.end()

    def set_default_headers(self) -> None:
        security_headers(self)

    async def prepare(self) -> None:
        await self.authorize()

    async def authorize(self) -> None:
        """401/403 unless the request's credentials allow its method."""
        right = self.RIGHTS.get(self.request.method or "", WRITE)
        await self.frontend.auth.require(right, self.request.headers.get("Authorization"))

    def write_json(self, payload: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(envelope.json_body(payload))

    def send_error(self, status_code: int = 500, **kwargs: Any) -> None:
        if self.receiver is not None:
            self.receiver.end()  # the staging file goes before the client hears of the failure
        error = kwargs.get("exc_info", (None, None, None))[1]
        self.failure = error  # for the access line
        if isinstance(error, PackratError):
            status_code = error.status
        super().send_error(status_code, **kwargs)

    def log_exception(
        self,
        typ: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """An answered error is logged once, on the access line; a bug logs its traceback."""
        if not isinstance(value, PackratError | HTTPError):
            super().log_exception(typ, value, tb)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, PackratError):
            code, message = str(error.code), error.message
            for name, value in envelope.error_fields(error):
                self.add_header(name, value)
        elif status_code >= 500:
            code, message = "internal_error", "the server failed to handle the request"
        else:
            code = self._reason.lower().replace(" ", "_")
            message = f"{self._reason} ({status_code})"
            if isinstance(error, HTTPError) and error.status_code == 405:
                self.set_header("Allow", ", ".join(sorted(self._allowed_methods())))
        self.set_header("Content-Type", JSON_TYPE)
        self.finish(envelope.error_body(code, message))

    def _allowed_methods(self) -> set[str]:
        return {
            method
            for method in self.SUPPORTED_METHODS
            if getattr(type(self), method.lower()) is not getattr(RequestHandler, method.lower())
        }
