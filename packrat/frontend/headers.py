"""Building response headers from stored, client-supplied strings."""

from __future__ import annotations

import re
from urllib.parse import quote

_UNSAFE_ASCII = re.compile(r'[^\x20-\x7e]|["\\%]')


def content_disposition(filename: str) -> str:
    """``attachment`` with an ASCII ``filename`` and, when needed, ``filename*`` (RFC 6266).

    Quotes, backslashes and control characters never reach the header: the
    ASCII fallback replaces them with ``_`` and ``filename*`` percent-encodes.

    >>> content_disposition("report.pdf")
    'attachment; filename="report.pdf"'
    >>> content_disposition('na\\u00efve "q".txt')
    'attachment; filename="na_ve _q_.txt"; filename*=UTF-8\\'\\'na%C3%AFve%20%22q%22.txt'
    """
    fallback = _UNSAFE_ASCII.sub("_", filename) or "download"
    header = f'attachment; filename="{fallback}"'
    if fallback != filename:
        header += "; filename*=UTF-8''" + quote(filename, safe="")
    return header
