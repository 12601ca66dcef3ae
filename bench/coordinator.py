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

* concurrent commits: ``CLIENTS`` front-end processes, each with its own
  DEALER socket and its own staging files (named by its pid, as a front end
  names them), commit at once, ``CLIENT_WINDOW`` uploads in flight each, the
  way busy front ends with several uploads under way do; the coordinator
  drains every queued message before it looks at its timers, so this is its
  ceiling for small uploads.  Divided by one front end's rate of small
  uploads (``--upload-rate``, from bench/http.py's ``upload 1 KiB`` rows) it
  says how many front ends one coordinator can feed before it becomes the
  bottleneck.

The issue's bar is 100,000 index operations per second with any policy;
touches are the operations a busy cache does most.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from packrat.coordinator.connection import CoordinatorClient
from packrat.coordinator.protocol import Touch
from packrat.policies import POLICIES
from packrat.store.accounting import expected_charge

ROOT = Path(__file__).resolve().parents[1]
COMMITS = 20_000
TOUCH_BATCHES = 5_000
BATCH = 100
WINDOW = 64  # commits in flight
OBJECT = 1000  # bytes per staged file
CAPACITY_OBJECTS = 5_000  # the cache holds this many, so most commits evict
CHARGE = expected_charge(OBJECT, "k/00000")  # what one object costs against max_size
CLIENTS = 8  # front-end processes committing at once
CLIENT_COMMITS = 3_000  # per client
CLIENT_WINDOW = 8  # uploads in flight per front end
# docs/coordinator.md is written by hand above this line, by this bench below it
MARK = "<!-- bench/coordinator.py writes what follows -->"
UPLOAD_RATE = 2300  # small uploads/s of one front end with a core to itself (bench/http.py)


def start_coordinator(
    work: Path, policy: str, checkout: Path = ROOT
) -> tuple[subprocess.Popen, str]:
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
        # ``-m`` puts the working directory first on the path, before PYTHONPATH:
        # run from the checkout, or a baseline would run this version's code.
        cwd=checkout,
        env={**os.environ, "PYTHONPATH": str(checkout)},
    )
    deadline = time.monotonic() + 20
    while not (work / "coordinator.sock").exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("coordinator did not start")
        time.sleep(0.02)
    return process, endpoint


def stage_files(work: Path, round_: int, count: int = COMMITS) -> list[str]:
    staging = work / "cache" / "staging"
    names = [f"{os.getpid()}-{round_:04x}{n:012x}.part" for n in range(count)]
    blob = b"x" * OBJECT
    for name in names:
        (staging / name).write_bytes(blob)
    return names


def bench_commits(
    client: CoordinatorClient, names: list[str], prefix: str = "k", window: int = WINDOW
) -> float:
    started = time.perf_counter()
    in_flight = 0
    for n, name in enumerate(names):
        client.send(client.requests.commit(f"{prefix}/{n}", name, OBJECT))
        in_flight += 1
        if in_flight >= window:
            assert client.receive().ok
            in_flight -= 1
    for _ in range(in_flight):
        assert client.receive().ok
    return len(names) / (time.perf_counter() - started)


def commit_client(
    work: Path,
    endpoint: str,
    number: int,
    start: multiprocessing.Event,
    done: multiprocessing.Queue,
) -> None:
    """One front end's share of the concurrent commits (runs in a child process)."""
    names = stage_files(work, number, CLIENT_COMMITS)
    with CoordinatorClient(endpoint, timeout=60) as client:
        client.stats()  # connected
        start.wait()
        began = time.perf_counter()
        bench_commits(client, names, f"c{number}", CLIENT_WINDOW)
        done.put((began, time.perf_counter()))


def bench_concurrent_commits(
    work: Path, endpoint: str, pid: int
) -> tuple[float, float, float, float]:
    """Commits per second of ``CLIENTS`` front-end processes committing at once, the
    coordinator's CPU (of one core) meanwhile, and its CPU per commit in microseconds:
    the whole process's, and its main (policy) thread's."""
    start = multiprocessing.Event()
    done: multiprocessing.Queue = multiprocessing.Queue()
    clients = [
        multiprocessing.Process(target=commit_client, args=(work, endpoint, n, start, done))
        for n in range(CLIENTS)
    ]
    for process in clients:
        process.start()
    time.sleep(1.0)  # every client has staged its files and connected
    staging = work / "cache" / "staging"
    deadline = time.monotonic() + 60
    while len(list(staging.glob("*.part"))) < CLIENTS * CLIENT_COMMITS:
        assert time.monotonic() < deadline, "the clients did not stage their files"
        time.sleep(0.1)
    cpu_before, main_before = process_cpu(pid), process_cpu(pid, pid)
    start.set()
    spans = [done.get(timeout=300) for _ in clients]
    cpu = process_cpu(pid) - cpu_before
    main = process_cpu(pid, pid) - main_before
    for process in clients:
        process.join(30)
        assert process.exitcode == 0, process.exitcode
    began = min(span[0] for span in spans)
    ended = max(span[1] for span in spans)
    count = CLIENTS * CLIENT_COMMITS
    return count / (ended - began), cpu / (ended - began), cpu / count * 1e6, main / count * 1e6


def process_cpu(pid: int, thread: int | None = None) -> float:
    """CPU seconds a process has used (all its threads), or one of its threads."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--upload-rate",
        type=float,
        default=UPLOAD_RATE,
        help="small uploads/s one front end sustains"
        " (bench/http.py, upload 1 KiB PUT, unpinned, 1 front end)",
    )
    parser.add_argument("--policies", nargs="+", default=list(POLICIES))
    parser.add_argument(
        "--baseline", type=Path, help="a checkout of the previous version, run beside this one"
    )
    args = parser.parse_args(argv)
    versions = [("now", ROOT)] + ([("before", args.baseline)] if args.baseline else [])
    rows = []
    for policy in args.policies:
        for version, checkout in versions:
            with tempfile.TemporaryDirectory(prefix="packrat-coord-") as temp:
                work = Path(temp)
                process, endpoint = start_coordinator(work, policy, checkout)
                try:
                    with CoordinatorClient(endpoint, timeout=60) as client:
                        bench_commits(client, stage_files(work, 0))  # fills the cache
                        commits = bench_commits(client, stage_files(work, 1))
                        touches = bench_touches(client)
                    concurrent, busy, per_commit, per_commit_main = bench_concurrent_commits(
                        work, endpoint, process.pid
                    )
                finally:
                    process.terminate()
                    process.wait(15)
            name = policy if len(versions) == 1 else f"{policy} ({version})"
            rows.append((name, commits, touches, concurrent, busy, per_commit, per_commit_main))
            print(
                f"{name:17s} commits/s {commits:9,.0f}   touches/s {touches:11,.0f}"
                f"   commits/s from {CLIENTS} clients {concurrent:9,.0f}"
                f" (coordinator CPU {busy:.0%}, {per_commit:.0f} us per commit of which "
                f"{per_commit_main:.0f} on the policy thread; "
                f"{concurrent / args.upload_rate:.0f} front ends)",
                flush=True,
            )
    write_report(rows, args.upload_rate)


def write_report(rows: list[tuple], upload_rate: float) -> None:
    load = os.getloadavg()[0]
    lines = [
        MARK,
        "",
        "## Throughput",
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
        f"- {CLIENTS} clients: {CLIENTS} processes (a DEALER socket and staging files each) "
        f"commit {CLIENT_COMMITS:,} files each at once, {CLIENT_WINDOW} in flight per client; "
        f"*front ends fed*: those commits/s divided by {upload_rate:,.0f} small uploads/s, "
        "what one front end sustains with a core to itself "
        "(bench/http.py, upload 1 KiB PUT, unpinned, 1 front end)",
        "",
        f"| policy | commits/s | touches (index operations)/s | commits/s, {CLIENTS} clients"
        " | coordinator CPU meanwhile | CPU µs per commit | of which the policy thread"
        " | front ends fed |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    lines += [
        f"| {name} | {c:,.0f} | {t:,.0f} | {k:,.0f} | {b:.0%} | {p:.0f} | {m:.0f} "
        f"| {k / upload_rate:.0f} |"
        for name, c, t, k, b, p, m in rows
    ]
    path = ROOT / "docs" / "coordinator.md"
    kept = path.read_text().split(MARK)[0] if path.exists() else ""
    path.write_text(kept + "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
