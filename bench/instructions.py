"""Instructions per request under callgrind: a measure of Python's work that no neighbour moves.

Run: ``python bench/instructions.py`` (``--only 'GET 1 KiB' exists``,
``--servers 'bare httptools' Packrat``, ``--auth``).  Each server runs under
``valgrind --tool=callgrind`` (children included: Packrat's supervisor,
coordinator and front end); wrk loads it as ``bench/http.py`` does, with
the same files and requests; the counters are zeroed just before the
measured run and dumped just after it (``callgrind_control``), the same is
done over as long a time with no load, and the difference (the instructions
of all of the server's processes, less what its timers do anyway) is
divided by the requests wrk completed.

Callgrind counts the instructions a program executes in user space: the
interpreter, the C extensions, libzmq, libc.  It does not see the kernel
(system calls, the TCP stack, page faults, the scheduler), which
``bench/http.py``'s CPU time includes, and it runs each program about 50
times slower, on one simulated core.  What it gives in exchange is a count
that does not move with the machine's load: the same code serving the same
requests executes nearly the same instructions on a busy machine and an
idle one.  Compare versions of Packrat by it, and Packrat with the bare
httptools server (the floor a Python server on the same parser and loop
cannot go under); for what a request costs the machine, read
``bench/http.py``'s tables.

Results go to docs/benchmarks.md (the block of this script) unless
``--no-write``.  It needs valgrind (``apt-get install valgrind``) and wrk,
and says so if they are missing.
"""

from __future__ import annotations

import argparse
import contextlib
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# As in bench/http.py: this directory must not hide the standard library's ``http``.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import http as bench
from bench.procstat import snapshot

DOC = bench.DOC
SERVERS = (bench.BARE_HTTPTOOLS, bench.PACKRAT, bench.PACKRAT_AUTH)
WORKLOADS = ("GET 1 KiB", "GET 64 KiB", "HEAD", "exists", "upload 1 KiB POST", "upload 1 KiB PUT")
DURATION = 5  # seconds measured: a few thousand requests under callgrind
WARMUP = 2  # seconds, dropped: first-call costs (imports, caches) are not per-request
START_TIMEOUT = 180.0  # Packrat's three processes import Tornado and ZeroMQ at 1/50 speed
_TOTALS = re.compile(rb"^(?:summary|totals): (\d+)", re.MULTILINE)


@dataclass
class Count:
    server: str
    workload: str
    requests: int
    instructions: int  # of all the server's processes over the measured run

    @property
    def per_request(self) -> float:
        return self.instructions / self.requests if self.requests else float("inf")


def callgrind(out: Path, argv: list[str]) -> list[str]:
    """``argv`` under callgrind, its children too, one output file per process in ``out``."""
    return [
        "valgrind",
        "--tool=callgrind",
        "--trace-children=yes",
        "--dump-line=no",
        f"--callgrind-out-file={out}/callgrind.%p",
        *argv,
    ]


@contextlib.contextmanager
def slow_start(server: contextlib.AbstractContextManager[bench.Server]) -> Iterator[bench.Server]:
    """``bench/http.py``'s server launcher with a start-up timeout fit for callgrind."""
    saved = bench.START_TIMEOUT
    bench.START_TIMEOUT = START_TIMEOUT
    try:
        with server as started:
            bench.START_TIMEOUT = saved
            yield started
    finally:
        bench.START_TIMEOUT = saved


def control(command: str, pids: list[int]) -> None:
    for pid in pids:
        subprocess.run(
            ["callgrind_control", command, str(pid)], capture_output=True, timeout=60, check=False
        )


def instructions(out: Path, pids: list[int]) -> int:
    """The instructions of the last dump of each of ``pids``."""
    total = 0
    for pid in pids:
        dumps = sorted(out.glob(f"callgrind.{pid}.*"), key=lambda p: int(p.name.rsplit(".", 1)[1]))
        if dumps:
            found = _TOTALS.search(dumps[-1].read_bytes())
            total += int(found.group(1)) if found else 0
    return total


def measure(
    wrk: list[str], out: Path, server: bench.Server, workload: bench.Workload, duration: int
) -> Count:
    req = workload.requests[server.name]
    bench.run_wrk(wrk, server.url, req, workload.connections, 1, WARMUP)
    pids = snapshot().tree(server.pid)
    control("-z", pids)
    started = time.monotonic()
    raw = bench.run_wrk(wrk, server.url, req, workload.connections, 1, duration)
    control("-d", pids)
    loaded = time.monotonic() - started
    time.sleep(0.5)  # the dumps are written by the servers themselves
    busy = instructions(out, pids)
    # What the server does with no request (timers: touches, sweeps, log flushes)
    # is counted over as long again and taken off: on a busy machine fewer
    # requests complete in the same seconds, and that work would weigh more.
    control("-z", pids)
    time.sleep(loaded)
    control("-d", pids)
    time.sleep(0.5)
    idle = instructions(out, pids)
    return Count(server.name, workload.name, raw["requests"], max(busy - idle, 0))


def launch(
    name: str, work: Path, www: Path, out: Path
) -> contextlib.AbstractContextManager[bench.Server]:
    """Start ``name`` under callgrind with the launchers of ``bench/http.py``."""
    if name in bench.BARE:
        port = bench.free_port()
        argv = callgrind(
            out, [sys.executable, str(bench.BARE[name]), "--port", str(port), "--root", str(www)]
        )
        return _running(name, argv, work / f"bare-{port}.log", f"http://127.0.0.1:{port}")
    return _packrat(work, out, auth=name == bench.PACKRAT_AUTH)


@contextlib.contextmanager
def _running(name: str, argv: list[str], log: Path, url: str) -> Iterator[bench.Server]:
    with slow_start(bench.running(argv, log, name, url + "/exists/x")) as process:
        yield bench.Server(name, url, process.pid)


@contextlib.contextmanager
def _packrat(work: Path, out: Path, auth: bool) -> Iterator[bench.Server]:
    """``packrat serve`` (one front end) under callgrind, as ``bench.packrat_server`` starts it."""
    real_pinned = bench.pinned
    bench.pinned = lambda _cpus, argv: callgrind(out, argv)
    try:
        launcher = slow_start(bench.packrat_server(work, 1, None, auth=auth))
        server = launcher.__enter__()
    finally:
        bench.pinned = real_pinned
    try:
        yield server
    finally:
        launcher.__exit__(*sys.exc_info())


def render(counts: list[Count], args: argparse.Namespace, info: dict[str, str]) -> str:
    by = {(c.workload, c.server): c for c in counts}
    ran = [s for s in SERVERS if any(c.server == s for c in counts)]
    rows = list(dict.fromkeys(c.workload for c in counts))
    names = [f"{s} instructions/req" for s in ran]
    if bench.BARE_HTTPTOOLS in ran:
        names += [f"{s} ÷ bare httptools" for s in ran if s != bench.BARE_HTTPTOOLS]
    out = [
        "### Instructions per request (callgrind)",
        "",
        f"- command: `{args.command}`",
        f"- commit {info['commit']}, run {info['date']}; Python {info['python']},"
        f" {info['valgrind']}; 1-minute load average {info['load']} (it does not move"
        " these counts)",
        f"- each run: {WARMUP} s warm-up (dropped), then {args.duration} s measured under"
        " callgrind; wrk with 1 thread; user-space instructions of all the server's"
        " processes (Packrat: supervisor, coordinator, 1 front end) ÷ requests completed",
        "",
        "| workload | requests | " + " | ".join(names) + " |",
        "|---|--:|" + "--:|" * len(names),
    ]
    for workload in rows:
        cells = []
        for s in ran:
            c = by.get((workload, s))
            cells.append(f"{c.per_request / 1000:,.1f} k" if c else "-")
        floor = by.get((workload, bench.BARE_HTTPTOOLS))
        if floor is not None:
            for s in ran:
                if s != bench.BARE_HTTPTOOLS:
                    c = by.get((workload, s))
                    cells.append(f"{c.per_request / floor.per_request:.2f}" if c else "-")
        done = "/".join(str(by[(workload, s)].requests) for s in ran if (workload, s) in by)
        out.append(f"| {workload} | {done} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", default=list(WORKLOADS), help="workload names")
    parser.add_argument("--servers", nargs="+", choices=SERVERS, metavar="SERVER")
    parser.add_argument("--auth", action="store_true", help=f"also {bench.PACKRAT_AUTH!r}")
    parser.add_argument("--duration", type=int, default=DURATION, help="measured seconds")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--output", type=Path, default=DOC, help="markdown file to update")
    args = parser.parse_args(argv)
    args.command = "python bench/instructions.py" + (
        " " + shlex.join(sys.argv[1:]) if argv is None and sys.argv[1:] else ""
    )
    servers = args.servers or [s for s in SERVERS if s != bench.PACKRAT_AUTH or args.auth]
    wrk = shutil.which("wrk")
    for tool in ("valgrind", "callgrind_control"):
        if shutil.which(tool) is None:
            print(f"bench/instructions.py: skipped: no {tool} (apt-get install valgrind)")
            return 0
    if wrk is None:
        print("bench/instructions.py: skipped: wrk is not installed (apt-get install wrk)")
        return 0
    info = bench.machine()
    info["valgrind"] = subprocess.run(
        ["valgrind", "--version"], capture_output=True, text=True
    ).stdout.strip()
    counts: list[Count] = []
    with tempfile.TemporaryDirectory(prefix="packrat-instructions-") as tmp:
        work = Path(tmp)
        (work / "bodies").mkdir()
        workloads = [w for w in bench.make_workloads(work / "bodies") if w.name in args.only]
        objects = bench.objects_for(workloads)
        www = work / "www"
        bench.write_files(www, objects)
        for name in servers:
            out = work / f"callgrind-{name.replace(' ', '-')}"
            out.mkdir()
            print(f"-- {name}: starting under callgrind", flush=True)
            with launch(name, work, www, out) as server:
                if name in (bench.PACKRAT, bench.PACKRAT_AUTH):
                    bench.load(server, objects)
                for workload in workloads:
                    # Uploads go 3 to 4 times slower: more seconds keep the
                    # requests cut off at the end a small share.
                    seconds = args.duration * (3 if workload.name.startswith("upload") else 1)
                    count = measure([wrk], out, server, workload, seconds)
                    counts.append(count)
                    print(
                        f"{workload.name:<18} {name:<14} {count.requests:>6} requests"
                        f" {count.per_request / 1000:>9,.1f} k instructions/request",
                        flush=True,
                    )
    block = render(counts, args, info)
    print()
    print(block)
    if not args.no_write:
        text = args.output.read_text() if args.output.exists() else ""
        text = bench.update_doc(text, "per request", block, "bench/instructions.py")
        args.output.write_text(text)
        print(f"updated the instructions block of {args.output}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    raise SystemExit(main())
