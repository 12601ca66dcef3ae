"""``packrat.buildtools.reapi``: the blobs an ActionResult and a Tree name.

Messages are built here by an encoder of the wire format written for the
test, with unknown fields of every wire type mixed in (readers skip them);
test_bazel.py reads the ActionResults the real Bazel stores.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from packrat.buildtools.reapi import (
    Digest,
    MalformedMessage,
    Outputs,
    output_digests,
    tree_digests,
)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value > 0x7F else 0))
        value >>= 7
        if not value:
            return bytes(out)


def field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value


def noise(seed: int) -> bytes:
    """Fields a reader must skip: a varint, a fixed64, a fixed32, a string."""
    return (
        field(900, seed)
        + varint(901 << 3 | 1) + seed.to_bytes(8, "little")
        + varint(902 << 3 | 5) + (seed & 0xFFFFFFFF).to_bytes(4, "little")
        + field(903, b"x" * (seed % 5))
    )  # fmt: skip


def digest(d: Digest, extra: bool) -> bytes:
    return field(1, d.hash.encode()) + field(2, d.size) + (noise(d.size) if extra else b"")


DIGESTS = st.builds(
    Digest, st.text("0123456789abcdef", min_size=1, max_size=128), st.integers(0, 2**63 - 1)
)


@given(
    st.lists(st.tuples(DIGESTS, st.booleans()), max_size=4),
    st.lists(st.tuples(DIGESTS, st.none() | DIGESTS), max_size=3),
    st.none() | DIGESTS,
    st.none() | DIGESTS,
    st.integers(-(2**31), 2**31 - 1),
    st.booleans(),
)
def test_output_digests_are_the_blobs_bazel_remote_checks(
    files, directories, stdout, stderr, code, extra
):
    message = b""
    expected = Outputs([], [])
    for n, (d, inlined) in enumerate(files):
        contents = field(5, b"inlined bytes") if inlined else b""
        output = field(1, f"out/{n}".encode()) + field(2, digest(d, extra)) + field(4, 1)
        message += field(2, output + contents)  # 4: is_executable; 5: the contents inlined
        if not inlined:
            expected.files.append(d)
    for tree, root in directories:
        body = field(1, b"dir") + field(3, digest(tree, extra)) + field(4, 1)
        if root is not None:  # root_directory_digest: not a blob bazel-remote requires
            body += field(5, digest(root, extra))
        expected.trees.append(tree)
        message += field(3, body)
    message += field(4, code & (2**64 - 1))  # exit_code, a negative int32 in ten bytes
    for number, d in ((6, stdout), (8, stderr)):
        if d is not None:
            message += field(number, digest(d, extra))
            expected.files.append(d)
    if extra:
        message = noise(len(message)) + message + noise(7)
    assert output_digests(message) == expected


@given(st.lists(st.lists(DIGESTS, max_size=3), min_size=1, max_size=4))
def test_tree_digests_are_the_files_of_every_directory(directories):
    def directory(files: list[Digest]) -> bytes:
        body = b"".join(field(1, field(1, b"f") + field(2, digest(d, False))) for d in files)
        return body + field(2, field(1, b"sub") + field(2, digest(Digest("ab", 1), False)))

    root, *children = directories
    tree = field(1, directory(root)) + b"".join(field(2, directory(c)) for c in children)
    assert tree_digests(tree) == [d for files in directories for d in files]


@pytest.mark.parametrize(
    "message",
    [
        b"\x32",  # a length-delimited field with no length
        b"\x32\x05ab",  # runs past the end
        b"\x33",  # wire type 3 (a group)
        b"\x00",  # field number 0
        b"\x30" + b"\xff" * 11,  # a varint longer than ten bytes
        field(6, field(1, b"NOT-HEX") + field(2, 1)),
        field(6, field(1, b"ab") + field(2, 2**63)),  # a negative size
        field(6, 5),  # a digest that is not a message
        field(6, field(1, b"ab") + field(2, b"x")),  # a size that is not a varint
        field(2, field(1, b"out/a")),  # an output file without a digest
        field(3, field(1, b"dir") + field(5, field(1, b"ab"))),  # a directory without its Tree
    ],
)
def test_malformed_messages_are_refused(message):
    with pytest.raises(MalformedMessage):
        output_digests(message)
