"""The build tools' APIs with an object store behind the cache (SeaweedFS, ``seaweedfs``).

Two nodes share the store: the first stores, the second starts with an empty
disk, so what it knows of the first's objects it knows through the store.

* Bazel: an action result whose blobs are only in the store is served (the
  blobs asked for with ``HEAD``), and is a miss once a blob is deleted.
* Turborepo: the ``x-artifact-*`` headers kept with an artifact travel in
  the store's metadata: the second node's ``HEAD``, ``GET`` and query answer
  them.
* Nx: a record held only in the store is not replaced (409).
"""

from __future__ import annotations

import requests

from tests.support.waiting import wait_until
from tests.test_action_results import ac_key, action_result, put, put_blobs
from tests.test_objectstore import in_store, start_node, store_requests
from tests.test_turborepo import put_artifact


def test_a_node_with_an_empty_disk_answers_through_the_store(seaweedfs, objectstore, tmp_path):
    first = start_node(tmp_path / "a", objectstore)
    second = None
    try:
        outputs = put_blobs(first.url, "tier", b"output one", b"output two" * 1000)
        key = ac_key("tier")
        result = action_result(outputs)
        assert put(first.url, key, result).status_code == 200
        headers = {"x-artifact-duration": "777", "x-artifact-tag": "c2lnbmVk"}
        assert put_artifact(first.url, "beef", b"artifact", "?slug=s", **headers).ok
        record = "nx/v1/cache/987654321"
        assert put(first.url, record, b"first outputs").status_code == 200
        stored = [key, "v8/artifacts/s/beef", record, *(f"tier/cas/{d.hash}" for d in outputs)]
        for name in stored:
            wait_until(lambda name=name: in_store(seaweedfs, objectstore, name))
        second = start_node(tmp_path / "b", objectstore)

        # Bazel: the blobs are asked of the store, and count.
        asked = store_requests(second)
        reply = second.get(key)
        assert reply.status_code == 200 and reply.content == result
        assert store_requests(second) - asked >= 1 + len(outputs)  # the entry, then its blobs

        # Turborepo: the headers come from the store's metadata, then from the local copy.
        query = requests.post(f"{second.url}/v8/artifacts?slug=s", json={"hashes": ["beef"]})
        assert query.json()["beef"] == {"size": 8, "taskDurationMs": 777, "tag": "c2lnbmVk"}
        for method in ("HEAD", "GET", "GET"):
            reply = requests.request(method, f"{second.url}/v8/artifacts/beef?slug=s", timeout=10)
            assert reply.status_code == 200
            assert {name: reply.headers[name] for name in headers} == headers

        # Nx: a record only in the store is kept.
        other = put(second.url, record, b"other outputs")
        assert other.status_code == 409 and other.headers["Content-Type"] == "text/plain"

        # Bazel again: an output deleted everywhere makes the entry a miss.
        gone = f"tier/cas/{outputs[1].hash}"
        assert requests.delete(f"{first.url}/{gone}", timeout=10).status_code == 200
        assert in_store(seaweedfs, objectstore, gone) is None
        assert second.get(key).status_code == 404
    finally:
        for node in (first, second):
            if node is not None and node.process.poll() is None:
                node.stop()
