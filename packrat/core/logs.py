"""Logging for every role: one line per event on stderr, as text or JSON.

``[log] format`` picks the line's shape, ``[log] level`` the least severe
event logged, ``[log] access`` the access log (one line per HTTP request,
``packrat.access``) whatever the level.  With the access log off, requests
answered with a 5xx status are still logged, as warnings: they are problems.

Text lines are ``<time> <LEVEL> [<role>] <message>``.  JSON lines are
objects with ``time`` (ISO 8601, UTC), ``level``, ``logger``, ``process``
(the role) and ``message``, plus the fields of a structured event (an
access line's method, path, status...) and ``traceback`` when there is one.

A front end writes an access line per request, so its log is cheap: a line
is formatted only if it is emitted, and when stderr is a file or a pipe the
lines are buffered and written at least once a second (``flush_logs``) or
at once for a warning or worse.  On a terminal every line is written at once.
``log_event`` writes an event's line straight to the handler when logging
would do nothing else with it (no other handler, no filter): the same line,
without a ``LogRecord`` and the handler chain per request.  A buffered
handler queues those lines and hands them to its stream in batches (at
``PENDING_LINES``, on a flush, and before any other line, so the order
stays), not one locked write per request.
"""

from __future__ import annotations

import collections
import io
import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import Any

from packrat.core.settings import Settings

ACCESS_LOGGER = "packrat.access"
LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}
BUFFER_BYTES = 64 * 1024
PENDING_LINES = 256  # event lines a buffered handler queues before it writes them


class Event:
    """A log message with fields: text through ``str``, JSON through ``fields``.

    Log it as the message itself (``log.info(event)``): neither form is built
    unless the line is emitted.
    """

    __slots__ = ()

    def fields(self) -> dict[str, Any]:
        raise NotImplementedError


class TextFormatter(logging.Formatter):
    def __init__(self, role: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)s [{role}] %(message)s")
        self.role = role
        self._millisecond = -1
        self._second = -1
        self._stamp = ""  # the current second's date and time
        self._time_text = ""  # and the current millisecond's
        self._middles: dict[int, str] = {}  # per level: what goes between time and message

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """``logging.Formatter``'s time, made once a millisecond, not per line (an access
        line per request made it a few percent of a small read)."""
        return self._time(record.created)

    def _time(self, created: float) -> str:
        """As ``logging.Formatter`` writes it (``default_time_format``, then ``,`` and
        the milliseconds); the date part made once a second."""
        millisecond = int(created * 1000)
        if millisecond != self._millisecond:
            second = millisecond // 1000
            if second != self._second:
                self._stamp = time.strftime(self.default_time_format, self.converter(second))
                self._second = second
            self._time_text = f"{self._stamp},{millisecond % 1000:03d}"
            self._millisecond = millisecond
        return self._time_text

    def event_line(self, created: float, level: int, logger: str, event: Event | str) -> str:
        """The line ``format`` makes of a record of ``event`` (or its text) logged at
        ``created``."""
        middle = self._middles.get(level)
        if middle is None:  # once per level: a call less per line
            middle = self._middles[level] = f" {_level_name(level)} [{self.role}] "
        return f"{self._time(created)}{middle}{event!s}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line (non-ASCII and control characters escaped)."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        line = self._fields(record.created, record.levelname, record.name, record.getMessage())
        if isinstance(record.msg, Event):
            line.update(record.msg.fields())
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line)

    def _fields(self, created: float, level_name: str, logger: str, message: str) -> dict[str, Any]:
        return {
            "time": datetime.fromtimestamp(created, UTC).isoformat(timespec="milliseconds"),
            "level": level_name.lower(),
            "logger": logger,
            "process": self.role,
            "message": message,
        }

    def event_line(self, created: float, level: int, logger: str, event: Event) -> str:
        """The line ``format`` makes of a record of ``event`` logged at ``created``."""
        line = self._fields(created, _level_name(level), logger, str(event))
        line.update(event.fields())
        return json.dumps(line)


_LEVEL_NAMES = {level: logging.getLevelName(level) for level in LEVELS.values()}


def _level_name(level: int) -> str:
    return _LEVEL_NAMES.get(level) or logging.getLevelName(level)


class StderrHandler(logging.StreamHandler):
    """Writes lines to stderr; ``buffered``: flushes only for warnings and worse.

    Python's own ``sys.stderr`` writes each line at once (it is
    line-buffered since 3.9), so a buffered handler writes through a stream
    of its own on the same descriptor.
    """

    def __init__(self, buffered: bool) -> None:
        self.buffered = buffered and not sys.stderr.isatty()
        # Lines of ``emit_event`` not yet written (buffered): a deque, whose append
        # needs no lock, taken whole by ``_write_pending`` under the handler's lock.
        self.pending: collections.deque[str] = collections.deque()
        stream = sys.stderr
        if self.buffered:
            stream = io.TextIOWrapper(
                io.BufferedWriter(io.FileIO(sys.stderr.fileno(), "w", closefd=False), BUFFER_BYTES),
                encoding="utf-8",
                errors="backslashreplace",
            )
        super().__init__(stream)

    def emit(self, record: logging.LogRecord) -> None:
        """Called with the lock held (``Handler.handle``)."""
        try:
            line = self.format(record) + "\n"
            self._write_pending()
            self.stream.write(line)
            if not self.buffered or record.levelno >= logging.WARNING:
                self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)

    def emit_event(self, level: int, logger: str, event: Event | str) -> None:
        """Write ``event``'s line as ``emit`` writes a record's (see ``log_event``);
        buffered, an info line joins the queue (written in order, before any later line).

        A ``str`` is an event's text, for a ``TextFormatter`` only (which writes
        nothing of an event but its text).
        """
        formatter: TextFormatter | JsonFormatter = self.formatter  # type: ignore[assignment]
        line = formatter.event_line(time.time(), level, logger, event) + "\n"
        if self.buffered and level < logging.WARNING:
            pending = self.pending
            pending.append(line)
            if len(pending) >= PENDING_LINES:
                with self.lock:
                    self._write_pending()
            return
        with self.lock:
            self._write_pending()
            self.stream.write(line)
            self.flush()

    def _write_pending(self) -> None:
        """Hand the queued lines to the stream in one write; with the lock held."""
        pending = self.pending
        if pending:
            # Only as many as are there now: a line another thread adds meanwhile
            # stays queued for the next write.
            self.stream.write("".join([pending.popleft() for _ in range(len(pending))]))

    def flush(self) -> None:
        with self.lock:
            self._write_pending()
            super().flush()


_FORMATTERS = (TextFormatter, JsonFormatter)


def log_event(logger: logging.Logger, level: int, event: Event) -> None:
    """``logger.log(level, event)``; straight to the handler when that is all it would do.

    That is when the only handler is the one ``configure`` installed, with
    its formatter, and no logger on the way nor the handler has a filter or
    a handler of its own (a test's ``caplog``, say, takes the usual way).
    The caller has checked ``logger.isEnabledFor(level)``.
    """
    handler = straight_handler(logger, level)
    if handler is None:
        logger.log(level, event)
    else:
        handler.emit_event(level, logger.name, event)


def straight_handler(logger: logging.Logger, level: int) -> StderrHandler | None:
    """The handler ``log_event`` writes ``logger``'s events at ``level`` to itself, or None
    (they go the usual way)."""
    root = logging.root
    handlers = root.handlers
    if len(handlers) != 1 or root.filters:
        return None
    handler = handlers[0]
    if (
        type(handler) is not StderrHandler
        or handler.filters
        or level < handler.level
        or type(handler.formatter) not in _FORMATTERS
    ):
        return None
    node: logging.Logger | None = logger  # records go up to the root untouched?
    while node is not None and node is not root:
        if node.handlers or node.filters or not node.propagate:
            return None
        node = node.parent
    return handler


def configure(role: str, settings: Settings, buffered: bool = False) -> None:
    """Send every log of this process to stderr as ``[log]`` says.

    ``buffered`` (front ends) holds info lines in memory until
    ``flush_logs``, a warning, or exit.
    """
    handler = StderrHandler(buffered)
    handler.setFormatter(
        JsonFormatter(role) if settings.log_format == "json" else TextFormatter(role)
    )
    # Nothing logged shows threads, processes or source lines: skip finding
    # them for every record (the logging HOWTO's "Optimization").
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
    root.addHandler(handler)
    level = LEVELS[settings.log_level]
    root.setLevel(level)
    access_level = logging.INFO if settings.log_access else max(level, logging.WARNING)
    logging.getLogger(ACCESS_LOGGER).setLevel(access_level)


def flush_logs() -> None:
    for handler in logging.getLogger().handlers:
        handler.flush()
