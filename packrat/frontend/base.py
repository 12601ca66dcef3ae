"""What every handler shares: dependencies, access control, JSON errors."""

from __future__ import annotations

import json
from typing import Any

from tornado.web import RequestHandler

from packrat.config import Settings
from packrat.errors import InvalidKeyError, PackratError, Unauthorized
from packrat.frontend.auth import READ, WRITE, Authenticator
from packrat.frontend.client import CoordinatorClient
from packrat.keys import InvalidKey, validate_key
from packrat.storage import Layout


def security_headers(handler: RequestHandler) -> None:
    """Headers every response carries, error or not."""
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Cache-Control", "no-store")


class BaseHandler(RequestHandler):
    """Shared dependencies, access control and the one JSON error renderer.

    ``in_flight`` counts this process's requests from start to finish (or
    to the client's disconnect), so a stopping front end can let them end.
    """

    # The right each method needs when ``[auth]`` is on.
    RIGHTS = {"GET": READ, "HEAD": READ, "POST": WRITE, "PUT": WRITE, "DELETE": WRITE}
    in_flight = 0
    counted = False

    def initialize(
        self,
        settings: Settings,
        layout: Layout,
        client: CoordinatorClient,
        auth: Authenticator,
    ) -> None:
        self.settings_ = settings
        self.layout = layout
        self.client = client
        self.auth = auth
        BaseHandler.in_flight += 1
        self.counted = True

    def on_finish(self) -> None:
        self._done()

    def on_connection_close(self) -> None:
        self._done()
        super().on_connection_close()

    def _done(self) -> None:
        if self.counted:
            self.counted = False
            BaseHandler.in_flight -= 1

    def set_default_headers(self) -> None:
        security_headers(self)

    async def prepare(self) -> None:
        await self.authorize()

    async def authorize(self) -> None:
        """401/403 unless the request's credentials allow its method."""
        right = self.RIGHTS.get(self.request.method or "", WRITE)
        await self.auth.require(right, self.request.headers.get("Authorization"))

    def write_json(self, payload: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(payload))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, PackratError):
            code, message = error.code, error.message
            for name, value in error.headers.items():
                self.set_header(name, value)
            if isinstance(error, Unauthorized):
                for challenge in error.challenges:
                    self.add_header("WWW-Authenticate", challenge)
        elif status_code >= 500:
            code, message = "internal_error", "the server failed to handle the request"
        else:
            code = self._reason.lower().replace(" ", "_")
            message = f"{self._reason} ({status_code})"
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"success": False, "error": code, "message": message}))

    def valid_key(self, raw: str) -> str:
        try:
            return validate_key(raw)
        except InvalidKey as e:
            raise InvalidKeyError(f"invalid key: {e}") from None
