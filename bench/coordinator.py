"""How many index operations a real coordinator process sustains, per policy.

Run: ``python bench/coordinator.py`` (``make bench`` runs it); writes
``docs/coordinator.md``.  For each policy it starts ``packrat coordinator``
on a temporary cache and drives it over ZeroMQ exactly as front ends do:

* commits: staged files published one after another (a stat, a rename, and
  the evictions a full cache needs: one ``make_room`` and one ``insert`` per
  commit), pipelined 64 at a time.  A first, untimed pass creates the fan-out
  directories (a new directory costs far more than the commit itself); the
  timed pass is the steady state of a cache that has been running a while;
* touches: batches of 100 reads (``access`` on the policy), fire-and-forget,
  as front ends report them; a final ``stats`` request (answered in order)
  marks the end.

The issue's bar is 100,000 index operations per second with any policy;
touches are the operations a busy cache does most.
"""

from __future__ import annotations

import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from packrat.coordinator.client import CoordinatorClient
from packrat.policies import POLICIES
from packrat.protocol import Touch
from packrat.store.accounting import expected_charge

ROOT = Path(__file__).resolve().parents[1]
COMMITS = 20_000
TOUCH_BATCHES = 5_000
BATCH = 100
WINDOW = 64  # commits in flight
OBJECT = 1000  # bytes per staged file
CAPACITY_OBJECTS = 5_000  # the cache holds this many, so most commits evict
CHARGE = expected_charge(OBJECT, "k/00000")  # what one object costs against max_size


def start_coordinator(work: Path, policy: str) -> tuple[subprocess.Popen, str]:
    endpoint = f"ipc://{work}/coordinator.sock"
    config = work / "packrat.ini"
    config.write_text(
        f"[cache]\nroot = {work}/cache\nmax_size = {CAPACITY_OBJECTS * CHARGE}\n"
        f"policy = {policy}\nlow_water = 0.95\n"
        f"[coordinator]\nendpoint = {endpoint}\nsnapshot_interval = 3600\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "packrat", "coordinator", "--config", str(config)],
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while not (work / "coordinator.sock").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("coordinator did not start")
        time.sleep(0.02)
    return process, endpoint


def stage_files(work: Path, round_: int) -> list[str]:
    staging = work / "cache" / "staging"
    names = [f"{os.getpid()}-{round_:04x}{n:012x}.part" for n in range(COMMITS)]
    blob = b"x" * OBJECT
    for name in names:
        (staging / name).write_bytes(blob)
    return names


def bench_commits(client: CoordinatorClient, names: list[str]) -> float:
    started = time.perf_counter()
    in_flight = 0
    for n, name in enumerate(names):
        client.send(client.requests.commit(f"k/{n}", name, OBJECT))
        in_flight += 1
        if in_flight >= WINDOW:
            assert client.receive().ok
            in_flight -= 1
    for _ in range(in_flight):
        assert client.receive().ok
    return len(names) / (time.perf_counter() - started)


def bench_touches(client: CoordinatorClient) -> float:
    rng = random.Random(3)
    live = range(COMMITS - CAPACITY_OBJECTS, COMMITS)  # the keys still cached
    batches = [tuple(f"k/{rng.choice(live)}" for _ in range(BATCH)) for _ in range(TOUCH_BATCHES)]
    started = time.perf_counter()
    for keys in batches:
        client.send(Touch(keys))
    stats = client.stats()
    seconds = time.perf_counter() - started
    assert stats["hits"] == TOUCH_BATCHES * BATCH, stats
    return TOUCH_BATCHES * BATCH / seconds


def main() -> None:
    rows = []
    for policy in POLICIES:
        with tempfile.TemporaryDirectory(prefix="packrat-coord-") as temp:
            work = Path(temp)
            process, endpoint = start_coordinator(work, policy)
            try:
                with CoordinatorClient(endpoint, timeout=60) as client:
                    bench_commits(client, stage_files(work, 0))  # fills the cache
                    commits = bench_commits(client, stage_files(work, 1))
                    touches = bench_touches(client)
            finally:
                process.terminate()
                process.wait(15)
        rows.append((policy, commits, touches))
        print(f"{policy:8s} commits/s {commits:9,.0f}   touches/s {touches:11,.0f}", flush=True)
    write_report(rows)


def write_report(rows: list[tuple[str, float, float]]) -> None:
    load = os.getloadavg()[0]
    lines = [
        "# Coordinator throughput",
        "",
        "Written by `bench/coordinator.py` (`make bench`); do not edit by hand. A real",
        "`packrat coordinator` process per policy, driven over ZeroMQ (ipc://) the way",
        "front ends drive it. The bar (issue 4) is 100,000 index operations per second.",
        "",
        f"- machine: {os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
        f"Python {platform.python_version()}; 1-minute load average {load:.1f}",
        f"- commits: {COMMITS:,} staged {OBJECT}-byte files, {WINDOW} in flight, cache "
        f"of {CAPACITY_OBJECTS:,} objects (nearly every commit evicts): claim, evict, stamp, "
        "rename",
        f"- touches: {TOUCH_BATCHES:,} batches of {BATCH} reads of cached keys, "
        "fire-and-forget, then one `stats` round trip",
        "",
        "| policy | commits/s | touches (index operations)/s |",
        "|---|--:|--:|",
    ]
    lines += [f"| {name} | {c:,.0f} | {t:,.0f} |" for name, c, t in rows]
    (ROOT / "docs" / "coordinator.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
