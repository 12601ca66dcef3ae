"""Key validation: the one place that decides what a key may be.

Keys never become paths (objects live under a hash of the key), so this is
about clear errors and sane logs, not about path safety alone.  Still, the
rules refuse anything a file system or a proxy could misread.
"""

from __future__ import annotations

import re

from packrat.core.errors import ErrorCode, PackratError

MAX_KEY_BYTES = 1024

# Safe characters; '/' separates segments.
_KEY_RE = re.compile(r"[A-Za-z0-9._~!$&'()*+,;=:@-]+(?:/[A-Za-z0-9._~!$&'()*+,;=:@-]+)*")

# First segments the HTTP API uses for itself; a key cannot start with them.
RESERVED_PREFIXES = ("exists", "api", "metrics", "static", "healthz", "readyz")
# Whole keys the HTTP API answers itself (browsers ask for /favicon.ico on their own).
RESERVED_KEYS = ("favicon.ico",)


class InvalidKey(PackratError, ValueError):
    """The key breaks a rule; the message says which one (400 ``invalid_key``)."""

    code = ErrorCode.INVALID_KEY

    def __init__(self, rule: str) -> None:
        super().__init__(f"invalid key: {rule}")


def validate_key(key: str) -> str:
    """Return ``key`` unchanged if it is a valid key, else raise ``InvalidKey``.

    >>> validate_key("builds/2024/app.tar.gz")
    'builds/2024/app.tar.gz'
    >>> validate_key("a/../b")
    Traceback (most recent call last):
    ...
    packrat.core.keys.InvalidKey: invalid key: a key segment may not be '.' or '..'
    """
    if not key:
        raise InvalidKey("the key is empty")
    if len(key.encode("utf-8", "surrogatepass")) > MAX_KEY_BYTES:
        raise InvalidKey(f"the key is longer than {MAX_KEY_BYTES} bytes")
    if not _KEY_RE.fullmatch(key):
        raise InvalidKey(
            "a key is made of segments of letters, digits and ._~!$&'()*+,;=:@- "
            "separated by single '/' (no empty segment, no leading or trailing '/')"
        )
    segments = key.split("/")
    if any(segment in (".", "..") for segment in segments):
        raise InvalidKey("a key segment may not be '.' or '..'")
    if segments[0] in RESERVED_PREFIXES:
        raise InvalidKey(f"keys starting with {segments[0]!r} are reserved by the API")
    if key in RESERVED_KEYS:
        raise InvalidKey(f"the key {key!r} is reserved by the API")
    return key
