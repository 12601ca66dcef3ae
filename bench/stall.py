"""How long periodic work holds the coordinator's loop, and what uploads see meanwhile.

Run: ``python bench/stall.py index --objects 1000000 3000000 10000000`` and
``python bench/stall.py uploads --root DIR`` (a cache made by
``python bench/rebuild.py --keep DIR``).

``index``: a ``Coordinator`` in this process is given N entries (keys shaped
as ``bench/rebuild.py`` writes them; no files are needed to snapshot an
index), then it times what the loop would wait for:

* the whole snapshot written at once (``--sync``), as the loop did before
  issue 17;
* the longest slice of a snapshot written a slice at a time
  (``snapshotter``), which is the most a message waits for it now (wall
  clock, and the loop thread's own CPU time, which other processes on a
  busy machine cannot inflate), how many slices, and how long the whole
  took (the fsync in its thread included);
* a full collection of Python's cyclic garbage collector, which the loop
  runs now and then by itself (after ``gc.freeze()``, as the server calls it
  once loaded).

``uploads``: ``packrat serve`` on a prepared cache with ``snapshot_interval
= 5``; one client uploads 1 KiB objects (``PUT``) one after the other for
``--seconds`` and reports the latency's median, p99 and maximum and the
count of 503 answers, which is the issue's measurement, then the turns of
the coordinator's loop it logged as slow (wall clock and its own CPU time).  ``--baseline DIR``
runs a second server from another checkout (``git worktree add DIR main``)
on a copy of the same cache, so the two are compared in one run.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# Run as a script, bench/ comes first on sys.path, where bench/http.py would
# hide the standard library's ``http`` from requests.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import requests

ROOT = Path(__file__).resolve().parents[1]


def build(count: int, root: Path):
    from array import array

    from packrat.coordinator.service import Coordinator
    from packrat.core.settings import Settings
    from packrat.store.accounting import expected_charge

    coordinator = Coordinator(Settings(cache_root=root, cache_max_size=1 << 60))
    coordinator.layout.create()
    keys = sorted(f"bench/{n}".encode() for n in range(count))
    charges = array("q", (expected_charge(244, key.decode()) for key in keys))
    now = time.time()
    seen = array("d", (now - count + n for n in range(count)))
    coordinator.index.load(keys, charges, seen, range(count))
    return coordinator


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def bench_index(counts: list[int], sync: bool) -> None:
    from packrat.coordinator.snapshotter import SLICE

    print(
        f"{'objects':>11} {'RSS':>9} {'whole snapshot':>15} {'longest slice (CPU)':>22} "
        f"{'slices':>7} {'written in':>10} {'gc':>8}"
    )
    for count in counts:
        with tempfile.TemporaryDirectory(prefix="packrat-stall-") as temp:
            before = rss_bytes()
            coordinator = build(count, Path(temp))
            gc.freeze()  # as the server does once loaded
            rss = rss_bytes() - before
            whole = float("nan")
            if sync:  # what the loop waited for before: the whole snapshot at once
                started = time.perf_counter()
                coordinator.snapshot()
                whole = time.perf_counter() - started
            job = coordinator.begin_snapshot()
            longest = longest_cpu = 0.0
            slices = 0
            started = time.perf_counter()
            while True:
                slice_started, cpu_started = time.perf_counter(), time.thread_time()
                written = job.step(SLICE)
                longest = max(longest, time.perf_counter() - slice_started)
                longest_cpu = max(longest_cpu, time.thread_time() - cpu_started)
                slices += 1
                if written:
                    break
            job.finish_in_background()
            while job.done() is None:
                time.sleep(0.01)
            total = time.perf_counter() - started
            started = time.perf_counter()
            gc.collect()
            collect = time.perf_counter() - started
            print(
                f"{count:>11,} {rss / count:>7.0f} B {whole * 1000:>12,.0f} ms "
                f"{longest * 1000:>8.1f} ms ({longest_cpu * 1000:>5.1f} ms) {slices:>7,} "
                f"{total:>8.1f} s "
                f"{collect * 1000:>5.0f} ms",
                flush=True,
            )
            coordinator.close()
            del coordinator
            gc.unfreeze()
            gc.collect()
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")


def serve(checkout: Path, root: Path, port: int, work: Path) -> subprocess.Popen:
    config = work / "packrat.ini"
    config.write_text(
        f"[server]\nport = {port}\n[frontend]\nprocesses = 1\n"
        f"[cache]\nroot = {root}\nmax_size = 1T\n"
        f"[coordinator]\nendpoint = ipc://{work}/coordinator.sock\nsnapshot_interval = 5\n"
        f"[log]\naccess = off\n[metrics]\ndirectory = {work}/metrics\n"
    )
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    return subprocess.Popen(
        [sys.executable, "-m", "packrat", "serve", "--config", str(config)],
        env=env,
        stdout=open(work / "serve.log", "wb"),
        stderr=subprocess.STDOUT,
    )


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 900) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if process.poll() is not None:
            raise RuntimeError("the server exited")
        try:
            if requests.get(url + "/readyz", timeout=2).status_code == 200:
                return time.monotonic() - started
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server was not ready in time")


def upload_latencies(url: str, seconds: float) -> tuple[list[float], int]:
    latencies = []
    unavailable = 0
    blob = os.urandom(1024)
    with requests.Session() as session:
        deadline = time.monotonic() + seconds
        n = 0
        while time.monotonic() < deadline:
            started = time.perf_counter()
            status = session.put(f"{url}/stall/{os.getpid()}/{n}", data=blob, timeout=60)
            latencies.append(time.perf_counter() - started)
            unavailable += status.status_code == 503
            n += 1
    return latencies, unavailable


def bench_uploads(root: Path, seconds: float, baseline: Path | None) -> None:
    runs = [("this checkout", ROOT)] + ([("baseline", baseline)] if baseline else [])
    for label, checkout in runs:
        with tempfile.TemporaryDirectory(prefix="packrat-stall-") as temp:
            work = Path(temp)
            cache = root
            if baseline:  # each run starts from the same files
                cache = work / "cache"
                shutil.copytree(root, cache, symlinks=True)
            port = free_port()
            process = serve(checkout, cache, port, work)
            url = f"http://127.0.0.1:{port}"
            try:
                ready = wait_ready(url, process)
                latencies, unavailable = upload_latencies(url, seconds)
            finally:
                process.send_signal(signal.SIGTERM)
                process.wait(60)
            latencies.sort()
            ms = [latencies[int(q * (len(latencies) - 1))] * 1000 for q in (0.5, 0.99, 1.0)]
            print(
                f"{label:14s} ready in {ready:5.1f} s; {len(latencies):,} uploads in "
                f"{seconds:.0f} s: p50 {ms[0]:.1f} ms, p99 {ms[1]:.1f} ms, max {ms[2]:.0f} ms; "
                f"{unavailable} x 503",
                flush=True,
            )
            for line in (work / "serve.log").read_text(errors="replace").splitlines():
                if "a turn of the loop took" in line:  # the coordinator's own account
                    print("   ", line.strip(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    index = sub.add_parser("index")
    index.add_argument("--objects", type=int, nargs="+", default=[1_000_000])
    index.add_argument("--sync", action="store_true", help="also time the in-loop snapshot")
    uploads = sub.add_parser("uploads")
    uploads.add_argument("--root", type=Path, required=True)
    uploads.add_argument("--seconds", type=float, default=25)
    uploads.add_argument("--baseline", type=Path, help="another checkout to compare with")
    args = parser.parse_args()
    if args.mode == "index":
        bench_index(args.objects, args.sync)
    else:
        bench_uploads(args.root, args.seconds, args.baseline)


if __name__ == "__main__":
    main()
