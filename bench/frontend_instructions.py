"""Instructions per request of one front end alone, in process: no socket, no kernel, no neighbour.

Run: ``python bench/frontend_instructions.py`` (``--only HEAD exists``,
``--auth``, ``--baseline main``).  The front end is built as ``packrat
frontend`` builds it (``make_dependencies``, ``make_app``, ``make_server``)
in one process, with a real coordinator as a child process, and one
``http1.Connection`` is fed requests through a stand-in transport that only
counts what is written: wrk's requests (``bench/http.py``'s keys and
bodies), four to a turn of the event loop for reads, one at a time for
uploads (each waits for its commit).  It runs under ``valgrind
--tool=callgrind`` twice, for ``--short`` and ``--long`` requests, and the
difference of the two totals divided by the difference of the requests is
the count per request: start-up, imports and loading cancel out.
``--requests-only`` counts only what runs inside httptools' ``feed_data``,
where a read is answered whole (parsing, routing, the object path, the
answer's write, the access line and the counts), leaving out what runs
between requests (the timers, the metrics' and the log's flushes, libzmq's
thread), so that it does not move with the machine's load; for reads only
(an upload's commit and answer run after its feed).

The count is the front end's user-space instructions: the interpreter, the
C extensions, libzmq's I/O thread.  It leaves out what ``bench/http.py``'s
CPU times include (system calls, the TCP stack, waking the client, the
coordinator's share), and what the load on the machine does to them.  It
still moves by 2 to 3 % between runs: the front end's timers (the touch
batch, the log's flush) fire by wall-clock time, which callgrind stretches
more on a busy machine.  Compare versions by it, in one run
(``--baseline REV`` runs another revision's ``packrat/``, ``bench.http.checkout``);
read ``bench/http.py``'s tables for what a request costs the machine, and
``bench/instructions.py`` for the whole server under wrk.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

# As in bench/http.py: this directory must not hide the standard library's ``http``;
# the repository root goes last, so that a baseline's ``packrat`` (PYTHONPATH) comes first.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.forms import content_type, multipart_body

HERE = Path(__file__).resolve()
KIB = 1 << 10
BOUNDARY = "----packratbenchQ3x7Lw0pVd"
TOKEN = "bench-token-0123456789abcdef"
WORKLOADS = ("GET 1 KiB", "HEAD", "exists", "upload 1 KiB PUT", "upload 1 KiB POST")
UPLOADS = ("upload 1 KiB PUT", "upload 1 KiB POST")
SHORT, LONG = 500, 2500  # requests of the two runs
WARM = 300  # requests before the counted ones (caches, first calls)
PER_TURN = 4  # reads fed per turn of the event loop
_TOTALS = re.compile(rb"^(?:summary|totals): (\d+)", re.MULTILINE)
# httptools' feed_data, inside which a read is answered whole (--requests-only)
FEED_DATA = "__pyx_pw_9httptools_6parser_6parser_10HttpParser_13feed_data"


def request(method: str, path: str, auth: bool, body: bytes = b"", kind: str = "") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n"
    if auth:
        head += f"Authorization: Bearer {TOKEN}\r\n"
    if kind:
        head += f"Content-Type: {kind}\r\n"
    if method in ("PUT", "POST"):
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def requests_of(workload: str, auth: bool) -> list[bytes]:
    """What wrk sends for ``workload`` in ``bench/http.py`` (its keys, one thread's)."""
    payload = bytes(range(256)) * 4
    if workload == "GET 1 KiB":
        return [request("GET", f"/bench/{KIB}/{n}", auth) for n in range(512)]
    if workload == "HEAD":
        return [request("HEAD", f"/bench/0/{n}", auth) for n in range(512)]
    if workload == "exists":
        return [request("GET", f"/exists/bench/{KIB}/{n}", auth) for n in range(512)]
    if workload == "upload 1 KiB PUT":
        return [request("PUT", f"/up/{KIB}/0-{n}", auth, payload) for n in range(256)]
    form = multipart_body(payload, BOUNDARY)
    return [
        request("POST", f"/up/{KIB}/0-{n}", auth, form, content_type(BOUNDARY)) for n in range(256)
    ]


class Transport:
    """The connection's transport: counts writes and keeps the last one's start."""

    def __init__(self) -> None:
        self.writes = 0
        self.last = b""
        self.written: asyncio.Event | None = None

    def write(self, data: bytes | memoryview) -> None:
        self.writes += 1
        self.last = bytes(data[:64])
        if self.written is not None:
            self.written.set()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass


async def feed(connection: Any, transport: Transport, requests: list[bytes], count: int) -> None:
    """Send ``count`` requests round robin; an upload waits for its answer."""
    for n in range(count):
        data = requests[n % len(requests)]
        if data.startswith((b"PUT", b"POST")):
            before = transport.writes
            connection.data_received(data)
            if transport.writes == before:
                transport.written = asyncio.Event()
                await transport.written.wait()
                transport.written = None
        else:
            connection.data_received(data)
            if n % PER_TURN == PER_TURN - 1:
                await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    if not transport.last.startswith(b"HTTP/1.1 200 "):
        print(f"the last answer was not a 200: {transport.last!r}")  # stderr is the log
        raise SystemExit(1)


def serve(workload: str, count: int, auth: bool) -> None:
    """The front end in this process (``--feed``): load the objects, warm up, feed ``count``."""
    work = Path(tempfile.mkdtemp(prefix="packrat-frontend-instructions-"))
    config = work / "packrat.ini"
    config.write_text(
        "[server]\nhost = 127.0.0.1\nport = 1\n"
        f"[cache]\nroot = {work / 'cache'}\nmax_size = 4G\n"
        f"[coordinator]\nendpoint = ipc://{work / 'coordinator.sock'}\n"
        + (f"[auth]\nenabled = true\nwrite_tokens = {TOKEN}\n" if auth else "")
    )
    with open(work / "coordinator.log", "w") as log:
        coordinator = subprocess.Popen(
            [sys.executable, "-m", "packrat", "coordinator", "--config", str(config)], stderr=log
        )
    try:
        os.dup2(os.open(work / "frontend.log", os.O_WRONLY | os.O_CREAT, 0o644), 2)
        asyncio.run(_serve(config, workload, count, auth))
    finally:
        coordinator.terminate()
        coordinator.wait()
        shutil.rmtree(work, ignore_errors=True)


async def _serve(config: Path, workload: str, count: int, auth: bool) -> None:
    from packrat.coordinator.connection import AsyncCoordinatorClient
    from packrat.core import logs
    from packrat.core.settings import load
    from packrat.frontend.app import make_app, make_dependencies, make_server
    from packrat.frontend.http1 import Connection

    settings = load(config)
    logs.configure("frontend 0", settings, buffered=True)
    client = AsyncCoordinatorClient(
        settings.coordinator_endpoint,
        settings.coordinator_timeout,
        settings.frontend_touch_interval,
        settings.coordinator_curve_keys,
    )
    client.start()
    server = make_server(make_app(make_dependencies(settings, client, 0)), settings)
    transport = Transport()
    connection = Connection(server)
    connection.connection_made(transport)  # type: ignore[arg-type]
    payload = bytes(range(256)) * 4
    objects = [request("PUT", f"/bench/{KIB}/{n}", auth, payload) for n in range(512)]
    objects += [request("PUT", f"/bench/0/{n}", auth) for n in range(512)]
    await feed(connection, transport, objects, len(objects))
    # As a cache's objects are when most reads come: settled (store.reader.SETTLED_NS),
    # so that the front end may keep what it read of them.
    await asyncio.sleep(2.1)
    requests = requests_of(workload, auth)
    await feed(connection, transport, requests, WARM)
    await feed(connection, transport, requests, count)
    await client.close()


def count(
    workload: str, requests: int, auth: bool, source: Path | None, out: Path, inside: bool
) -> int:
    """The instructions of one run under callgrind (the coordinator is not counted);
    ``inside``: only those inside httptools' ``feed_data``."""
    dump = out / f"callgrind.{requests}"
    env = dict(os.environ, PYTHONPATH=str(source)) if source else None
    argv = [sys.executable, str(HERE), "--feed", workload, str(requests)]
    subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--dump-line=no",
            f"--callgrind-out-file={dump}",
            *([f"--toggle-collect={FEED_DATA}"] if inside else []),
            *argv,
            *(["--auth"] if auth else []),
        ],
        check=True,
        capture_output=True,
        env=env,
    )
    found = _TOTALS.search(dump.read_bytes())
    assert found, f"no totals in {dump}"
    return int(found.group(1))


def per_request(workload: str, auth: bool, source: Path | None, args: argparse.Namespace) -> float:
    with tempfile.TemporaryDirectory(prefix="packrat-callgrind-") as out:
        short = count(workload, args.short, auth, source, Path(out), args.requests_only)
        long = count(workload, args.long, auth, source, Path(out), args.requests_only)
    return (long - short) / (args.long - args.short)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--auth", action="store_true", help="a bearer token on every request")
    parser.add_argument("--baseline", metavar="REV", help="also this revision's packrat/")
    parser.add_argument(
        "--requests-only",
        action="store_true",
        help="count only what runs inside the parser's feed (every read is answered there):"
        " not the timers, the metrics' and the log's flushes, nor libzmq's thread",
    )
    parser.add_argument("--short", type=int, default=SHORT, help="requests of the first run")
    parser.add_argument("--long", type=int, default=LONG, help="requests of the second run")
    parser.add_argument("--feed", nargs=2, metavar=("WORKLOAD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.feed:
        serve(args.feed[0], int(args.feed[1]), args.auth)
        return 0
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is needed (apt-get install valgrind)")
    with tempfile.TemporaryDirectory(prefix="packrat-baseline-") as tree:
        source = None
        if args.baseline:
            from bench.http import checkout

            source = checkout(args.baseline, Path(tree))
        header = "| workload | this tree |" + (f" {args.baseline} | change |" if source else "")
        print(
            "Front end alone, instructions per request"
            + (" (bearer token)" if args.auth else "")
            + (", inside the parser's feed" if args.requests_only else "")
        )
        print(header)
        print("|---|--:|" + ("--:|--:|" if source else ""))
        for workload in args.only:
            mine = per_request(workload, args.auth, None, args)
            row = f"| {workload} | {mine / 1000:,.1f} k |"
            if source is not None:
                base = per_request(workload, args.auth, source, args)
                row += f" {base / 1000:,.1f} k | {100 * (mine / base - 1):+.1f} % |"
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
