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
"""

from __future__ import annotations

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
        self._second = -1
        self._stamp = ""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """``logging.Formatter``'s time, its date part made once a second, not per line
        (an access line per request made it a few percent of a small read)."""
        second = int(record.created)
        if second != self._second:
            self._stamp = time.strftime(self.default_time_format, self.converter(record.created))
            self._second = second
        return self.default_msec_format % (self._stamp, record.msecs)


class JsonFormatter(logging.Formatter):
    """One JSON object per line (non-ASCII and control characters escaped)."""

    def __init__(self, role: str) -> None:
        super().__init__()
        self.role = role

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "process": self.role,
            "message": record.getMessage(),
        }
        if isinstance(record.msg, Event):
            line.update(record.msg.fields())
        if record.exc_info:
            line["traceback"] = self.formatException(record.exc_info)
        return json.dumps(line)


class StderrHandler(logging.StreamHandler):
    """Writes lines to stderr; ``buffered``: flushes only for warnings and worse.

    Python's own ``sys.stderr`` writes each line at once (it is
    line-buffered since 3.9), so a buffered handler writes through a stream
    of its own on the same descriptor.
    """

    def __init__(self, buffered: bool) -> None:
        self.buffered = buffered and not sys.stderr.isatty()
        stream = sys.stderr
        if self.buffered:
            stream = io.TextIOWrapper(
                io.BufferedWriter(io.FileIO(sys.stderr.fileno(), "w", closefd=False), BUFFER_BYTES),
                encoding="utf-8",
                errors="backslashreplace",
            )
        super().__init__(stream)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.stream.write(self.format(record) + "\n")
            if not self.buffered or record.levelno >= logging.WARNING:
                self.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


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
