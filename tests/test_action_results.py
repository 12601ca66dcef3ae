"""Bazel's action results stay usable: ``ac/`` entries whose blobs are not stored.

An upload under ``P/ac/<hash>`` must be an ``ActionResult`` whose blobs are
stored under ``P/cas/`` (400 ``invalid_action_result`` otherwise), and a read
of one whose blobs have gone since is a miss (404), so Bazel reruns the
action instead of failing on the missing output later, as bazel-remote does.
Messages are built with test_buildtools_reapi's encoder; test_bazel runs the
real Bazel with the check on (its default); test_build_tools_objectstore
checks that, with an object store behind the cache, a blob held only there
counts as stored.
"""

from __future__ import annotations

import hashlib
import os

import requests

from packrat.buildtools.reapi import Digest
from tests.test_buildtools_reapi import digest as digest_field
from tests.test_buildtools_reapi import field

EMPTY = Digest(hashlib.sha256(b"").hexdigest(), 0)


def blob(data: bytes) -> Digest:
    return Digest(hashlib.sha256(data).hexdigest(), len(data))


def encode(d: Digest) -> bytes:
    return digest_field(d, False)


def action_result(
    files: list[Digest] = (), trees: list[Digest] = (), inlined: list[Digest] = ()
) -> bytes:
    """An ActionResult as Bazel writes one: output files, directories, empty stdout/stderr."""
    message = b"".join(
        field(2, field(1, f"out/{n}".encode()) + field(2, encode(d))) for n, d in enumerate(files)
    )
    message += b"".join(
        field(2, field(1, b"inlined") + field(2, encode(d)) + field(5, b"the bytes"))
        for d in inlined
    )
    message += b"".join(field(3, field(1, b"dir") + field(3, encode(t))) for t in trees)
    return message + field(6, encode(EMPTY)) + field(8, encode(EMPTY))


def tree(*directories: list[Digest]) -> bytes:
    """A Tree: a root directory and children, each with files."""

    def directory(files: list[Digest]) -> bytes:
        return b"".join(field(1, field(1, b"f") + field(2, encode(d))) for d in files)

    root, *children = directories
    return field(1, directory(root)) + b"".join(field(2, directory(c)) for c in children)


def put(url: str, key: str, body: bytes) -> requests.Response:
    return requests.put(f"{url}/{key}", data=body, timeout=30)


def put_blobs(url: str, prefix: str, *bodies: bytes) -> list[Digest]:
    digests = []
    for body in bodies:
        d = blob(body)
        assert put(url, f"{prefix}/cas/{d.hash}", body).status_code == 200
        digests.append(d)
    return digests


def ac_key(prefix: str) -> str:
    return f"{prefix}/ac/{os.urandom(32).hex()}"


def test_an_action_result_naming_blobs_not_stored_is_refused(module_server):
    url, prefix = module_server.url, "refused"
    stored, absent = blob(b"stored output"), blob(b"never uploaded")
    put_blobs(url, prefix, b"stored output")
    for body in (action_result([stored, absent]), action_result(trees=[absent])):
        key = ac_key(prefix)
        reply = put(url, key, body)
        assert reply.status_code == 400 and reply.json()["error"] == "invalid_action_result"
        assert f"{prefix}/cas/{absent.hash}" in reply.json()["message"]
        assert module_server.exists(key) is False
    # Another prefix's blob is not this prefix's.
    reply = put(url, ac_key("elsewhere"), action_result([stored]))
    assert reply.status_code == 400
    # Not an ActionResult at all (wire type 7 does not exist).
    reply = put(url, ac_key(prefix), b"\x0f not a protocol buffer")
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_action_result"
    # Complete: stored; inlined contents and the empty blob need no blob.
    key = ac_key(prefix)
    body = action_result([stored], inlined=[absent])
    assert put(url, key, body).status_code == 200
    assert module_server.get(key).content == body
    assert module_server.staging_files() == []


def test_an_action_result_whose_blobs_are_gone_is_a_miss(module_server):
    url, prefix = module_server.url, "gone"
    first, second = put_blobs(url, prefix, b"first output", b"second output")
    key = ac_key(prefix)
    body = action_result([first, second])
    assert put(url, key, body).status_code == 200
    before = module_server.stats()
    assert module_server.get(key).content == body
    assert requests.head(f"{url}/{key}", timeout=10).status_code == 200

    # An output evicted (deleted here, as eviction would): the entry is a miss.
    assert requests.delete(f"{url}/{prefix}/cas/{second.hash}", timeout=10).status_code == 200
    reply = module_server.get(key)
    assert reply.status_code == 404 and reply.json()["error"] == "not_found"
    assert second.hash in reply.json()["message"]
    assert requests.head(f"{url}/{key}", timeout=10).status_code == 404
    assert module_server.exists(key) is False
    after = module_server.stats_grown(before, hits=2, misses=2)
    assert after["misses"] - before["misses"] == 2  # GET and HEAD after the eviction

    # The output stored again (Bazel reran the action): usable again.
    put_blobs(url, prefix, b"second output")
    assert module_server.get(key).content == body
    assert module_server.exists(key) is True


def test_output_directories_need_their_tree_and_its_files(module_server):
    url, prefix = module_server.url, "trees"
    files = put_blobs(url, prefix, b"a.txt", b"b.txt", b"c.txt")
    tree_body = tree([files[0]], [files[1], files[2]])
    (tree_digest,) = put_blobs(url, prefix, tree_body)
    key = ac_key(prefix)
    body = action_result(trees=[tree_digest])
    assert put(url, key, body).status_code == 200
    assert module_server.get(key).status_code == 200
    # A file of a child directory gone: a miss.
    assert requests.delete(f"{url}/{prefix}/cas/{files[2].hash}", timeout=10).status_code == 200
    assert module_server.get(key).status_code == 404
    # A Tree whose size is not the one named: a miss.
    put_blobs(url, prefix, b"c.txt")
    wrong_size = action_result(trees=[Digest(tree_digest.hash, tree_digest.size + 1)])
    other = ac_key(prefix)
    assert put(url, other, wrong_size).status_code == 400


def test_the_check_can_be_turned_off(make_server):
    server = make_server(bazel={"check_action_results": "false"})
    key = ac_key("off")
    body = action_result([blob(b"never uploaded")])
    assert put(server.url, key, body).status_code == 200
    assert server.get(key).content == body
    assert put(server.url, ac_key("off"), b"\x0f not a protocol buffer").status_code == 200
