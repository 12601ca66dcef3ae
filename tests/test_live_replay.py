"""A slice of a real trace replayed against a live server, checked against the simulator.

The client does what a cache client does: GET the key, and on 404 POST the
object (multipart field ``file``).  Object sizes are scaled down (largest
64 KiB) so the slice runs in seconds.  The simulator is fed the very sizes
the server accounts for: the file (data plus metadata trailer) in whole
blocks plus its snapshot row (``packrat.store.accounting``), with the
server's ``low_water``.  The
live hit ratio must land within one percentage point of the simulated one.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from packrat.coordinator.index import DIR_RESERVE
from packrat.simulator.replay import replay
from packrat.simulator.traces import read_trace
from packrat.store import Layout, ObjectMeta
from packrat.store.accounting import charge, expected_charge
from packrat.store.format import encode_trailer

DATA = Path(__file__).parent / "data"
REQUESTS = 1200
LARGEST = 64 * 1024
FILENAME = "object.bin"
CONTENT_TYPE = "application/octet-stream"
TOUCH_INTERVAL = 0.005
LOW_WATER = 0.95


def scaled_slice() -> list[tuple[str, int]]:
    """The NASA slice's first requests as ``(key, data bytes)``, sizes scaled to <= 64 KiB."""
    trace = read_trace(DATA / "nasa_19950801_head3000.tsv")[:REQUESTS]
    scale = LARGEST / max(size for _, size in trace)
    names: dict[str, str] = {}
    return [
        (names.setdefault(url, f"nasa/{len(names)}"), max(1, int(size * scale)))
        for url, size in trace
    ]


def disk_size(key: str, size: int) -> int:
    """Bytes the server charges for an object: its file (data plus metadata
    trailer) in whole blocks, plus its snapshot row."""
    meta = ObjectMeta(key, FILENAME, CONTENT_TYPE, size, "0" * 64, 0.0)
    return expected_charge(size + len(encode_trailer(meta)), key)


def live_hits(url: str, trace: list[tuple[str, int]]) -> int:
    """Replay ``trace`` through HTTP on one connection; return the number of hits."""
    hits = 0
    touched = False
    with requests.Session() as http:
        for key, size in trace:
            reply = http.get(f"{url}/{key}", timeout=10)
            if reply.status_code == 200:
                assert len(reply.content) == size
                hits += 1
                touched = True
                continue
            assert reply.status_code == 404, reply.text
            if touched:
                # Reads reach the coordinator in batches; let the last ones
                # arrive before this commit so the order matches the simulator's.
                time.sleep(3 * TOUCH_INTERVAL)
                touched = False
            data = key.encode().ljust(size, b".")[:size]
            files = {"file": (FILENAME, data, CONTENT_TYPE)}
            stored = http.post(f"{url}/{key}", files=files, timeout=10)
            assert stored.status_code == 200, stored.text
            body = stored.json()
            assert (body["filename"], body["content_type"]) == (FILENAME, CONTENT_TYPE)
    return hits


@pytest.mark.parametrize("policy", ["lru", "s3gdsf"])
def test_live_hit_ratio_matches_the_simulator(make_server, policy: str) -> None:
    trace = scaled_slice()
    sized = [(key, disk_size(key, size)) for key, size in trace]
    unique = dict(sized)
    max_size = sum(unique.values()) // 10
    assert max(unique.values()) <= max_size  # every upload fits: nothing is refused

    server = make_server(
        cache={"max_size": max_size, "policy": policy, "low_water": LOW_WATER},
        frontend={"processes": 1, "touch_interval": TOUCH_INTERVAL},
    )
    hits = live_hits(server.url, trace)

    # The accounting the simulator was fed is the server's, file by file.
    layout = Layout(server.cache)
    present = [key for key in unique if layout.object_path(key).exists()]
    assert 0 < len(present) < len(unique)  # something was evicted
    for key in present:
        assert charge(layout.object_path(key).stat(), key) == unique[key]
    assert server.object_bytes() <= max_size

    # The index keeps one block of headroom for its directories' growth.
    simulated = replay(sized, policy, max_size - DIR_RESERVE, low_water=LOW_WATER)
    live_ratio = hits / len(trace)
    simulated_ratio = 1 - simulated.object_miss_ratio
    print(f"{policy}: live hit ratio {live_ratio:.4f}, simulated {simulated_ratio:.4f}")
    assert live_ratio == pytest.approx(simulated_ratio, abs=0.01), (live_ratio, simulated_ratio)
