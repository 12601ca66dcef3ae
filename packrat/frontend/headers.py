"""HTTP header helpers: pure functions, no I/O, each with doctests.

Building response headers from stored, client-supplied strings (so nothing a
client sent can split or forge a header), and reading the request headers of
RFC 9110 that the read path honours: ``Range``, ``If-Range``,
``If-None-Match`` and ``If-Modified-Since``.
"""

from __future__ import annotations

import email.utils
import re
from urllib.parse import quote, unquote

_UNSAFE_ASCII = re.compile(r'[^\x20-\x7e]|["\\%]')
_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\\x00-\x1f\x7f]|\\[\x20-\x7e])*"'
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}(?:[ \t]*;[ \t]*{_TOKEN}=(?:{_TOKEN}|{_QUOTED}))*")
MAX_CONTENT_TYPE = 255
_RANGE_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
_PAST_ANY_END = 1 << 62  # a byte position larger than any object


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII ``filename`` and, when needed, ``filename*`` (RFC 6266).

    Quotes, backslashes and control characters never reach the header: the
    ASCII fallback replaces them with ``_`` and ``filename*`` percent-encodes.

    >>> content_disposition("report.pdf")
    'attachment; filename="report.pdf"'
    >>> content_disposition('na\\u00efve "q".txt')
    'attachment; filename="na_ve _q_.txt"; filename*=UTF-8\\'\\'na%C3%AFve%20%22q%22.txt'
    >>> print(content_disposition("a\\r\\nSet-Cookie: x=1"))
    attachment; filename="a__Set-Cookie: x=1"; filename*=UTF-8''a%0D%0ASet-Cookie%3A%20x%3D1
    """
    fallback = _UNSAFE_ASCII.sub("_", filename) or "download"
    header = f'attachment; filename="{fallback}"'
    if fallback != filename:
        header += "; filename*=UTF-8''" + quote(filename.encode("utf-8", "replace"), safe="")
    return header


def disposition_filename(header: str) -> str | None:
    """The file name a request's ``Content-Disposition`` carries, if any.

    ``filename*`` (RFC 8187, UTF-8) wins over ``filename``.

    >>> disposition_filename('attachment; filename="a b.txt"')
    'a b.txt'
    >>> disposition_filename("attachment; filename=x.bin; filename*=UTF-8''%C3%A9.bin")
    'é.bin'
    >>> disposition_filename("inline") is None
    True
    """
    plain: str | None = None
    extended: str | None = None
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        name = name.strip().lower()
        value = value.strip()
        if name == "filename*":
            charset, _, rest = value.partition("'")
            _, _, encoded = rest.partition("'")
            if charset.lower() == "utf-8" and encoded:
                extended = unquote(encoded, errors="replace")
        elif name == "filename" and value:
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            plain = value
    return extended or plain


def clean_content_type(value: str | None) -> str | None:
    """``value`` if it is a well-formed media type (RFC 9110 8.3.1), else None.

    >>> clean_content_type("text/plain; charset=utf-8")
    'text/plain; charset=utf-8'
    >>> clean_content_type("text/html\\r\\nX-Evil: 1") is None
    True
    >>> clean_content_type("nonsense") is None
    True
    """
    if not value:
        return None
    value = value.strip()
    if len(value) > MAX_CONTENT_TYPE or not _MEDIA_TYPE.fullmatch(value):
        return None
    return value


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The one byte range ``header`` asks of ``size`` bytes: ``(first, last)`` inclusive.

    None means "send the whole object": the header is not a single,
    syntactically valid ``bytes`` range (RFC 9110 14.2 lets a server ignore
    it then, and multiple ranges may also be answered with the whole body).
    Raises ``ValueError`` when the range is valid but unsatisfiable (416).

    >>> parse_range("bytes=0-99", 1000)
    (0, 99)
    >>> parse_range("bytes=900-", 1000)
    (900, 999)
    >>> parse_range("bytes=-100", 1000)
    (900, 999)
    >>> parse_range("bytes=500-5000", 1000)
    (500, 999)
    >>> parse_range("bytes=0-1,5-6", 1000) is None
    True
    >>> parse_range("bytes=0-" + "9" * 5000, 1000), parse_range("bytes=-" + "9" * 5000, 1000)
    ((0, 999), (0, 999))
    >>> parse_range("bytes=\u0663-5", 1000) is None  # an Arabic-Indic digit is not a DIGIT
    True
    >>> parse_range("bytes=1000-", 1000)
    Traceback (most recent call last):
    ...
    ValueError: the range starts at or past the end of the object (1000 bytes)
    """
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes":
        return None
    match = _RANGE_SPEC.fullmatch(spec.strip())
    if match is None:
        return None  # several ranges, or not a range at all
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = _position(last)
        if suffix == 0:
            raise ValueError("a suffix range of 0 bytes selects nothing")
        if size == 0:
            return None
        return max(size - suffix, 0), size - 1
    start = _position(first)
    end = _position(last) if last else _PAST_ANY_END
    if end < start:
        return None  # invalid: ignored
    if start >= size:
        raise ValueError(f"the range starts at or past the end of the object ({size} bytes)")
    return start, min(end, size - 1)


def _position(digits: str) -> int:
    """A byte position; one of more than 18 digits is past any end (and never an
    ``int()`` of thousands of digits, which Python refuses)."""
    return int(digits) if len(digits) <= 18 else _PAST_ANY_END


def parse_http_date(value: str) -> int | None:
    """Seconds since the epoch of an HTTP date, or None when it does not parse.

    >>> parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT")
    784111777
    >>> parse_http_date("yesterday") is None
    True
    """
    try:
        parsed = email.utils.parsedate_tz(value)
        return None if parsed is None else int(email.utils.mktime_tz(parsed))
    except (TypeError, ValueError, OverflowError, IndexError):
        return None


def etag_in(header: str, etag: str, weak: bool = True) -> bool:
    """Whether the list of entity tags in ``header`` (or ``*``) matches ``etag``.

    ``weak`` comparison (for ``If-None-Match``) ignores ``W/`` prefixes;
    strong comparison (for ``If-Range``) never matches a weak tag.

    >>> etag_in('"a", W/"b"', '"b"')
    True
    >>> etag_in('W/"b"', '"b"', weak=False)
    False
    >>> etag_in("*", '"x"')
    True
    """
    if header.strip() == "*":
        return True
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate.startswith("W/"):
            if not weak:
                continue
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False
