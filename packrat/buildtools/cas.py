"""Content-addressed keys: ``.../cas/<digest>``, as Bazel's HTTP remote cache writes them.

A body stored under such a key must hash to it, or a poisoned output could be
served to every build that asks for that digest (bazel-remote refuses it
too).  The rule holds however the key is spelled: the ``cas`` segment in any
case, anywhere (``/CAS/…``, ``/a/Cas/…``), and the digest's hex digits in
any case.  Bazel names blobs by sha256, or by BLAKE3 with
``--digest_function=blake3`` (Bazel 6.4 and later); both are 64 hex digits,
so a body is accepted when either of its digests is the one the key names.

Beside them, ``.../ac/<digest>`` holds an action's result, whose output
blobs live in the ``cas/`` beside it: ``P/ac/<digest>`` names blobs
``P/cas/<blob digest>`` (``blobs_of``), as Bazel lays out both under one
``--remote_cache`` URL.
"""

from __future__ import annotations

import re

_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def content_address(key: str) -> str | None:
    """The digest a content-addressed key names, in lower case; None for any other key.

    >>> content_address("bazel/cas/" + "A" * 64) == "a" * 64
    True
    >>> content_address("x/CAS/" + "0" * 64) == "0" * 64, content_address("ac/" + "0" * 64)
    (True, None)
    """
    parent, _, name = key.rpartition("/")
    if parent.rpartition("/")[2].lower() == "cas" and _HEX64.fullmatch(name):
        return name.lower()
    return None


def body_matches(expected: str, sha256: str, blake3: str) -> bool:
    """Whether a body whose digests are ``sha256`` and ``blake3`` (hex) is the one
    ``expected`` (a ``content_address``) names.

    >>> body_matches("ab" * 32, "ab" * 32, "00" * 32), body_matches("ab" * 32, "0" * 64, "1" * 64)
    (True, False)
    """
    return expected in (sha256.lower(), blake3.lower())


def blobs_of(key: str) -> str | None:
    """For an action-cache key ``P/ac/<64 hex digits>`` (``ac`` in any case), the prefix
    ``P/cas/`` its blobs are under; None for any other key.

    >>> blobs_of("bazel/ac/" + "a" * 64), blobs_of("AC/" + "B" * 64), blobs_of("bazel/ac/x")
    ('bazel/cas/', 'cas/', None)
    """
    if key[-65:-64] != "/":  # no "/" then 64 characters: not one (most keys, at a glance)
        return None
    parent, _, name = key.rpartition("/")
    above, _, segment = parent.rpartition("/")
    if segment.lower() == "ac" and _HEX64.fullmatch(name):
        return f"{above}/cas/" if above else "cas/"
    return None
