"""The blobs a REAPI ``ActionResult`` names, read from its protocol-buffer wire format.

Bazel's HTTP remote cache stores an action's result under ``ac/<hash>``: a
``build.bazel.remote.execution.v2.ActionResult`` message whose outputs are
blobs under ``cas/<hash>``.  A result whose blobs are gone (evicted, or never
stored) makes Bazel fail late instead of rerunning the action, so a cache
checks them, as bazel-remote does.  Only the few fields that name blobs are
read here, by hand (the message layout is public; a protobuf runtime for a
handful of field numbers would be a large dependency):

``ActionResult``     2 ``output_files`` (``OutputFile``), 3 ``output_directories``
                     (``OutputDirectory``), 6 ``stdout_digest``, 8 ``stderr_digest``
``OutputFile``       2 ``digest``, 5 ``contents`` (the bytes inlined: no blob needed)
``OutputDirectory``  3 ``tree_digest`` (a ``Tree`` blob)
``Tree``             1 ``root``, 2 ``children`` (``Directory`` each)
``Directory``        1 ``files`` (``FileNode``: 2 ``digest``), 2 ``directories``
                     (``DirectoryNode``: 2 ``digest``)
``Digest``           1 ``hash`` (hex), 2 ``size_bytes``

The blobs checked are bazel-remote's (``GetValidatedActionResult``): each
output file's unless its contents are inlined, each output directory's
``Tree`` and every file in it, stdout's and stderr's; an output file without
a digest, or a directory without its ``Tree``, is malformed, as bazel-remote's
``validate.ActionResult`` says.  (``root_directory_digest``, field 5 of
``OutputDirectory``, is not: bazel-remote does not require that blob either.)
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


@dataclass(frozen=True, slots=True)
class Outputs:
    """The blobs an ``ActionResult`` needs, in the order it names them."""

    files: list[Digest]  # output files' (not inlined), then stdout's and stderr's
    trees: list[Digest]  # output directories' Tree blobs (their files: tree_digests)


def output_digests(action_result: bytes) -> Outputs:
    """The blobs an ``ActionResult`` needs (see the module's doc).

    >>> output_digests(bytes.fromhex("3206") + b"\\x0a\\x02ab\\x10\\x07")  # stdout_digest
    Outputs(files=[Digest(hash='ab', size=7)], trees=[])
    """
    files: list[Digest] = []
    trees: list[Digest] = []
    std: list[Digest] = []
    for number, _, value in _fields(action_result):
        if number == 2:
            found = {n: v for n, _, v in _fields(_bytes(value)) if n in (2, 5)}
            if 2 not in found:
                raise MalformedMessage("an output file has no digest")
            if not found.get(5):
                files.append(_digest(found[2]))
        elif number == 3:
            tree = [v for n, _, v in _fields(_bytes(value)) if n == 3]
            if not tree:
                raise MalformedMessage("an output directory has no tree digest")
            trees.append(_digest(tree[-1]))
        elif number in (6, 8):
            std.append(_digest(value))
    return Outputs(files + std, trees)


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
    length-delimited one.  (One-byte keys and lengths, nearly all of them, are read
    inline: a check of every read of an ``ac/`` entry parses one.)"""
    position, end = 0, len(data)
    while position < end:
        key = data[position]
        if key < 0x80:
            position += 1
        else:
            key, position = _varint(data, position)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise MalformedMessage("field number 0")
        if wire == LENGTH:
            length = data[position] if position < end else 0x80
            if length < 0x80:
                position += 1
            else:
                length, position = _varint(data, position)
            stop = position + length
            if stop > end:
                raise MalformedMessage("a length-delimited field runs past the end")
            yield number, wire, data[position:stop]
            position = stop
        elif wire == VARINT:
            value, position = _varint(data, position)
            yield number, wire, value
        elif wire in (FIXED64, FIXED32):
            width = 8 if wire == FIXED64 else 4
            if position + width > end:
                raise MalformedMessage("a fixed-width field runs past the end")
            yield number, wire, int.from_bytes(data[position : position + width], "little")
            position += width
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
