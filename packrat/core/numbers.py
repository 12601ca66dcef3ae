"""Whole numbers read from text that others wrote: headers, queries, settings, traces.

One rule for all of them: ASCII digits only, and at most ``MAX_DIGITS``.
``str.isdigit`` also takes ``²`` and other digits that ``int`` refuses (a
``ValueError`` where the caller expected a number), and ``int`` of thousands
of digits is slow and then refused by Python; 18 digits hold every size,
offset and count Packrat reads, and stay below 2**63.
"""

from __future__ import annotations

MAX_DIGITS = 18


def is_digits(text: str) -> bool:
    """Whether ``text`` is one or more ASCII digits.

    >>> is_digits("2048"), is_digits("²"), is_digits(""), is_digits("-1"), is_digits(" 1")
    (True, False, False, False, False)
    """
    return text.isascii() and text.isdigit()


def whole_number(text: str, max_digits: int = MAX_DIGITS) -> int | None:
    """``text``'s value when it is 1 to ``max_digits`` ASCII digits, else None.

    >>> whole_number("007"), whole_number("²"), whole_number("9" * 19), whole_number("1e3")
    (7, None, None, None)
    """
    return int(text) if len(text) <= max_digits and is_digits(text) else None
