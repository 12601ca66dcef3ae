"""One access line and one count per HTTP request.

``RequestLog.exchange_done`` runs once per exchange as it ends, whoever
answered it (the object path, a Tornado handler, or ``http1`` refusing a
malformed request).  It counts the request in the front end's metrics, adds
its body bytes to the traffic reported to the coordinator, and logs one line
on ``packrat.access``.  An error's code and log message
go on that same line: handlers do not log answered errors themselves, so no
request is logged twice.  A request whose client went away before the
answer was finished is logged with status 499 (nginx's "client closed
request").  Only a bug (an uncaught exception) logs a second line, its
traceback.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii  # type: ignore[attr-defined]
from typing import TYPE_CHECKING, Any

from tornado import httputil
from tornado.web import HTTPError, RequestHandler

from packrat.core.errors import PackratError
from packrat.core.logs import ACCESS_LOGGER, Event, TextFormatter, log_event, straight_handler

if TYPE_CHECKING:
    from packrat.frontend.dependencies import Dependencies
    from packrat.frontend.http1 import Exchange

access_log = logging.getLogger(ACCESS_LOGGER)
INFO, WARNING = logging.INFO, logging.WARNING


# ``text`` as a JSON string, exactly as ``json.dumps(text)`` writes it (``JSONEncoder``
# hands a str to this very function): printable ASCII but the quote and the backslash
# as it is, anything else escaped.  One call in C, not checks in Python.
quoted: Callable[[str], str] = encode_basestring_ascii


CLIENT_CLOSED = 499


class Counted(RequestHandler):
    """A handler whose answer is recorded by its exchange: it names the route and the
    error it answered (``RequestLog`` hands them over)."""

    route = "other"
    failure: BaseException | None = None  # the error the answer reports


@dataclass(slots=True)
class AccessEntry(Event):
    """One request's access line."""

    remote: str
    method: str
    path: str
    status: int
    sent: int
    received: int
    duration: float
    user_agent: str
    number: int
    error: str | None = None
    detail: str | None = None

    def __str__(self) -> str:
        line = (
            self.remote,
            self.method,
            self.path,
            self.status,
            self.sent,
            self.received,
            self.duration,
            self.user_agent,
        )
        return access_text(line, self.error, self.detail)

    def fields(self) -> dict[str, Any]:
        fields = {
            "frontend": self.number,
            "remote": self.remote,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "bytes_sent": self.sent,
            "bytes_received": self.received,
            "duration_ms": round(self.duration * 1000, 3),
            "user_agent": self.user_agent,
        }
        if self.error is not None:
            fields["error"] = self.error
            fields["detail"] = self.detail
        return fields


# An access line's fields in its order: remote, method, path, status, bytes sent and
# received, duration (seconds), user agent.
Line = tuple[str, str, str, int, int, int, float, str]


def access_text(line: Line, error: str | None, detail: str | None) -> str:
    """An access line's message (``AccessEntry``'s text).

    Client-chosen text is quoted and escaped as JSON strings, so a line
    cannot be forged or broken by a path or a user agent.
    """
    remote, method, path, status, sent, received, duration, user_agent = line
    text = (
        f"{remote} {method if method.isalpha() else quoted(method)} {quoted(path)} {status} "
        f"sent={sent} received={received} {duration * 1000:.1f}ms {quoted(user_agent)}"
    )
    if error is not None:
        text += f" error={error} {json.dumps(detail)}"
    return text


def describe(failure: BaseException | None, status: int) -> tuple[str | None, str | None]:
    """The error code and log message an access line shows: those of the answer."""
    if failure is None:
        return None, None
    if isinstance(failure, PackratError):
        return str(failure.code), failure.log_message
    if isinstance(failure, HTTPError) and status < 500:
        reason = failure.reason or httputil.responses.get(status, "error")
        detail = failure.log_message
        if detail and failure.args:
            detail = detail % failure.args
        return reason.lower().replace(" ", "_"), detail
    return "internal_error", f"{type(failure).__name__}: {failure}"


class RequestLog:
    """One front end's access record: every exchange, once (``server.Server.record``).

    As the ``Application``'s ``log_function`` it only hands the handler's
    route and error over to the exchange, which is recorded when it ends.
    """

    def __init__(self, frontend: Dependencies) -> None:
        self.frontend = frontend

    def __call__(self, handler: RequestHandler) -> None:
        exchange = getattr(handler.request.connection, "exchange", None)
        if exchange is not None:
            exchange.route = getattr(handler, "route", "other")
            exchange.failure = getattr(handler, "failure", None)

    def exchange_done(self, exchange: Exchange, status: int) -> None:
        """Count one exchange and log its line."""
        request = exchange.request
        frontend = self.frontend
        duration = time.monotonic() - request.started
        received, sent = exchange.received, exchange.sent
        frontend.metrics.request(exchange.route, request.method, status, duration, received, sent)
        if received or sent:  # not for a HEAD or a 304
            frontend.coordinator.traffic(received, sent)
        level = WARNING if status >= 500 else INFO
        if not access_log.isEnabledFor(level):
            return
        failure = exchange.failure
        error, detail = (None, None) if failure is None else describe(failure, status)
        line: Line = (
            exchange.connection.remote,
            request.method,
            request.path,
            status,
            sent,
            received,
            duration,
            request.headers.get("user-agent", ""),
        )
        handler = straight_handler(access_log, level)
        if handler is not None and type(handler.formatter) is TextFormatter:
            # A text line is its message alone: made at once, without the event.
            handler.emit_event(level, ACCESS_LOGGER, access_text(line, error, detail))
            return
        entry = AccessEntry(*line, frontend.number, error, detail)
        log_event(access_log, level, entry)
