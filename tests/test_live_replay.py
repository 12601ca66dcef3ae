"""A slice of a real trace replayed against a live server, and predicted by ``packrat simulate``.

The client does what a cache client does: GET the key, and on 404 PUT the
object.  Object sizes are scaled down (largest 64 KiB, most under 4 KiB) so
the slice runs in seconds; at those sizes what the server charges (whole
blocks, the metadata trailer, the index row) is far from the data size.
``packrat simulate`` is given the slice as a user would give it an access
log: a csv of plain data sizes, ``--size 10%``, every other option at its
default.  Its predicted hit ratio must land within two percentage points of
the live one.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from packrat.simulator.charges import ServerCharge
from packrat.simulator.cli import main as simulate
from packrat.simulator.traces import read_trace
from packrat.store import Layout
from packrat.store.accounting import charge
from tests.support.processes import PackratProcess
from tests.support.waiting import wait_until

DATA = Path(__file__).parent / "data"
REQUESTS = 1200
LARGEST = 64 * 1024
TOUCH_INTERVAL = 0.005


def scaled_slice() -> list[tuple[str, int]]:
    """The NASA slice's first requests as ``(key, data bytes)``, sizes scaled to <= 64 KiB."""
    trace = read_trace(DATA / "nasa_19950801_head3000.tsv")[:REQUESTS]
    scale = LARGEST / max(size for _, size in trace)
    names: dict[str, str] = {}
    return [
        (names.setdefault(url, f"nasa/{len(names)}"), max(1, int(size * scale)))
        for url, size in trace
    ]


def live_hits(server: PackratProcess, trace: list[tuple[str, int]]) -> int:
    """Replay ``trace`` through HTTP on one connection; return the number of hits."""
    url = server.url
    hits = 0
    touched = False
    counted = server.stats()["hits"]
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
                # Reads reach the coordinator in batches; wait for the last ones
                # to arrive before this commit so the order matches the simulator's.
                seen = counted + hits
                wait_until(lambda n=seen: server.stats()["hits"] >= n, interval=TOUCH_INTERVAL)
                touched = False
            data = key.encode().ljust(size, b".")[:size]
            stored = http.put(f"{url}/{key}", data=data, timeout=10)
            assert stored.status_code == 200, stored.text
    return hits


@pytest.mark.parametrize("policy", ["lru", "s3gdsf"])
def test_simulate_predicts_the_live_hit_ratio(
    make_server, tmp_path: Path, capsys: pytest.CaptureFixture[str], policy: str
) -> None:
    trace = scaled_slice()
    log = tmp_path / "access.csv"
    log.write_text("time,key,size\n" + "".join(f"{t},{k},{s}\n" for t, (k, s) in enumerate(trace)))
    assert simulate(["--trace", str(log), "--policy", policy, "--size", "10%", "--json"]) == 0
    predicted = json.loads(capsys.readouterr().out)
    max_size = predicted["size_bytes"]

    server = make_server(
        cache={"max_size": max_size, "policy": policy},
        frontend={"processes": 1, "touch_interval": TOUCH_INTERVAL},
    )
    hits = live_hits(server, trace)

    # The simulator charged each object what the server charges, file by file.
    layout = Layout(server.cache)
    server_charge = ServerCharge()
    sizes = dict(trace)
    present = [key for key in sizes if layout.object_path(key).exists()]
    assert 0 < len(present) < len(sizes)  # something was evicted
    for key in present:
        assert charge(layout.object_path(key).stat(), key) == server_charge(key, sizes[key])

    live_ratio = hits / len(trace)
    predicted_ratio = 1 - predicted["object_miss_ratio"]
    print(f"{policy}: live hit ratio {live_ratio:.4f}, predicted {predicted_ratio:.4f}")
    assert live_ratio == pytest.approx(predicted_ratio, abs=0.02), (live_ratio, predicted_ratio)
