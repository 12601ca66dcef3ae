"""Eviction in the live service: max_size holds, LRU order spans front ends."""

from __future__ import annotations

import concurrent.futures
import os
import random

import pytest

OBJECT = 100 * 1024


@pytest.fixture
def cluster(make_server):
    """A coordinator and two front ends on ports of their own.

    Room for four 100 KiB objects; the fifth evicts exactly one (low water 95 %).
    """
    options = {"cache": {"max_size": "450K", "low_water": 0.95, "policy": "lru"}}
    coordinator = make_server("coordinator", **options)
    first = make_server("frontend", **options)
    second = make_server("frontend", **options)
    return coordinator, first, second


def test_lru_order_follows_reads_through_any_front_end(cluster):
    _, first, second = cluster
    for n in range(4):
        assert first.upload(f"k{n}", bytes([n]) * OBJECT).status_code == 200
    before = first.stats()
    # k0 and k1 are read, each through a different front end; k2 and k3 are not.
    assert second.get("k0").status_code == 200
    assert first.get("k1").status_code == 200
    first.stats_grown(before, hits=2)  # reads reach the coordinator's order in batches
    assert second.upload("k4", b"4" * OBJECT).status_code == 200
    assert [first.exists(f"k{n}") for n in range(5)] == [True, True, False, True, True]
    assert first.upload("k5", b"5" * OBJECT).status_code == 200
    assert [second.exists(f"k{n}") for n in range(6)] == [True, True, False, False, True, True]


def test_repeated_reads_of_a_fresh_object_count(cluster):
    _, first, second = cluster
    for n in range(4):
        first.upload(f"k{n}", bytes([n]) * OBJECT)
    # k0 is read right after its neighbours were written, twice, through both
    # front ends: no throttle may drop these as "too recent to matter".
    first.upload("k0", b"0" * OBJECT)
    before = first.stats()
    for n in (1, 2, 3):
        first.get(f"k{n}")
    first.stats_grown(before, hits=3)
    first.get("k0")
    second.get("k0")
    first.stats_grown(before, hits=5)
    first.upload("k4", b"4" * OBJECT)
    assert first.exists("k0") is True
    assert first.exists("k1") is False


def test_max_size_is_never_exceeded(make_server):
    max_size = 1 << 20
    server = make_server(cache={"max_size": max_size, "low_water": 0.9})
    rng = random.Random(7)
    sizes = [rng.randrange(1, 200 * 1024) for _ in range(60)]
    # One writer: after each commit returns, nothing else moves, so the
    # bytes on disk are exact.
    for n in range(30):
        assert server.upload(f"obj/{n}", os.urandom(sizes[n])).status_code == 200
        assert server.object_bytes() <= max_size

    # Four writers at once: every commit still fits.
    def upload(n: int) -> None:
        reply = server.upload(f"obj/{n}", os.urandom(sizes[n]))
        assert reply.status_code == 200, reply.text

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(upload, range(30, len(sizes))))
    assert 0 < server.object_bytes() <= max_size
    # The cache filled up and evicted: not everything written is still there.
    assert sum(server.exists(f"obj/{n}") for n in range(len(sizes))) < len(sizes)


def test_low_water_mark_batches_evictions(make_server):
    server = make_server(cache={"max_size": "1M", "low_water": 0.5, "policy": "lru"})
    evicted = []
    for n in range(16):
        reply = server.upload(f"w{n}", b"w" * OBJECT)
        evicted.append(reply.json()["evicted"])
    # Once full, one commit evicts down to half the cache; the next few evict nothing.
    first = next(i for i, count in enumerate(evicted) if count)
    assert evicted[first] >= 4
    assert evicted[first + 1 : first + 4] == [0, 0, 0]
