"""The object file format: the uploaded bytes, then a trailer with the metadata.

::

    <data><msgpack metadata><uint32 metadata length><b"PKRT1\\n">

Data and metadata in one file, so one atomic rename publishes both and a
restart can rebuild the index from the files alone.
"""

from __future__ import annotations

import functools
import os
import re
import struct
from dataclasses import dataclass, fields

import msgpack

MAGIC = b"PKRT1\n"
_LENGTH = struct.Struct("<I")
TAIL_SIZE = _LENGTH.size + len(MAGIC)
MAX_METADATA = 64 * 1024
TAIL_READ = 1024  # bytes read from an object's end to find its trailer


class CorruptObject(Exception):
    """An object file that cannot be served: unreadable trailer, wrong key, not a file.

    ``inode`` is ``(st_dev, st_ino)`` of the bad file when known, so the
    coordinator removes exactly that file and never a newer one in its place.
    """

    def __init__(self, reason: str, inode: tuple[int, int] | None = None) -> None:
        super().__init__(reason)
        self.inode = inode


@dataclass(frozen=True)
class ObjectMeta:
    """What travels with an object's bytes."""

    key: str
    filename: str
    content_type: str
    size: int  # bytes of data: what the client uploaded, without the trailer
    sha256: str  # hex digest of the data: the ETag, and what fsck checks
    stored_at: float  # Unix time of the upload
    # hex xxh3-128 of the data, what reads verify (about ten times faster than
    # sha256); "" in objects stored before it existed, which reads check by sha256
    xxh3: str = ""
    # The object store's version of an object fetched from there (the commit
    # number it was stored under, see packrat.objectstore); 0 for an object
    # uploaded here.  Written only when set, so other trailers are unchanged.
    fetched_version: int = 0
    # Headers a build tool's route stored with the object, sent back with it on
    # every read (turbo's x-artifact-duration and x-artifact-tag): (name, value)
    # pairs that ``header_problem`` allows.  Written only when set.
    headers: tuple[tuple[str, str], ...] = ()


_FIELDS = tuple(field.name for field in fields(ObjectMeta))
_WRITTEN_WHEN_SET = ("fetched_version", "headers")
# What a stored header may be: an x- name in lower case, a printable ASCII value
# (it goes back on the wire as it is, so nothing that could end a header line).
_HEADER_NAME = re.compile(r"x-[a-z0-9-]{1,62}")
_HEADER_VALUE = re.compile(r"[\x20-\x7e]{0,1024}")
MAX_HEADERS = 8


def header_problem(name: str, value: str) -> str | None:
    """Why ``(name, value)`` cannot be stored with an object and sent back, or None.

    >>> header_problem("x-artifact-duration", "1500"), header_problem("X-A", "1")
    (None, "'X-A' is not a lower-case x- header name")
    >>> header_problem("x-artifact-tag", "a\\r\\nSet-Cookie: b")
    'the value of x-artifact-tag has characters other than printable ASCII, or is too long'
    """
    if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name):
        return f"{name!r} is not a lower-case x- header name"
    if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
        return f"the value of {name} has characters other than printable ASCII, or is too long"
    return None


def encode_trailer(meta: ObjectMeta) -> bytes:
    body = msgpack.packb(
        {
            name: getattr(meta, name)
            for name in _FIELDS
            if name not in _WRITTEN_WHEN_SET or getattr(meta, name)
        }
    )
    return body + _LENGTH.pack(len(body)) + MAGIC


def read_trailer(fd: int, file_size: int, whole: bytes | None = None) -> ObjectMeta:
    """Read the metadata of the object open as ``fd`` (``file_size`` from fstat).

    One read of the file's last ``TAIL_READ`` bytes covers almost every
    trailer; a longer one (long key and filename) takes a second read.
    ``whole``: the file's bytes, already read (small objects): no read at all.
    """
    if file_size < TAIL_SIZE:
        raise CorruptObject("file too short for a trailer")
    if whole is not None:
        if len(whole) != file_size:
            raise CorruptObject(f"read {len(whole)} bytes of a {file_size}-byte file")
        span, tail = file_size, whole
    else:
        span = min(file_size, TAIL_READ)
        tail = os.pread(fd, span, file_size - span)
    if len(tail) != span or not tail.endswith(MAGIC):
        raise CorruptObject("trailer magic missing")
    (length,) = _LENGTH.unpack_from(tail, span - TAIL_SIZE)
    start = file_size - TAIL_SIZE - length
    if length > MAX_METADATA or start < 0:
        raise CorruptObject("trailer length out of range")
    if length + TAIL_SIZE <= span:
        body = bytes(tail[span - TAIL_SIZE - length : span - TAIL_SIZE])
    else:
        body = os.pread(fd, length, start)
    meta = decode_metadata(body)
    if meta.size != start:
        raise CorruptObject(f"trailer says {meta.size} bytes of data, file has {start}")
    return meta


@functools.lru_cache(maxsize=4096)
def decode_metadata(body: bytes) -> ObjectMeta:
    """The metadata of a trailer's msgpack bytes; ``CorruptObject`` if they are not sound.

    Remembered by the bytes themselves (a cache reads the same objects again
    and again): the same bytes always decode to the same, immutable, metadata,
    and bytes that do not decode raise every time.
    """
    try:
        meta = ObjectMeta(**msgpack.unpackb(body, use_list=False))
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise CorruptObject(f"trailer does not decode: {e}") from None
    if not _well_typed(meta):
        raise CorruptObject("trailer fields have the wrong types")
    return meta


def _well_typed(meta: ObjectMeta) -> bool:
    texts = (meta.key, meta.filename, meta.content_type, meta.sha256, meta.xxh3)
    return (
        all(isinstance(text, str) for text in texts)
        and type(meta.size) is int
        and type(meta.fetched_version) is int
        and isinstance(meta.stored_at, int | float)
        and (not meta.headers or _headers_sound(meta.headers))
    )


def _headers_sound(headers: object) -> bool:
    return (
        isinstance(headers, tuple)
        and len(headers) <= MAX_HEADERS
        and all(
            isinstance(pair, tuple) and len(pair) == 2 and header_problem(*pair) is None
            for pair in headers
        )
    )
