"""Parse cache sizes given as ``10%`` (of a trace's unique bytes) or ``64M``."""

from __future__ import annotations

import re

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(%|[KMGT]?)(?:I?B)?\s*$", re.IGNORECASE)


def parse_size(text: str, unique_bytes: int) -> int:
    """Bytes for ``text``: a percentage of ``unique_bytes`` or a binary size.

    >>> parse_size("10%", 1000), parse_size("64M", 0), parse_size("1.5KiB", 0)
    (100, 67108864, 1536)
    """
    match = _SIZE.match(text)
    if match is None:
        raise ValueError(f"not a cache size: {text!r} (try 10% or 64M)")
    number, unit = float(match[1]), match[2].upper()
    if unit == "%":
        return int(unique_bytes * number / 100)
    return int(number * _UNITS[unit])
