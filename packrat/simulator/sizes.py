"""Parse cache sizes given as ``10%`` (of a trace's unique bytes) or as ``packrat.ini`` does."""

from __future__ import annotations

import re

from packrat.core.settings import parse_size as parse_bytes

_PERCENT = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*%\s*")


def parse_size(text: str, unique_bytes: int) -> int:
    """Bytes for ``text``: a percentage of ``unique_bytes``, or a size as ``max_size`` takes it.

    >>> parse_size("10%", 1000), parse_size("64M", 0), parse_size("1.5KiB", 0)
    (100, 67108864, 1536)
    """
    match = _PERCENT.fullmatch(text)
    if match:
        return int(unique_bytes * float(match[1]) / 100)
    try:
        return parse_bytes(text)
    except ValueError as e:
        raise ValueError(f"not a cache size: {e} (or a percentage: 10%)") from None
