"""What every answer shares, objects and pages alike: the common headers and the JSON bodies.

One home for each rule: the headers every answer carries (``common_fields``),
a JSON answer's body (``json_body``: compact, ending with a newline, as a
terminal expects), and the one error writer (``error_answer``): every error
a client sees is ``{"success": false, "error": code, "message": sentence}``
with the status of its code and the headers it needs (``Retry-After`` on a
503, ``WWW-Authenticate`` on a 401, ``Allow`` on a 405, ``Content-Range`` on
a 416).  The object path writes them itself; ``base.BaseHandler`` gives
Tornado's handlers the same.
"""

from __future__ import annotations

import json
import time
from typing import Any

from tornado.httputil import format_timestamp

from packrat import __version__
from packrat.core.errors import PackratError, Unauthorized

SERVER = f"Packrat/{__version__}"
JSON_TYPE = "application/json; charset=UTF-8"
NOSNIFF = ("X-Content-Type-Options", "nosniff")
NO_STORE = ("Cache-Control", "no-store")

_date = ["", -1]  # the Date header of the current second, and that second


def http_now() -> str:
    """``Date``: made once a second, not per answer."""
    now = int(time.time())
    if now != _date[1]:
        _date[0] = format_timestamp(now)
        _date[1] = now
    return _date[0]  # type: ignore[return-value]


def common_fields(json_body: bool = False) -> list[tuple[str, str]]:
    """The headers every answer carries; a JSON answer adds its type and ``no-store``."""
    fields = [("Server", SERVER), ("Date", http_now()), NOSNIFF]
    if json_body:
        fields += [("Content-Type", JSON_TYPE), NO_STORE]
    return fields


_lines: dict[bool, tuple[int, str]] = {}  # json_body -> (second, lines)
_date_line = [b"", -1]  # the Date header line of the current second, encoded, and that second


def date_line() -> bytes:
    """``Date: ...`` as an encoded header line, made once a second (``common_around_date``)."""
    now = int(time.time())
    if now != _date_line[1]:
        _date_line[0] = f"Date: {http_now()}\r\n".encode("latin-1")
        _date_line[1] = now
    return _date_line[0]  # type: ignore[return-value]


def common_around_date(json_body: bool = False) -> tuple[str, str]:
    """``common_lines`` without ``Date``: the lines before it and after it, which stay
    the same (an answer's headers made once, with ``date_line`` put between them).

    >>> common_around_date()[1]
    'X-Content-Type-Options: nosniff\\r\\n'
    """
    fields = common_fields(json_body)
    assert fields[1][0] == "Date"
    lines = [f"{name}: {value}\r\n" for name, value in fields]
    return lines[0], "".join(lines[2:])


def common_lines(json_body: bool = False) -> str:
    """``common_fields`` as header lines, made once a second (an ``http1`` field block)."""
    now = int(time.time())
    made = _lines.get(json_body)
    if made is None or made[0] != now:
        lines = "".join(f"{name}: {value}\r\n" for name, value in common_fields(json_body))
        made = _lines[json_body] = (now, lines)
    return made[1]


def json_body(payload: dict[str, Any]) -> bytes:
    """A JSON answer's bytes: one line, ended by a newline.

    >>> json_body({"present": True})
    b'{"present": true}\\n'
    """
    return json.dumps(payload).encode() + b"\n"


def json_answer(payload: dict[str, Any]) -> tuple[list[tuple[str, str]], bytes]:
    """The headers and body of a JSON answer (``Content-Length`` included)."""
    body = json_body(payload)
    fields = common_fields(json_body=True)
    fields.append(("Content-Length", str(len(body))))
    return fields, body


def error_body(code: str, message: str) -> bytes:
    return json_body({"success": False, "error": code, "message": message})


def error_fields(error: PackratError) -> list[tuple[str, str]]:
    """The headers an error needs besides the common ones (its own, and challenges)."""
    fields = list(error.headers.items())
    if isinstance(error, Unauthorized):
        fields += [("WWW-Authenticate", challenge) for challenge in error.challenges]
    return fields


def error_answer(error: PackratError) -> tuple[int, list[tuple[str, str]], bytes]:
    """``(status, headers, body)`` of the answer to ``error``.

    >>> from packrat.core.errors import TooBusy
    >>> status, fields, body = error_answer(TooBusy("retry shortly"))
    >>> status, ("Retry-After", "1") in fields, body
    (503, True, b'{"success": false, "error": "too_busy", "message": "retry shortly"}\\n')
    """
    body = error_body(str(error.code), error.message)
    fields = common_fields(json_body=True) + error_fields(error)
    fields.append(("Content-Length", str(len(body))))
    return error.status, fields, body
