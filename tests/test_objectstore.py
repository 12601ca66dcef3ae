"""Packrat in front of a real S3-compatible store (SeaweedFS on loopback, ``seaweedfs``).

Write-through (an upload reaches the store in the background), read-through
(a node with an empty disk serves what the store has, verified, and keeps
it), HEAD, exists and ranges of objects only in the store, deletes, the
versions that keep an older upload from replacing a newer one, the backlog
across ``kill -9``, the store stopped and started again mid-traffic, a
corrupted object in the store, and credentials that never show.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import signal
import time
from pathlib import Path

import pytest
import requests
from tests.conftest import BUCKET, PackratProcess, free_port, wait_until, write_config

from bench.seaweedfs import SECRET_KEY


def start_node(
    directory: Path, objectstore: dict, wait: bool = True, **sections: dict
) -> PackratProcess:
    """``packrat serve`` with a root of its own, in front of the test's store prefix."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    settings = {**objectstore, "uploader_endpoint": f"ipc://{directory}/run/uploader.sock"}
    config = write_config(
        directory / "packrat.ini", directory, port, objectstore=settings, **sections
    )
    node = PackratProcess(["serve"], config, directory, port)
    if wait:
        node.wait_ready()
    return node


def store_key(objectstore: dict, key: str) -> str:
    return objectstore["prefix"] + key


def in_store(seaweedfs, objectstore: dict, key: str) -> dict | None:
    """The store's HEAD of ``key`` (None when absent)."""
    client = seaweedfs.client()
    try:
        return client.head_object(Bucket=BUCKET, Key=store_key(objectstore, key))
    except client.exceptions.ClientError as e:
        if e.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return None
        raise


def store_bytes(seaweedfs, objectstore: dict, key: str) -> bytes:
    reply = seaweedfs.client().get_object(Bucket=BUCKET, Key=store_key(objectstore, key))
    return reply["Body"].read()


def metric(node: PackratProcess, name: str, labels: str = "") -> float:
    """The value of one sample of ``GET /metrics`` (0 when absent)."""
    text = requests.get(node.url + "/metrics", timeout=10).text
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)"
    match = re.search("^" + pattern + "$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def local_file(node: PackratProcess, key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()
    return node.cache / "objects" / digest[:2] / digest


@pytest.fixture
def nodes(tmp_path: Path):
    """Stops every node a test starts (``started.append(node)``)."""
    started: list[PackratProcess] = []
    yield started
    for node in started:
        if node.process.poll() is None:
            node.stop()


def test_write_through_then_read_through_on_an_empty_node(seaweedfs, objectstore, nodes, tmp_path):
    first = start_node(tmp_path / "a", objectstore)
    nodes.append(first)
    objects = {
        "wt/small.txt": b"hello from packrat\n",
        "wt/medium.bin": secrets.token_bytes(300_000),
        "wt/large.bin": secrets.token_bytes(3_000_000),
        "wt/empty": b"",
    }
    for key, data in objects.items():
        reply = first.upload(key, data, filename=f"n\u00e9-{key.rsplit('/', 1)[1]}")
        assert reply.status_code == 200, reply.text
    for key, data in objects.items():
        head = wait_until(lambda key=key: in_store(seaweedfs, objectstore, key))
        metadata = head["Metadata"]
        assert metadata["packrat-sha256"] == hashlib.sha256(data).hexdigest()
        assert int(metadata["packrat-version"]) == local_file(first, key).stat().st_mtime_ns
        assert store_bytes(seaweedfs, objectstore, key) == data
    first.stop()

    second = start_node(tmp_path / "b", objectstore)
    nodes.append(second)
    # HEAD and exists of objects only in the store: answered from its metadata, not staged.
    head = requests.head(second.url + "/wt/medium.bin", timeout=10)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "300000"
    assert head.headers["ETag"] == f'"{hashlib.sha256(objects["wt/medium.bin"]).hexdigest()}"'
    assert "n%C3%A9-medium.bin" in head.headers["Content-Disposition"]
    assert second.exists("wt/small.txt")
    assert not second.exists("wt/absent")
    assert not local_file(second, "wt/medium.bin").exists()
    # A range of an object only in the store.
    ranged = second.get("wt/large.bin", headers={"Range": "bytes=1000-2999"})
    assert ranged.status_code == 206
    assert ranged.content == objects["wt/large.bin"][1000:3000]
    assert ranged.headers["Content-Range"] == "bytes 1000-2999/3000000"
    # Whole GETs: the store's bytes, and then the object is local.
    for key, data in objects.items():
        reply = second.get(key)
        assert reply.status_code == 200, (key, reply.text)
        assert reply.content == data
        assert reply.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert second.get("wt/absent").status_code == 404
    for key in objects:
        wait_until(lambda key=key: local_file(second, key).exists())
    # A local hit never asks the store.
    gets = metric(second, "packrat_objectstore_requests_total", 'op="get"')
    heads = metric(second, "packrat_objectstore_requests_total", 'op="head"')
    for key, data in objects.items():
        assert second.get(key).content == data
        assert second.exists(key)
    assert metric(second, "packrat_objectstore_requests_total", 'op="get"') == gets
    assert metric(second, "packrat_objectstore_requests_total", 'op="head"') == heads
    # What was fetched is not sent back: the store still has the first node's versions.
    time.sleep(1.5)
    assert metric(second, "packrat_objectstore_requests_total", 'op="put"') == 0
    # Deletes reach the store; eviction never does.
    assert requests.delete(second.url + "/wt/small.txt", timeout=10).status_code == 200
    assert in_store(seaweedfs, objectstore, "wt/small.txt") is None
    assert second.get("wt/small.txt").status_code == 404
    assert requests.delete(second.url + "/wt/small.txt", timeout=10).status_code == 404
