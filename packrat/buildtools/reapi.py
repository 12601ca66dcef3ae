"""The blobs a REAPI ``ActionResult`` names, read from its protocol-buffer wire format.

Bazel's HTTP remote cache stores an action's result under ``ac/<hash>``: a
``build.bazel.remote.execution.v2.ActionResult`` message whose outputs are
blobs under ``cas/<hash>``.  A result whose blobs are gone (evicted, or never
stored) makes Bazel fail late instead of rerunning the action, so a cache
checks them, as bazel-remote does.  Only the few fields that name blobs are
read here, by hand (the message layout is public; a protobuf runtime for four
field numbers would be a large dependency):

``ActionResult``     2 ``output_files`` (``OutputFile``), 3 ``output_directories``
                     (``OutputDirectory``), 6 ``stdout_digest``, 8 ``stderr_digest``
``OutputFile``       2 ``digest``
``OutputDirectory``  3 ``tree_digest`` (a ``Tree`` blob), 5 ``root_directory_digest``
``Tree``             1 ``root``, 2 ``children`` (``Directory`` each)
``Directory``        1 ``files`` (``FileNode``: 2 ``digest``), 2 ``directories``
                     (``DirectoryNode``: 2 ``digest``)
``Digest``           1 ``hash`` (hex), 2 ``size_bytes``

Every other field is skipped by its wire type, as protobuf readers do.  A
message that is not well-formed raises ``MalformedMessage``.  The empty blob
(``size`` 0) is named like any other; it needs no storage.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

VARINT, FIXED64, LENGTH, FIXED32 = 0, 1, 2, 5
_HEX = re.compile(rb"[0-9a-f]{1,128}")  # sha256 and BLAKE3: 64; other digest functions up to 128


class MalformedMessage(ValueError):
    """Bytes that are not the protocol-buffer message they should be."""


@dataclass(frozen=True, slots=True)
class Digest:
    hash: str  # lower-case hex
    size: int


def output_digests(action_result: bytes) -> list[Digest]:
    """The blobs an ``ActionResult`` names, in order: each output file's, each output
    directory's ``Tree`` (and root ``Directory``), then stdout's and stderr's.

    >>> output_digests(bytes.fromhex("3206") + b"\\x0a\\x02ab\\x10\\x07")  # stdout_digest
    [Digest(hash='ab', size=7)]
    """
    found = []
    for number, _, value in _fields(action_result):
        if number == 2:
            found += [_digest(v) for n, _, v in _fields(_bytes(value)) if n == 2]
        elif number == 3:
            found += [_digest(v) for n, _, v in _fields(_bytes(value)) if n in (3, 5)]
        elif number in (6, 8):
            found.append(_digest(value))
    return found


def tree_digests(tree: bytes) -> list[Digest]:
    """The blobs of every file in a ``Tree`` (its root and all its children), in order."""
    found = []
    for number, _, directory in _fields(tree):
        if number in (1, 2):
            for field, _, node in _fields(_bytes(directory)):
                if field == 1:  # FileNode; DirectoryNodes (2) name Directories the Tree holds
                    found += [_digest(v) for n, _, v in _fields(_bytes(node)) if n == 2]
    return found


def _digest(value: int | bytes) -> Digest:
    hash_, size = b"", 0
    for number, wire, field in _fields(_bytes(value)):
        if number == 1:
            hash_ = _bytes(field)
        elif number == 2:
            if wire != VARINT:
                raise MalformedMessage("Digest.size_bytes is not a varint")
            assert isinstance(field, int)
            size = field
    if not _HEX.fullmatch(hash_):
        raise MalformedMessage(f"Digest.hash is not lower-case hex: {hash_[:140]!r}")
    if size >= 1 << 63:
        raise MalformedMessage("Digest.size_bytes is negative")
    return Digest(hash_.decode("ascii"), size)


def _bytes(value: int | bytes) -> bytes:
    if not isinstance(value, bytes):
        raise MalformedMessage("a message or string field is not length-delimited")
    return value


def _fields(data: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """``(field number, wire type, value)`` of each field: an int, or the bytes of a
    length-delimited one."""
    position, end = 0, len(data)
    while position < end:
        key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise MalformedMessage("field number 0")
        if wire == VARINT:
            value, position = _varint(data, position)
            yield number, wire, value
        elif wire in (FIXED64, FIXED32):
            width = 8 if wire == FIXED64 else 4
            if position + width > end:
                raise MalformedMessage("a fixed-width field runs past the end")
            yield number, wire, int.from_bytes(data[position : position + width], "little")
            position += width
        elif wire == LENGTH:
            length, position = _varint(data, position)
            if position + length > end:
                raise MalformedMessage("a length-delimited field runs past the end")
            yield number, wire, bytes(data[position : position + length])
            position += length
        else:
            raise MalformedMessage(f"wire type {wire} (groups are not used by REAPI)")


def _varint(data: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    for index in range(position, min(position + 10, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    raise MalformedMessage("a varint is cut short or longer than 10 bytes")
