"""HTTP load benchmark: Packrat against nginx serving the same files, driven by wrk.

Run: ``python bench/http.py`` (``make bench`` runs it; about 2.5 minutes).
Everything runs on 127.0.0.1 in a temporary directory, and every process it
starts (``packrat serve``, nginx, wrk) is stopped before it returns.

Workloads, each at 16 and 64 connections:

* ``GET 4 KiB`` / ``GET 4 MiB``: 512 small and 16 large objects, stored in
  Packrat by POST beforehand and written as plain files under nginx's root.
* ``POST 4 KiB`` / ``POST 4 MiB``: Packrat gets a multipart upload (field
  ``file``); nginx, the closest thing it has, gets the raw bytes by
  ``PUT`` (``dav_methods PUT``: body to a temporary file, then a rename).
  Uploads cycle over a fixed set of keys per wrk thread, so the bytes on
  disk stay bounded whatever the request rate.
* ``PUT 4 KiB`` / ``PUT 4 MiB``: the raw bytes by ``PUT`` to both, the
  same request for each.
* ``exists``: Packrat's ``GET /exists/<key>``; nginx answers the same JSON
  after an ``if (-f ...)`` stat of the file.

Each (workload, connections) pair runs Packrat then nginx back to back, a
warm-up run first (dropped), then a timed run; the machine is shared and
noisy, so the ratios Packrat/nginx are the numbers to compare across runs.
Latencies are wrk's percentiles of its closed-loop request times
(p50/p90/p99/max; the average is not reported).  wrk runs with one thread per
core on the same machine, for both servers alike.

Without ``wrk`` nothing can be measured and the script says what to install;
without ``nginx`` it measures Packrat alone and leaves docs/benchmarks.md as
it is.  It installs nothing itself.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import pwd
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, and this
# module's name would hide the standard library's ``http`` from requests.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
LUA = HERE / "wrk_script.lua"
DOC = REPO / "docs" / "benchmarks.md"

SMALL = 4 << 10  # bytes
LARGE = 4 << 20
SMALL_KEYS = 512  # objects the GET workloads read, round robin
LARGE_KEYS = 16
UPLOAD_KEYS_SMALL = 256  # keys each wrk thread overwrites in turn
UPLOAD_KEYS_LARGE = 8
CONNECTIONS = (16, 64)
WARMUP = 1.0  # seconds, dropped
DURATION = 3.0  # seconds, measured
WRK_TIMEOUT = 10  # seconds before wrk counts a request as timed out
START_TIMEOUT = 30.0
BOUNDARY = "----packratbenchQ3x7Lw0pVd"
SEED = 20240501


@dataclass(frozen=True)
class Workload:
    name: str
    size: int
    # (method, path prefix, keys, per-thread keys, body, content type) per server
    packrat: tuple[str, str, int, bool, str, str]
    nginx: tuple[str, str, int, bool, str, str]


@dataclass
class Result:
    server: str
    workload: str
    connections: int
    requests: int
    seconds: float
    bytes_moved: int
    p50: float  # milliseconds
    p90: float
    p99: float
    max: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def mib_s(self) -> float:
        return self.bytes_moved / self.seconds / (1 << 20)


# -- processes ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, process: subprocess.Popen, what: str, log: Path, ok=None) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited early:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(requests.ConnectionError):
            reply = requests.get(url, timeout=1)
            if ok is None or ok(reply):
                return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer on {url}:\n{log.read_text(errors='replace')}")


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, grace: float = 15.0) -> None:
    if process.poll() is None:
        process.send_signal(sig)
    try:
        process.wait(grace)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@contextlib.contextmanager
def packrat_server(work: Path, frontends: int) -> Iterator[str]:
    port = free_port()
    root = work / "packrat"
    (root / "run").mkdir(parents=True)
    config = root / "packrat.ini"
    config.write_text(
        "[server]\nhost = 127.0.0.1\n"
        f"port = {port}\n"
        f"[frontend]\nprocesses = {frontends}\n"
        f"[cache]\nroot = {root / 'cache'}\nmax_size = 2G\n"
        f"[coordinator]\nendpoint = ipc://{root / 'run' / 'coordinator.sock'}\n"
    )
    log = root / "packrat.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "packrat", "serve", "--config", str(config)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: a SIGKILL fallback reaches every child
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/", process, "packrat serve", log, lambda r: "Objects" in r.text)
        yield url
    finally:
        stop(process)


NGINX_CONF = """\
worker_processes {workers};
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        root {d}/www;
        client_max_body_size 16m;
        location ~ ^/exists/(?<key>.+)$ {{
            default_type application/json;
            if (-f $document_root/$key) {{ return 200 '{{"present": true}}'; }}
            return 200 '{{"present": false}}';
        }}
        location / {{
            dav_methods PUT;
            create_full_put_path on;
            dav_access user:rw;
        }}
    }}
}}
"""


@contextlib.contextmanager
def nginx_server(nginx: str, work: Path, workers: int) -> Iterator[str]:
    d = work / "nginx"
    (d / "www").mkdir(parents=True, exist_ok=True)
    port = free_port()
    # As root, nginx would switch its workers to "nobody", who cannot read a 0700 temp dir.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    conf = d / "nginx.conf"
    conf.write_text(NGINX_CONF.format(d=d, port=port, workers=workers, user=user))
    log = d / "stderr.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [nginx, "-p", str(d), "-c", str(conf), "-e", str(d / "error.log")],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_http(f"http://127.0.0.1:{port}/", process, "nginx", log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(process, signal.SIGQUIT)  # graceful: workers finish, master exits


# -- data -----------------------------------------------------------------


def multipart(payload: bytes) -> bytes:
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="blob.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + payload + f"\r\n--{BOUNDARY}--\r\n".encode()


def prepare(work: Path) -> tuple[dict[str, bytes], list[Workload]]:
    """The objects every GET reads, the upload bodies, and the workloads."""
    rng = random.Random(SEED)
    objects = {f"bench/small/{n}": rng.randbytes(SMALL) for n in range(SMALL_KEYS)}
    objects |= {f"bench/large/{n}": rng.randbytes(LARGE) for n in range(LARGE_KEYS)}
    bodies = work / "bodies"
    bodies.mkdir()
    ctype = f"multipart/form-data; boundary={BOUNDARY}"
    files = {}
    for label, size in (("small", SMALL), ("large", LARGE)):
        payload = rng.randbytes(size)
        (bodies / f"{label}.raw").write_bytes(payload)
        (bodies / f"{label}.multipart").write_bytes(multipart(payload))
        files[label] = (str(bodies / f"{label}.multipart"), str(bodies / f"{label}.raw"))
    workloads = [
        Workload(
            "GET 4 KiB",
            SMALL,
            ("GET", "/bench/small/", SMALL_KEYS, False, "-", "-"),
            ("GET", "/bench/small/", SMALL_KEYS, False, "-", "-"),
        ),
        Workload(
            "GET 4 MiB",
            LARGE,
            ("GET", "/bench/large/", LARGE_KEYS, False, "-", "-"),
            ("GET", "/bench/large/", LARGE_KEYS, False, "-", "-"),
        ),
        Workload(
            "POST 4 KiB",
            SMALL,
            ("POST", "/bench/up-small/", UPLOAD_KEYS_SMALL, True, files["small"][0], ctype),
            ("PUT", "/bench/up-small/", UPLOAD_KEYS_SMALL, True, files["small"][1], "-"),
        ),
        Workload(
            "POST 4 MiB",
            LARGE,
            ("POST", "/bench/up-large/", UPLOAD_KEYS_LARGE, True, files["large"][0], ctype),
            ("PUT", "/bench/up-large/", UPLOAD_KEYS_LARGE, True, files["large"][1], "-"),
        ),
        Workload(
            "PUT 4 KiB",
            SMALL,
            ("PUT", "/bench/put-small/", UPLOAD_KEYS_SMALL, True, files["small"][1], "-"),
            ("PUT", "/bench/put-small/", UPLOAD_KEYS_SMALL, True, files["small"][1], "-"),
        ),
        Workload(
            "PUT 4 MiB",
            LARGE,
            ("PUT", "/bench/put-large/", UPLOAD_KEYS_LARGE, True, files["large"][1], "-"),
            ("PUT", "/bench/put-large/", UPLOAD_KEYS_LARGE, True, files["large"][1], "-"),
        ),
        Workload(
            "exists",
            0,
            ("GET", "/exists/bench/small/", SMALL_KEYS, False, "-", "-"),
            ("GET", "/exists/bench/small/", SMALL_KEYS, False, "-", "-"),
        ),
    ]
    return objects, workloads


def load_packrat(url: str, objects: dict[str, bytes]) -> None:
    with requests.Session() as session:
        for key, data in objects.items():
            reply = session.post(f"{url}/{key}", files={"file": ("blob.bin", data)}, timeout=60)
            reply.raise_for_status()


def load_nginx(work: Path, objects: dict[str, bytes]) -> None:
    www = work / "nginx" / "www"
    for key, data in objects.items():
        path = www / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def check(url: str, objects: dict[str, bytes], server: str) -> None:
    """One request of each kind answers correctly before anything is timed."""
    for key in ("bench/small/0", f"bench/large/{LARGE_KEYS - 1}"):
        reply = requests.get(f"{url}/{key}", timeout=30)
        assert reply.status_code == 200 and reply.content == objects[key], (server, key)
    reply = requests.put(f"{url}/bench/check-put", data=b"x" * SMALL, timeout=10)
    assert reply.status_code in (200, 201, 204), (server, "PUT", reply.status_code, reply.text)
    for key, present in (("bench/small/1", True), ("bench/nothing", False)):
        reply = requests.get(f"{url}/exists/{key}", timeout=10)
        assert reply.json() == {"present": present}, (server, key, reply.text)


# -- load -----------------------------------------------------------------


def run_wrk(
    wrk: str, url: str, spec: tuple, connections: int, threads: int, seconds: float
) -> dict:
    method, prefix, keys, per_thread, body, ctype = spec
    argv = [
        wrk,
        f"--threads={min(threads, connections)}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        f"--timeout={WRK_TIMEOUT}s",
        f"--script={LUA}",
        url,
        "--",
        method,
        prefix,
        str(keys),
        "1" if per_thread else "0",
        body,
        ctype,
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line.removeprefix("WRKJSON "))
    raise SystemExit(f"wrk gave no result ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def measure(wrk: str, server: str, url: str, workload: Workload, connections: int, args) -> Result:
    spec = workload.packrat if server == "Packrat" else workload.nginx
    run_wrk(wrk, url, spec, connections, args.threads, args.warmup)  # dropped
    raw = run_wrk(wrk, url, spec, connections, args.threads, args.duration)
    seconds = raw["duration_us"] / 1e6
    moved = raw["bytes"] if spec[0] == "GET" else raw["requests"] * workload.size
    return Result(
        server=server,
        workload=workload.name,
        connections=connections,
        requests=raw["requests"],
        seconds=seconds,
        bytes_moved=moved,
        p50=raw["p50_us"] / 1000,
        p90=raw["p90_us"] / 1000,
        p99=raw["p99_us"] / 1000,
        max=raw["max_us"] / 1000,
        errors=sum(raw["errors"].values()),
    )


# -- report ---------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(REPO), "status", "--porcelain", "--", "packrat"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    if commit and dirty:
        commit += " with uncommitted changes in packrat/"
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit or "unknown",
        "load": f"{os.getloadavg()[0]:.1f}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def version(argv: list[str], starts: str) -> str:
    """The first line of a tool's version output that starts with ``starts``."""
    done = subprocess.run(argv, capture_output=True, text=True)
    for line in (done.stdout + done.stderr).splitlines():
        if line.startswith(starts):
            return line.removeprefix(starts).split(" [")[0].strip()
    return "unknown"


def ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def lat(r: Result) -> str:
    return " / ".join(ms(v) for v in (r.p50, r.p90, r.p99, r.max))


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def headroom(results: list[Result]) -> list[str]:
    """A line showing that wrk outran Packrat: on the same cell it drove nginx much faster."""
    by = {(r.server, r.workload, r.connections): r for r in results}
    nginx = [r for r in results if r.server == "nginx"]
    if not nginx:
        return []
    n = max(nginx, key=lambda r: r.rate)
    p = by.get(("Packrat", n.workload, n.connections))
    if p is None:
        return []
    return [
        f"- load generator: on {n.workload} at {n.connections} connections the same wrk drove"
        f" nginx at {n.rate:,.0f} req/s and Packrat at {p.rate:,.0f}, so wrk is not what"
        " limits Packrat"
    ]


def render(results: list[Result], info: dict[str, str], args, versions: dict[str, str]) -> str:
    by = {(r.server, r.workload, r.connections): r for r in results}
    rows = list(dict.fromkeys((r.workload, r.connections) for r in results))  # run order
    out = [
        "# HTTP benchmarks",
        "",
        "Written by `bench/http.py` (`make bench`); do not edit by hand. Packrat and nginx serve",
        "the same objects on 127.0.0.1 and the same wrk (one thread per core, on the same",
        "machine) loads each in turn; the machine is shared and noisy, so compare the",
        "**Packrat/nginx ratios** between runs rather than the absolute numbers.",
        "",
        f"- command: `{args.command}`",
        f"- machine: {info['nproc']} CPUs (`nproc`), {info['cpu']}, Linux {info['kernel']}",
        f"- software: Python {info['python']}, {versions['nginx']}, {versions['wrk']}",
        f"- Packrat: `packrat serve`, {args.frontends} front ends + coordinator, commit"
        f" {info['commit']}; nginx: {args.frontends} workers, sendfile on, access log off",
        f"- machine load (1-minute load average, other jobs included): {info['load']} before"
        f" the run, {os.getloadavg()[0]:.1f} after",
        f"- each cell: {args.warmup:g} s warm-up (dropped), then {args.duration:g} s measured;"
        f" run {info['date']}",
        "- POST: Packrat gets multipart `POST /<key>`; nginx gets the raw bytes by"
        " `PUT` (`dav_methods PUT`, temp file then rename), its closest equivalent",
        "- PUT: the raw bytes by `PUT` to both, the same request",
        "- exists: Packrat's `GET /exists/<key>`; nginx stats the file (`if (-f ...)`)"
        " and returns the same JSON",
        *headroom(results),
        "",
        "## Packrat / nginx",
        "",
        "Throughput ratio above 1 means Packrat is faster; latency ratio above 1 means"
        " Packrat is slower.",
        "",
        "| workload | conns | Packrat req/s | nginx req/s | req/s ratio | p50 ratio | p99 ratio |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for workload, conns in rows:
        p = by.get(("Packrat", workload, conns))
        n = by.get(("nginx", workload, conns))
        if p is None:
            continue
        out.append(
            f"| {workload} | {conns} | {p.rate:,.0f} | {f'{n.rate:,.0f}' if n else '-'} | "
            f"{ratio(p.rate, n.rate) if n else '-'} | {ratio(p.p50, n.p50) if n else '-'} | "
            f"{ratio(p.p99, n.p99) if n else '-'} |"
        )
    out += [
        "",
        "## Every run",
        "",
        "Latency in milliseconds: p50 / p90 / p99 / max. MiB/s counts response bodies"
        " for GET and upload payloads for POST/PUT. Errors: socket errors, timeouts"
        " and statuses above 399.",
        "",
        "| workload | conns | server | requests | req/s | MiB/s | p50 / p90 / p99 / max ms"
        " | errors |",
        "|---|--:|---|--:|--:|--:|--:|--:|",
    ]
    for workload, conns in rows:
        for server in ("Packrat", "nginx"):
            r = by.get((server, workload, conns))
            if r:
                out.append(
                    f"| {workload} | {conns} | {server} | {r.requests:,} | {r.rate:,.0f} | "
                    f"{r.mib_s:,.1f} | {lat(r)} | {r.errors} |"
                )
    return "\n".join(out) + "\n"


# -- main -----------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cores = len(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=DURATION, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=WARMUP, help="dropped seconds")
    parser.add_argument(
        "--connections", type=int, nargs="+", default=list(CONNECTIONS), help="e.g. 16 64"
    )
    parser.add_argument("--threads", type=int, default=cores, help="wrk threads")
    parser.add_argument(
        "--frontends", type=int, default=cores, help="Packrat front ends and nginx workers"
    )
    parser.add_argument("--only", nargs="+", help="workload names to run, e.g. 'GET 4 KiB'")
    parser.add_argument("--output", type=Path, default=DOC, help="markdown file to write")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    args.command = "python bench/http.py" + (
        " " + " ".join(sys.argv[1:]) if argv is None and sys.argv[1:] else ""
    )
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wrk = shutil.which("wrk")
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if wrk is None:
        print("bench/http.py: skipped: wrk is not installed (apt-get install wrk)")
        return 0
    if nginx is None:
        print(
            "bench/http.py: nginx is not installed (apt-get install nginx): measuring Packrat"
            " alone, without the baseline, and not writing docs/benchmarks.md"
        )
    started = time.monotonic()
    info = machine()  # the commit the servers are about to run
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="packrat-bench-") as tmp:
        work = Path(tmp)
        objects, workloads = prepare(work)
        if args.only:
            workloads = [w for w in workloads if w.name in args.only]
        with contextlib.ExitStack() as stack:
            servers = {"Packrat": stack.enter_context(packrat_server(work, args.frontends))}
            load_packrat(servers["Packrat"], objects)
            if nginx:
                load_nginx(work, objects)
                servers["nginx"] = stack.enter_context(nginx_server(nginx, work, args.frontends))
            for server, url in servers.items():
                check(url, objects, server)
            for workload in workloads:
                for conns in args.connections:
                    for server, url in servers.items():
                        r = measure(wrk, server, url, workload, conns, args)
                        results.append(r)
                        print(
                            f"{workload.name:<11} {conns:>3} conns  {server:<7}"
                            f" {r.rate:>9,.0f} req/s {r.mib_s:>8,.1f} MiB/s"
                            f"  p50/p90/p99/max {lat(r)} ms  errors {r.errors}",
                            flush=True,
                        )
    versions = {
        "nginx": version([nginx, "-v"], "nginx version: ") if nginx else "no nginx",
        "wrk": version([wrk, "--version"], ""),
    }
    report = render(results, info, args, versions)
    print()
    print(report)
    print(f"bench/http.py: {time.monotonic() - started:.0f} s")
    if nginx and not args.no_write:
        args.output.write_text(report)
        print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
