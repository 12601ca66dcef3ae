"""Overwrites are atomic: readers see the old object or the new one, never a mix."""

from __future__ import annotations

import hashlib
import threading
import time

import requests

VERSIONS = [bytes([n]) * (256 * 1024 + n * 4099) for n in range(4)]
DIGESTS = {hashlib.sha256(v).hexdigest(): n for n, v in enumerate(VERSIONS)}


def test_concurrent_readers_never_see_a_torn_object(packrat_server):
    url = f"{packrat_server.url}/shared/key"
    assert packrat_server.upload("shared/key", VERSIONS[0]).status_code == 200
    stop = threading.Event()
    seen: list[int] = []
    problems: list[str] = []

    def reader() -> None:
        session = requests.Session()
        while not stop.is_set():
            reply = session.get(url, timeout=30)
            if reply.status_code != 200:
                problems.append(f"status {reply.status_code}")
                continue
            version = DIGESTS.get(hashlib.sha256(reply.content).hexdigest())
            if version is None:
                problems.append(f"torn read of {len(reply.content)} bytes")
            elif reply.headers["ETag"].strip('"') != hashlib.sha256(reply.content).hexdigest():
                problems.append("ETag does not match the body")
            else:
                seen.append(version)

    readers = [threading.Thread(target=reader) for _ in range(4)]
    for thread in readers:
        thread.start()
    deadline = time.monotonic() + 20
    writes = 0
    while writes < 40 and time.monotonic() < deadline:
        version = VERSIONS[writes % len(VERSIONS)]
        assert packrat_server.upload("shared/key", version).status_code == 200
        writes += 1
    stop.set()
    for thread in readers:
        thread.join(30)
    assert problems == []
    assert len(seen) > 20
    assert len(set(seen)) > 1  # the readers really did overlap the overwrites
    final = packrat_server.get("shared/key").content
    assert final == VERSIONS[(writes - 1) % len(VERSIONS)]
