"""What checking Bazel's action results costs per GET (``[bazel] check_action_results``).

Run: ``python bench/action_results.py`` (about a minute on 2 cores),
``--repeat 5`` for more runs per cell, ``--outputs 1 4 16`` for the numbers of
output files each action result names.  Two ``packrat serve`` with one front
end each, in a temporary directory, one with the check on (the default) and
one with it off, hold the same entries: ``bench/ac/<hash>`` action results
naming that many output blobs (plus the empty stdout and stderr, as Bazel
writes them), all stored under ``bench/cas/``.  wrk GETs them round robin at
16 connections, the two servers taking turns, and each run reports req/s and
the server's CPU per request (``bench/procstat.py``, as ``bench/http.py``
measures it); the table gives the median run of each and the ratio of the
checked GET's CPU to the unchecked one's.  A GET of a blob of the same size,
which no check looks at, is measured on the checked server as a reference.
Every process it starts is stopped before it returns.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

# bench/ is not installed, and bench/http.py would shadow the standard library's http.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench.http import (
    CONNECTIONS,
    IDLE_LIMIT,
    Request,
    free_port,
    run_wrk,
    running,
    settle,
    wait_idle,
)
from bench.procstat import Reading
from packrat.buildtools.reapi import Digest
from tests.test_buildtools_reapi import digest as digest_field
from tests.test_buildtools_reapi import field

KEYS = 10  # action results per cell: <prefix>0 .. <prefix>9 (the last hex digit)
WARMUP, DURATION = 1, 4  # seconds
THREADS = 2
PREFIX = "bench"


def action_result(outputs: list[bytes]) -> bytes:
    """An ActionResult as Bazel writes one: output files, then empty stdout and stderr."""
    files = b"".join(
        field(2, field(1, f"bazel-out/k8-fastbuild/bin/out{n}.o".encode()) + field(2, digest(d)))
        for n, d in enumerate(outputs)
    )
    return files + field(6, digest(b"")) + field(8, digest(b""))


def digest(data: bytes) -> bytes:
    return digest_field(Digest(hashlib.sha256(data).hexdigest(), len(data)), False)


@contextlib.contextmanager
def server(work: Path, name: str, check: bool) -> Iterator[tuple[str, int]]:
    """``packrat serve`` with one front end; yields its URL and the root of its processes."""
    port = free_port()
    root = work / name
    (root / "run").mkdir(parents=True)
    config = root / "packrat.ini"
    config.write_text(
        f"[server]\nhost = 127.0.0.1\nport = {port}\n[frontend]\nprocesses = 1\n"
        f"[cache]\nroot = {root / 'cache'}\nmax_size = 1G\n"
        f"[coordinator]\nendpoint = ipc://{root / 'run' / 'coordinator.sock'}\n"
        f"[bazel]\ncheck_action_results = {'true' if check else 'false'}\n"
        "[log]\naccess = false\n"
    )
    url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "packrat", "serve", "--config", str(config)]
    with running(
        argv, root / "packrat.log", name, url + "/", ok=lambda r: "Objects" in r.text
    ) as p:
        yield url, p.pid


def load(url: str, outputs: int, base: str) -> None:
    """``KEYS`` action results under ``bench/ac/<base><n>``, each naming ``outputs`` blobs."""
    for n in range(KEYS):
        blobs = [os.urandom(2048) for _ in range(outputs)]
        for data in blobs:
            key = f"{PREFIX}/cas/{hashlib.sha256(data).hexdigest()}"
            assert requests.put(f"{url}/{key}", data=data, timeout=30).status_code == 200
        reply = requests.put(
            f"{url}/{PREFIX}/ac/{base}{n:x}", data=action_result(blobs), timeout=30
        )
        assert reply.status_code == 200, reply.text
        assert requests.get(f"{url}/{PREFIX}/ac/{base}{n:x}", timeout=30).status_code == 200


def measure(wrk: str, url: str, pid: int, prefix: str) -> tuple[float, float]:
    """req/s and server CPU µs per request of GETs of ``<prefix>0..9``."""
    request = Request("GET", prefix, KEYS)
    run_wrk([wrk], url, request, CONNECTIONS, THREADS, WARMUP)
    settle(pid)
    before = Reading.take((pid,))
    raw = run_wrk([wrk], url, request, CONNECTIONS, THREADS, DURATION)
    after = Reading.take((pid,))
    if sum(raw["errors"].values()):
        raise SystemExit(f"wrk saw errors on {url}{prefix}: {raw['errors']}")
    rate = raw["requests"] / (raw["duration_us"] / 1e6)
    return rate, 1e6 * after.server_cpu(before, pid) / raw["requests"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--outputs", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    rows = []
    load_avg = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="packrat-bench-ac-") as temp:
        work = Path(temp)
        with contextlib.ExitStack() as stack:
            on, on_pid = stack.enter_context(server(work, "checked", True))
            off, off_pid = stack.enter_context(server(work, "unchecked", False))
            blob = os.urandom(300)
            for url in (on, off):
                for n in range(KEYS):
                    requests.put(f"{url}/{PREFIX}/raw/blob{n}", data=blob, timeout=30)
            for outputs in args.outputs:
                base = hashlib.sha256(str(outputs).encode()).hexdigest()[:63]
                for url in (on, off):
                    load(url, outputs, base)
                runs: dict[str, list[tuple[float, float]]] = {"on": [], "off": [], "blob": []}
                for _ in range(args.repeat):
                    _, others = wait_idle(15.0)
                    if others >= IDLE_LIMIT:
                        print(f"  (others use {others:.0%} of a core; running anyway)", flush=True)
                    ac = f"/{PREFIX}/ac/{base}"
                    runs["on"].append(measure(wrk, on, on_pid, ac))
                    runs["off"].append(measure(wrk, off, off_pid, ac))
                    runs["blob"].append(measure(wrk, on, on_pid, f"/{PREFIX}/raw/blob"))
                    cells = (
                        f"{k} {r[-1][0]:,.0f} req/s {r[-1][1]:,.0f} µs" for k, r in runs.items()
                    )
                    print(f"{outputs:>3} outputs: " + "  ".join(cells), flush=True)
                rows.append((outputs, {k: median(v) for k, v in runs.items()}))
    print()
    print(f"load average before the run: {load_avg[0]:.2f} {load_avg[1]:.2f} {load_avg[2]:.2f}")
    print("| outputs named | GET ac/, check on | check off | CPU on/off | GET of a blob |")
    print("|---|---|---|---|---|")
    for outputs, medians in rows:
        (on_rate, on_cpu), (off_rate, off_cpu), (blob_rate, blob_cpu) = (
            medians["on"],
            medians["off"],
            medians["blob"],
        )
        print(
            f"| {outputs} | {on_rate:,.0f} req/s, {on_cpu:,.0f} µs | {off_rate:,.0f} req/s, "
            f"{off_cpu:,.0f} µs | {on_cpu / off_cpu:.2f} | {blob_rate:,.0f} req/s, "
            f"{blob_cpu:,.0f} µs |"
        )
    return 0


def median(runs: list[tuple[float, float]]) -> tuple[float, float]:
    """The run with the median CPU per request."""
    ordered = sorted(runs, key=lambda r: r[1])
    return ordered[(len(ordered) - 1) // 2]


if __name__ == "__main__":
    sys.exit(main())
