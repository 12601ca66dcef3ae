"""An object's metadata in the store: S3 user metadata <-> ``ObjectMeta``.

Each object Packrat puts in the bucket carries what its local trailer holds,
as ``x-amz-meta-packrat-*`` headers, so a node that fetches it can verify
it and answer with the same headers as the node that stored it:

* ``packrat-sha256``, ``packrat-xxh3``: hex digests of the data (the sha256 is
  checked before a fetched object is answered as a clean 200);
* ``packrat-version``: the commit number of the upload on the node that
  received it (nanoseconds, the node's clock; see ``ObjectWriter``), which
  orders versions of a key: an older one never replaces a newer one;
* ``packrat-stored-at``: the upload's Unix time (``Last-Modified``);
* ``packrat-filename``: the uploaded name, percent-encoded UTF-8 (header
  values are ASCII);
* ``packrat-headers``: the headers stored with the object (``ObjectMeta.headers``,
  turbo's ``x-artifact-*``), as ``name=value&...`` with both percent-encoded,
  when it has some;

and the object's ``Content-Type`` is the uploaded type.  An object without
valid Packrat metadata (put there by another program) is not served.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote

from packrat.store import ObjectMeta
from packrat.store.format import MAX_HEADERS, header_problem

_HEX64 = re.compile(r"[0-9a-f]{64}")
_HEX32 = re.compile(r"[0-9a-f]{32}")
_PRINTABLE = re.compile(r"[\x20-\x7e]{1,255}")
_DIGITS = re.compile(r"[0-9]{1,20}")
MAX_FILENAME = 1024  # characters, as the upload path keeps them


@dataclass(frozen=True, slots=True)
class Stored:
    """An object as the store holds it: its metadata, version and ETag."""

    meta: ObjectMeta  # ``fetched_version`` is ``version``
    version: int
    etag: str


def store_key(prefix: str, key: str) -> str:
    """The object's name in the bucket.

    >>> store_key("cache/", "builds/app.tar.gz")
    'cache/builds/app.tar.gz'
    """
    return prefix + key


def encode(meta: ObjectMeta, version: int) -> dict[str, str]:
    """The user metadata to put with ``meta``'s object, stored under ``version``."""
    fields = {
        "packrat-sha256": meta.sha256,
        "packrat-version": str(version),
        "packrat-stored-at": repr(float(meta.stored_at)),
        "packrat-filename": quote(meta.filename, safe=""),
    }
    if meta.xxh3:
        fields["packrat-xxh3"] = meta.xxh3
    if meta.headers:
        fields["packrat-headers"] = "&".join(
            f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in meta.headers
        )
    return fields


def decode_headers(text: str) -> tuple[tuple[str, str], ...] | None:
    """The headers of ``packrat-headers``; None when it is not what ``encode`` writes.

    >>> decode_headers("x-artifact-duration=1500&x-artifact-tag=a%2Bb%3D")
    (('x-artifact-duration', '1500'), ('x-artifact-tag', 'a+b='))
    >>> decode_headers("x-a=%0D%0ASet-Cookie%3A%20b") is None, decode_headers("")
    (True, ())
    """
    if not text:
        return ()
    headers = []
    for pair in text.split("&"):
        name, sep, value = pair.partition("=")
        try:
            name, value = unquote(name, errors="strict"), unquote(value, errors="strict")
        except UnicodeDecodeError:
            return None
        if not sep or header_problem(name, value) is not None:
            return None
        headers.append((name, value))
    return tuple(headers) if len(headers) <= MAX_HEADERS else None


def decode(
    key: str, metadata: Mapping[str, str], content_type: str | None, size: int, etag: str
) -> Stored | None:
    """The object's ``Stored`` from a HEAD or GET answer; None when it is not Packrat's.

    ``metadata`` is the user metadata (names lowercased, as boto3 gives it).
    Never raises on what a store sends.
    """
    sha256 = metadata.get("packrat-sha256", "")
    xxh3 = metadata.get("packrat-xxh3", "")
    version_text = metadata.get("packrat-version", "")
    if not _HEX64.fullmatch(sha256) or (xxh3 and not _HEX32.fullmatch(xxh3)):
        return None
    if not _DIGITS.fullmatch(version_text) or type(size) is not int or size < 0:
        return None
    try:
        stored_at = float(metadata.get("packrat-stored-at", ""))
        filename = unquote(metadata.get("packrat-filename", ""), errors="strict")
    except (ValueError, UnicodeDecodeError):
        return None
    if not math.isfinite(stored_at) or stored_at < 0:
        return None
    headers = decode_headers(metadata.get("packrat-headers", ""))
    if headers is None:
        return None
    if not filename or len(filename) > MAX_FILENAME or "\x00" in filename:
        filename = key.rsplit("/", 1)[-1]
    if content_type is None or not _PRINTABLE.fullmatch(content_type):
        content_type = "application/octet-stream"
    version = int(version_text)
    meta = ObjectMeta(
        key=key,
        filename=filename,
        content_type=content_type,
        size=size,
        sha256=sha256,
        stored_at=stored_at,
        xxh3=xxh3,
        fetched_version=version or 1,
        headers=headers,
    )
    return Stored(meta, version, etag)


def as_fetched(meta: ObjectMeta, version: int) -> ObjectMeta:
    """``meta`` of a local object marked as fetched from the store at ``version``."""
    return replace(meta, fetched_version=version or 1)
