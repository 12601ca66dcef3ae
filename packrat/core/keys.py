"""What a key may be: the one home of the rule, which every caller points to.

As in S3, a key is any UTF-8 text of 1 to 1024 bytes, "Q1 report.pdf" and
"rapports/été/q1" included, compared byte for byte (no case folding, no
Unicode normalisation).  Keys never become paths (objects live under a hash
of the key), so the rule is not about file systems; it refuses what would
make a key misread where it does travel, in a URL path and in logs:

* characters that are not text: control characters (U+0000 to U+001F,
  U+007F to U+009F), line and paragraph separators, the bidirectional
  overrides and isolates that show text in another order than it is stored
  (the "Trojan Source" characters), and lone surrogates (not UTF-8);
* ``\\``, which browsers turn into ``/`` in an http URL;
* empty, ``.`` and ``..`` segments between the ``/``: clients and proxies
  rewrite them (RFC 3986 removes dot segments), and a trailing ``/`` names a
  WebDAV collection, not an object;
* first segments the API uses for itself (``RESERVED_PREFIXES``), and
  whole keys whose paths it answers (``RESERVED_KEYS``: ``favicon.ico``,
  and Turborepo's ``v8/artifacts``, ``v8/artifacts/status`` and
  ``v8/artifacts/events``).

In a URL the key is percent-encoded (``key_path``); ``%``, ``?``, ``#`` and
spaces may be in a key but must travel encoded.

The same rule, as data, reaches the places that check keys before the
server does: ``KEY_PATTERN`` is the status page's ``<input pattern>`` and
(anchored) the OpenAPI document's ``Key`` pattern; ``FORBIDDEN_CLASS`` is
what the page's script replaces in a file name to make its default key; the
Python client calls ``validate_key``.  ``tests/test_keys.py`` checks that they
agree.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from packrat.core.errors import ErrorCode, PackratError

MAX_KEY_BYTES = 1024

# The characters a key may not hold: (first, last, what it is).
FORBIDDEN = (
    (0x00, 0x1F, "a control character"),
    (0x5C, 0x5C, "a backslash (use '/' between segments)"),
    (0x7F, 0x9F, "a control character"),
    (0x2028, 0x2029, "a line or paragraph separator"),
    (0x202A, 0x202E, "a bidirectional control, which shows text in another order"),
    (0x2066, 0x2069, "a bidirectional control, which shows text in another order"),
    (0xD800, 0xDFFF, "a lone surrogate, which is not UTF-8"),
)

# The inside of a regular-expression class of FORBIDDEN, in \uXXXX escapes
# only, so that Python's re, JSON Schema's ECMA-262 and an HTML pattern
# (compiled with the v flag, where many punctuation marks must be escaped
# inside a class) all read it alike.
FORBIDDEN_CLASS = (
    "".join(
        f"\\u{first:04x}" if first == last else f"\\u{first:04x}-\\u{last:04x}"
        for first, last, _ in FORBIDDEN
    )
    + "\\u002f"
)  # and the separator, within a segment
_SEGMENT = f"[^{FORBIDDEN_CLASS}]+"
KEY_PATTERN = f"{_SEGMENT}(?:/{_SEGMENT})*"
"""Segments of allowed characters joined by single ``/``: the characters and the
slashes of the rule (not the length, dot segments or reserved prefixes)."""
_KEY_RE = re.compile(KEY_PATTERN)
KEY_RULE = (
    "Up to 1024 bytes of any text but control characters and \\, in segments separated "
    "by single slashes (none empty, '.' or '..')"
)
"""The rule in one sentence, for people (the status page's key field)."""

# First segments the HTTP API uses for itself; a key cannot start with them.
RESERVED_PREFIXES = ("exists", "api", "metrics", "static", "healthz", "readyz")
# Whole keys whose paths the HTTP API answers itself (browsers ask for
# /favicon.ico on their own; the others are Turborepo's API: frontend.turborepo).
RESERVED_KEYS = ("favicon.ico", "v8/artifacts", "v8/artifacts/status", "v8/artifacts/events")

# Characters a URL path carries as they are (RFC 3986 pchar and '/'); the
# others are percent-encoded.
_URL_SAFE = "/._~!$&'()*+,;=:@-"


class InvalidKey(PackratError, ValueError):
    """The key breaks a rule; the message names the key and what is wrong where
    (400 ``invalid_key``)."""

    code = ErrorCode.INVALID_KEY

    def __init__(self, key: str, problem: str) -> None:
        shown = key if len(key) <= 100 else key[:100] + "…"
        super().__init__(f"invalid key {shown!r}: {problem}")


def forbidden(char: str) -> str | None:
    """What ``char`` is if a key may not hold it, else None.

    >>> forbidden("é"), forbidden(" "), forbidden("\\t")
    (None, None, 'a control character')
    """
    code = ord(char)
    for first, last, what in FORBIDDEN:
        if first <= code <= last:
            return what
    return None


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid key, else raise ``InvalidKey``.

    Positions in messages count characters from 1.

    >>> validate_key("rapports/été/Q1 report.pdf")
    'rapports/été/Q1 report.pdf'
    >>> for key in ("a/../b", "Q1\\treport"):
    ...     try:
    ...         validate_key(key)
    ...     except InvalidKey as e:
    ...         print(e)
    invalid key 'a/../b': segment '..' at character 3 (URLs drop '.' and '..' segments)
    invalid key 'Q1\\treport': U+0009 at character 3 is a control character
    """
    if _KEY_RE.fullmatch(key) is None:
        _check_characters(key)
        _check_length(key)
        _check_segments(key)
        raise AssertionError(f"{key!r} does not match KEY_PATTERN, yet breaks no rule")
    _check_length(key)
    if "." in key:
        _check_segments(key)
    first = key.partition("/")[0]
    if first in RESERVED_PREFIXES:
        raise InvalidKey(key, f"keys starting with {first!r} are reserved by the API")
    if key in RESERVED_KEYS:
        raise InvalidKey(key, "the key is reserved by the API")
    return key


def _check_characters(key: str) -> None:
    """Raise ``InvalidKey`` for an empty key or its first forbidden character."""
    if not key:
        raise InvalidKey(key, "the key is empty")
    for position, char in enumerate(key, 1):
        what = forbidden(char)
        if what is not None:
            raise InvalidKey(key, f"U+{ord(char):04X} at character {position} is {what}")


def _check_length(key: str) -> None:
    # At most 4 bytes a character: only long keys need encoding to be measured.
    if len(key) > MAX_KEY_BYTES // 4 and len(key.encode("utf-8")) > MAX_KEY_BYTES:
        size = len(key.encode("utf-8"))
        raise InvalidKey(key, f"the key is {size} bytes of UTF-8, more than {MAX_KEY_BYTES}")


def _check_segments(key: str) -> None:
    """Raise ``InvalidKey`` for the first empty, ``.`` or ``..`` segment of ``key``."""
    position = 1
    segments = key.split("/")
    for number, segment in enumerate(segments):
        if segment in ("", ".", ".."):
            raise InvalidKey(key, _segment_problem(segment, position, number, len(segments)))
        position += len(segment) + 1


def _segment_problem(segment: str, position: int, number: int, count: int) -> str:
    if segment:
        return f"segment {segment!r} at character {position} (URLs drop '.' and '..' segments)"
    if number == 0:
        return "it starts with '/'"
    if number == count - 1:
        return "it ends with '/' (a path ending in '/' names a collection, not an object)"
    return f"an empty segment at character {position} ('//')"


def key_path(key: str) -> str:
    """The URL path of ``key``: ``/`` and the key, percent-encoded where a URL needs it.

    >>> key_path("rapports/été/Q1 report.pdf")
    '/rapports/%C3%A9t%C3%A9/Q1%20report.pdf'
    """
    return "/" + quote(key, safe=_URL_SAFE)


def validate_prefix(prefix: str) -> str:
    """Return ``prefix`` if some key could start with it, else raise ``InvalidKey``.

    Empty (every key), or the start of a key: whole segments, then perhaps a
    partial one (``bazel/a``), or a trailing ``/`` (a collection: ``bazel/ac/``).

    >>> validate_prefix("bazel/ac/"), validate_prefix("été/.h"), validate_prefix("")
    ('bazel/ac/', 'été/.h', '')
    """
    if not prefix:
        return prefix
    _check_characters(prefix.removesuffix("/"))
    _check_length(prefix)
    segments = prefix.split("/")
    whole = segments[:-1]  # the last is partial, or empty after a trailing '/'
    position = 1
    for number, segment in enumerate(whole):
        if segment in ("", ".", ".."):
            raise InvalidKey(prefix, _segment_problem(segment, position, number, len(segments)))
        position += len(segment) + 1
    return prefix
