"""HTTP load benchmark: Packrat beside nginx and a naive Tornado server, driven by wrk.

Run: ``python bench/http.py`` (``make bench`` runs it unpinned and pinned;
3 to 6 minutes each on 2 cores, depending on how long it waits for an idle
machine), ``--pin`` to put the servers and wrk on separate cores,
``--frontends 1 2`` for one table per Packrat front-end count, ``--repeat 3``
to keep the median of three runs per cell (the servers take turns),
``--quick`` for a smoke run of a few seconds per workload.  Everything runs on
127.0.0.1 in a temporary directory, and every process it starts (``packrat
serve``, nginx, the naive server, wrk) is stopped before it returns.

Six servers answer the same files:

* nginx (sendfile, access log off, as many workers as Packrat has front
  ends): what the kernel and a C server can do.  Uploads go to WebDAV
  ``PUT`` (body to a temporary file, then a rename), its closest thing.
  ``nginx logged`` is the same with an access log written through a 64 KiB
  buffer, a line per request with the fields of Packrat's access line (time,
  level, role, client, method, path, status, bytes sent and received,
  duration, user agent; JSON-escaped): Packrat always writes one.
* the floor of a Python server, one process each: ``bench/bare_httptools.py``
  (asyncio and httptools, the parser and loop Packrat's front ends use) and
  ``bench/bare_tornado.py`` (Tornado's ``HTTP1Connection`` with a bare
  delegate); each opens, reads and answers, or writes a new file and renames
  it, and does nothing else.
* a naive single-process Tornado file server (``bench/naive_tornado.py``):
  64 KiB chunked GET, a non-streaming multipart POST, the server Packrat
  replaces.
* Packrat (``packrat serve``: supervisor, coordinator, front ends); with
  ``--auth`` a second Packrat with ``[auth]`` on, every request to it
  carrying a bearer token (``Packrat auth``), so the cost of access control
  is measured in the same run; with ``--baseline REV`` another one running
  the ``packrat/`` of a git revision (``Packrat baseline``), taking turns
  with this one, so a change is measured before and after in one run.
  ``--servers`` picks some of them.

Workloads, each at 16 connections (GET 16 MiB at 4, 64 MiB uploads at 2 and
for twice as long, so that the few requests cut off when a run ends weigh
little against those it completes):
GET of 1 KiB, 64 KiB, 1 MiB and 16 MiB objects; HEAD (of empty objects: wrk
waits for as many body bytes as Content-Length says, wg/wrk#198, and the
servers do the same work whatever the size); ``exists`` (Packrat's
``GET /exists/<key>``; the others stat the file and answer the same JSON);
uploads of 1 KiB, 1 MiB and 64 MiB, once as a multipart ``POST`` (nginx gets
``PUT``) and once as a ``PUT`` to all three.  Uploads cycle over a fixed set
of keys per wrk thread, so the bytes on disk stay bounded whatever the
request rate.

For every run it reports req/s, MB/s (payload bytes, 10^6), wrk's p50/p99,
and the server's CPU: the CPU time of all of its processes, read from
/proc/<pid>/stat (``bench/procstat.py``) before and after the measured run,
as % of one core and as microseconds per request.  Before each workload it
waits (up to ``--idle-wait`` seconds) until other processes use less than
15 % of a core, and it flags a run during which they used more.  A run is a
warm-up (dropped) then the measured run, once the server's processes are
idle again; servers run back to back in the order nginx, naive Tornado,
Packrat.

Without ``wrk`` nothing can be measured and it says what to install; without
``nginx`` it measures the other two and leaves docs/benchmarks.md as it is.
It installs nothing itself.  ``--dir`` puts every server's files (objects,
uploads, Packrat's cache root) on a chosen file system.  Results go to
docs/benchmarks.md (the block of the mode that ran; the rest of the file is
kept) and, with ``--json``, to a file for scripts.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import platform
import pwd
import random
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, where this
# module's name would hide the standard library's ``http`` from requests; the
# repository root takes its place so that bench/'s modules import as bench.<name>.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import requests

from bench.forms import content_type, multipart_body
from bench.procstat import Reading, snapshot

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

LUA = HERE / "wrk_script.lua"
NAIVE = HERE / "naive_tornado.py"
DOC = REPO / "docs" / "benchmarks.md"

KIB, MIB = 1 << 10, 1 << 20
GET_KEYS = {KIB: 512, 64 * KIB: 256, MIB: 64, 16 * MIB: 8}  # objects read round robin
HEAD_KEYS = 512  # empty objects (see make_workloads)
UPLOAD_KEYS = {KIB: 256, MIB: 16, 64 * MIB: 2}  # keys each wrk thread overwrites in turn
CONNECTIONS = 16
# Requests still under way when a run ends cost CPU but are not counted: for
# the largest objects, fewer connections keep that share to a few percent.
BIG_GET_CONNECTIONS = 4  # GET 16 MiB
BIG_UPLOAD_CONNECTIONS = 2  # upload 64 MiB, measured for twice as long
WARMUP = 1  # seconds, dropped (wrk takes whole seconds)
DURATION = 3  # seconds, measured
IDLE_WAIT = 15.0  # most seconds to wait for other processes to calm down, per workload
IDLE_LIMIT = 0.15  # cores other processes may use before a run is flagged
SETTLE_LIMIT = 0.05  # cores a server may still use when its measured run starts
SETTLE_WAIT = 5.0  # most seconds to wait for that after the warm-up
WRK_TIMEOUT = 10  # seconds before wrk counts a request as timed out
START_TIMEOUT = 30.0
PR_SET_PDEATHSIG = 1
BOUNDARY = "----packratbenchQ3x7Lw0pVd"
SEED = 20240501
NGINX, NAIVE_TORNADO, PACKRAT = "nginx", "naive Tornado", "Packrat"
NGINX_LOGGED = "nginx logged"  # nginx writing an access line per request, as Packrat does
BARE_HTTPTOOLS, BARE_TORNADO, PACKRAT_AUTH = "bare httptools", "bare Tornado", "Packrat auth"
PACKRAT_BASELINE = "Packrat baseline"  # another revision's packrat/ (--baseline REV)
# run order within a workload
SERVERS = (
    NGINX,
    NGINX_LOGGED,
    BARE_HTTPTOOLS,
    BARE_TORNADO,
    NAIVE_TORNADO,
    PACKRAT_BASELINE,
    PACKRAT,
    PACKRAT_AUTH,
)
PACKRATS = (PACKRAT_BASELINE, PACKRAT, PACKRAT_AUTH)
BARE = {BARE_HTTPTOOLS: HERE / "bare_httptools.py", BARE_TORNADO: HERE / "bare_tornado.py"}
TOKEN = "bench-token-0123456789abcdef"  # Packrat auth's write token, sent on every request
QUICK = ("GET 1 KiB", "GET 1 MiB", "HEAD", "exists", "upload 1 KiB POST")


def size_name(size: int) -> str:
    return f"{size // MIB} MiB" if size >= MIB else f"{size // KIB} KiB"


@dataclass(frozen=True)
class Request:
    """What wrk sends one server for a workload (see wrk_script.lua)."""

    method: str
    prefix: str  # keys are <prefix><n>, or <prefix><thread>-<n> when per_thread
    keys: int
    per_thread: bool = False
    body: Path | None = None
    content_type: str | None = None
    authorization: str | None = None


@dataclass(frozen=True)
class Workload:
    name: str
    size: int  # payload bytes per request: the object read or uploaded (0: none)
    connections: int
    requests: dict[str, Request]  # per server
    scale: int = 1  # measured for this many times the usual duration


@dataclass
class Result:
    server: str
    workload: str
    frontends: int
    connections: int
    requests: int
    seconds: float  # wrk's measured duration
    payload: int  # bytes per request
    p50: float  # milliseconds
    p90: float
    p99: float
    max: float
    errors: int
    cpu: float  # server CPU seconds over the measured run
    wall: float  # seconds between the two CPU readings
    others: float  # cores other processes used meanwhile
    spread: tuple[float, float] | None = None  # CPU µs/req, lowest and highest of the repeats

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    @property
    def mb_s(self) -> float:
        return self.requests * self.payload / self.seconds / 1e6

    @property
    def cpu_percent(self) -> float:
        return 100 * self.cpu / self.wall

    @property
    def cpu_us(self) -> float:
        return 1e6 * self.cpu / self.requests if self.requests else float("inf")

    @property
    def busy(self) -> bool:
        return self.others > IDLE_LIMIT


@dataclass
class Server:
    name: str
    url: str
    pid: int  # root of its process tree
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request


# -- processes ------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(
    url: str, process: subprocess.Popen, what: str, log: Path, ok=None, headers=None
) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited early:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(requests.ConnectionError, requests.Timeout):
            reply = requests.get(url, timeout=5, headers=headers)
            if ok is None or ok(reply):
                return
        time.sleep(0.1)
    raise SystemExit(f"{what} did not answer on {url}:\n{log.read_text(errors='replace')}")


@contextlib.contextmanager
def running(
    argv: list[str],
    log: Path,
    what: str,
    url: str,
    stop_signal=signal.SIGTERM,
    ok=None,
    headers=None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen]:
    """Start ``argv``, wait until ``url`` answers; at the end stop it and all it started."""
    with open(log, "wb") as out:
        process = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    try:
        wait_http(url, process, what, log, ok, headers)
        yield process
    finally:
        tree = snapshot().tree(process.pid)
        if process.poll() is None:
            process.send_signal(stop_signal)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for pid in tree[1:]:  # anything that outlived its parent's shutdown
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def die_with_parent() -> None:
    """In the child, before exec: SIGTERM when this script dies, even by SIGKILL."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def pinned(cpus: list[int] | None, argv: list[str]) -> list[str]:
    """``argv`` run on ``cpus`` only (its children inherit the set), or as is."""
    return ["taskset", "-c", ",".join(map(str, cpus)), *argv] if cpus else argv


def checkout(revision: str, into: Path) -> Path:
    """``packrat/`` as it was at ``revision`` (git archive), for a baseline."""
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", revision, "packrat"],
        capture_output=True,
        check=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into


@contextlib.contextmanager
def packrat_server(
    work: Path,
    frontends: int,
    cpus: list[int] | None,
    auth: bool = False,
    source: Path | None = None,
) -> Iterator[Server]:
    """``packrat serve``; with ``auth``, ``[auth]`` on and ``TOKEN`` the one write token;
    with ``source``, the ``packrat/`` under it (``checkout``) as ``PACKRAT_BASELINE``."""
    port = free_port()
    root = work / f"packrat-{frontends}{'-auth' if auth else ''}{'-baseline' if source else ''}"
    (root / "run").mkdir(parents=True)
    config = root / "packrat.ini"
    config.write_text(
        "[server]\nhost = 127.0.0.1\n"
        f"port = {port}\n"
        f"[frontend]\nprocesses = {frontends}\n"
        f"[cache]\nroot = {root / 'cache'}\nmax_size = 4G\n"
        f"[coordinator]\nendpoint = ipc://{root / 'run' / 'coordinator.sock'}\n"
        + (f"[auth]\nenabled = true\nwrite_tokens = {TOKEN}\n" if auth else "")
    )
    argv = pinned(cpus, [sys.executable, "-m", "packrat", "serve", "--config", str(config)])
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"} if auth else {}
    env = dict(os.environ, PYTHONPATH=str(source)) if source else None
    name = PACKRAT_BASELINE if source else PACKRAT_AUTH if auth else PACKRAT
    with running(
        argv,
        root / "packrat.log",
        "packrat serve",
        url + "/",
        ok=lambda r: "Objects" in r.text,
        headers=headers,
        env=env,
        # ``-m`` puts the working directory first on the path, before PYTHONPATH: run
        # from the repository, a baseline would be this tree's ``packrat/``.
        cwd=source,
    ) as process:
        yield Server(name, url, process.pid, headers)


NGINX_CONF = """\
worker_processes {workers};
daemon off;
pid {d}/nginx.pid;
error_log {d}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    {access_log}
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
        root {www};
        client_max_body_size 256m;
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


# Packrat's access line, field for field (received: nginx counts the request's head too).
NGINX_ACCESS_LOG = """\
log_format packrat escape=json '$time_iso8601 INFO [nginx] $remote_addr $request_method'
        ' "$request_uri" $status sent=$body_bytes_sent received=$request_length'
        ' ${{request_time}}s "$http_user_agent"';
    access_log {d}/access.log packrat buffer=64k flush=1s;"""


@contextlib.contextmanager
def nginx_server(
    nginx: str, work: Path, www: Path, workers: int, cpus: list[int] | None, logged: bool = False
) -> Iterator[Server]:
    d = work / f"nginx-{workers}{'-logged' if logged else ''}"
    d.mkdir()
    port = free_port()
    # As root, nginx would switch its workers to "nobody", who cannot read a 0700 temp dir.
    user = f"user {pwd.getpwuid(os.geteuid()).pw_name};" if os.geteuid() == 0 else ""
    conf = d / "nginx.conf"
    access_log = NGINX_ACCESS_LOG.format(d=d) if logged else "access_log off;"
    conf.write_text(
        NGINX_CONF.format(
            d=d, www=www, port=port, workers=workers, user=user, access_log=access_log
        )
    )
    argv = pinned(cpus, [nginx, "-p", str(d), "-c", str(conf), "-e", str(d / "error.log")])
    url = f"http://127.0.0.1:{port}"
    # SIGQUIT: graceful, the workers finish, then the master exits.
    with running(argv, d / "stderr.log", "nginx", url + "/", signal.SIGQUIT) as process:
        yield Server(NGINX_LOGGED if logged else NGINX, url, process.pid)


@contextlib.contextmanager
def naive_server(work: Path, www: Path, cpus: list[int] | None) -> Iterator[Server]:
    port = free_port()
    argv = pinned(cpus, [sys.executable, str(NAIVE), "--port", str(port), "--root", str(www)])
    url = f"http://127.0.0.1:{port}"
    log = work / f"naive-{port}.log"
    with running(argv, log, "bench/naive_tornado.py", url + "/exists/x") as process:
        yield Server(NAIVE_TORNADO, url, process.pid)


@contextlib.contextmanager
def bare_server(name: str, work: Path, www: Path, cpus: list[int] | None) -> Iterator[Server]:
    port = free_port()
    argv = pinned(cpus, [sys.executable, str(BARE[name]), "--port", str(port), "--root", str(www)])
    url = f"http://127.0.0.1:{port}"
    log = work / f"bare-{port}.log"
    with running(argv, log, str(BARE[name].relative_to(REPO)), url + "/exists/x") as process:
        yield Server(name, url, process.pid)


# -- data -----------------------------------------------------------------


def make_workloads(bodies: Path) -> list[Workload]:
    """Every workload; the upload bodies are written to ``bodies``, as wrk reads them."""
    rng = random.Random(SEED)
    workloads = []
    for size in GET_KEYS:
        read = Request("GET", f"/bench/{size}/", GET_KEYS[size])
        conns = BIG_GET_CONNECTIONS if size > MIB else CONNECTIONS
        workloads.append(
            Workload(f"GET {size_name(size)}", size, conns, dict.fromkeys(SERVERS, read))
        )
    # wrk cannot tell that a response to HEAD has no body and waits for the
    # Content-Length bytes (wg/wrk#198), so HEAD asks for empty objects: the
    # servers do the same work for them (open or stat, headers, no body).
    head = Request("HEAD", "/bench/0/", HEAD_KEYS)
    workloads.append(Workload("HEAD", 0, CONNECTIONS, dict.fromkeys(SERVERS, head)))
    exists = Request("GET", f"/exists/bench/{KIB}/", GET_KEYS[KIB])
    workloads.append(Workload("exists", 0, CONNECTIONS, dict.fromkeys(SERVERS, exists)))
    for size, keys in UPLOAD_KEYS.items():
        payload = rng.randbytes(size)
        raw, form = bodies / f"{size}.raw", bodies / f"{size}.multipart"
        raw.write_bytes(payload)
        form.write_bytes(multipart_body(payload, BOUNDARY))
        conns, scale = (BIG_UPLOAD_CONNECTIONS, 2) if size > MIB else (CONNECTIONS, 1)
        put = Request("PUT", f"/up/{size}/", keys, per_thread=True, body=raw)
        post = Request(
            "POST", put.prefix, keys, True, body=form, content_type=content_type(BOUNDARY)
        )
        name = f"upload {size_name(size)}"
        posts = dict.fromkeys(SERVERS, post) | {NGINX: put, NGINX_LOGGED: put}
        workloads.append(Workload(f"{name} POST", size, conns, posts, scale))
        workloads.append(Workload(f"{name} PUT", size, conns, dict.fromkeys(SERVERS, put), scale))
    for w in workloads:  # the same requests, with a token
        w.requests[PACKRAT_AUTH] = replace(w.requests[PACKRAT], authorization=f"Bearer {TOKEN}")
        w.requests[PACKRAT_BASELINE] = w.requests[PACKRAT]
    return workloads


def objects_for(workloads: list[Workload]) -> dict[str, bytes]:
    """The objects the chosen read workloads need, keyed as they are requested."""
    rng = random.Random(SEED + 1)
    prefixes = {w.requests[PACKRAT].prefix for w in workloads}
    objects = {}
    for size, keys in ((0, HEAD_KEYS), *GET_KEYS.items()):
        if {f"/bench/{size}/", f"/exists/bench/{size}/"} & prefixes:
            objects |= {f"bench/{size}/{n}": rng.randbytes(size) for n in range(keys)}
    return objects


def load(server: Server, objects: dict[str, bytes]) -> None:
    with requests.Session() as session:
        session.headers.update(server.headers)
        for key, data in objects.items():
            session.put(f"{server.url}/{key}", data=data, timeout=60).raise_for_status()


def write_files(www: Path, objects: dict[str, bytes]) -> None:
    for key, data in objects.items():
        path = www / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def check(server: Server, workloads: list[Workload], objects: dict[str, bytes]) -> None:
    """One request of each kind answers correctly before anything is timed."""
    url, name, auth = server.url, server.name, server.headers
    for w in workloads:
        req = w.requests[name]
        if req.method in ("GET", "HEAD") and not req.prefix.startswith("/exists/"):
            key = f"{req.prefix.strip('/')}/{req.keys - 1}"
            reply = requests.request(req.method, f"{url}/{key}", headers=auth, timeout=30)
            assert reply.status_code == 200, (name, w.name, reply.status_code)
            if req.method == "GET":
                assert reply.content == objects[key], (name, w.name)
            assert int(reply.headers["Content-Length"]) == len(objects[key]), (name, w.name)
        elif req.method == "GET":
            for key, present in ((f"bench/{KIB}/1", True), ("bench/nothing", False)):
                reply = requests.get(f"{url}/exists/{key}", headers=auth, timeout=10)
                assert reply.json() == {"present": present}, (name, key, reply.text)
        else:
            headers = {"Content-Type": req.content_type} if req.content_type else {}
            headers |= auth
            assert req.body is not None
            reply = requests.request(
                req.method,
                f"{url}/check/{w.size}",
                data=req.body.read_bytes(),
                headers=headers,
                timeout=60,
            )
            assert reply.status_code in (200, 201, 204), (name, w.name, reply.status_code)
            back = requests.get(f"{url}/check/{w.size}", headers=auth, timeout=60)
            # The bare servers store a form as it came: they parse nothing.
            stored = len(req.body.read_bytes()) if name in BARE else w.size
            assert len(back.content) == stored, (name, w.name, len(back.content))


# -- load -----------------------------------------------------------------


def run_wrk(
    wrk: list[str], url: str, req: Request, connections: int, threads: int, seconds: int
) -> dict:
    argv = [
        *wrk,
        f"--threads={min(threads, connections)}",
        f"--connections={connections}",
        f"--duration={seconds}s",
        f"--timeout={WRK_TIMEOUT}s",
        f"--script={LUA}",
        url,
        "--",
        req.method,
        req.prefix,
        str(req.keys),
        "1" if req.per_thread else "0",
        str(req.body) if req.body else "-",
        req.content_type or "-",
        req.authorization or "-",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line.removeprefix("WRKJSON "))
    raise SystemExit(f"wrk gave no result ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def settle(pid: int) -> None:
    """Wait until the server's processes are idle (work left from the warm-up is done)."""
    deadline = time.monotonic() + SETTLE_WAIT
    before = Reading.take((pid,))
    while time.monotonic() < deadline:
        time.sleep(0.2)
        after = Reading.take((pid,))
        if after.server_cpu(before, pid) / (after.wall - before.wall) < SETTLE_LIMIT:
            return
        before = after


def wait_idle(limit: float) -> tuple[float, float]:
    """Wait up to ``limit`` s for other processes to use under 15 % of a core.

    Returns the seconds waited and the load (cores) of the last second looked at.
    """
    started = time.monotonic()
    while True:
        before = Reading.take()
        time.sleep(1.0 if limit > 0 else 0.2)
        others = Reading.take().others(before)
        waited = time.monotonic() - started
        if others < IDLE_LIMIT or waited >= limit:
            return waited, others


@dataclass
class Plan:
    """How the runs are done: durations, cores and what loads what."""

    wrk: list[str]  # the wrk command, pinned or not
    threads: int
    warmup: int
    duration: int
    idle_wait: float
    repeat: int
    frontends: int = 0
    waits: list[float] = field(default_factory=list)  # seconds waited per workload


def measure(plan: Plan, server: Server, workload: Workload) -> Result:
    req = workload.requests[server.name]
    conns = workload.connections
    if plan.warmup:
        run_wrk(plan.wrk, server.url, req, conns, plan.threads, plan.warmup)
    settle(server.pid)
    before = Reading.take((server.pid,))
    raw = run_wrk(plan.wrk, server.url, req, conns, plan.threads, plan.duration * workload.scale)
    after = Reading.take((server.pid,))
    return Result(
        server=server.name,
        workload=workload.name,
        frontends=plan.frontends,
        connections=conns,
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        payload=workload.size,
        p50=raw["p50_us"] / 1000,
        p90=raw["p90_us"] / 1000,
        p99=raw["p99_us"] / 1000,
        max=raw["max_us"] / 1000,
        errors=sum(raw["errors"].values()),
        cpu=after.server_cpu(before, server.pid),
        wall=after.wall - before.wall,
        others=after.others(before),
    )


def run_table(
    plan: Plan, servers: list[Server], workloads: list[Workload], results: list[Result]
) -> None:
    for workload in workloads:
        waited, others = wait_idle(plan.idle_wait)
        plan.waits.append(waited)
        if others >= IDLE_LIMIT:
            print(
                f"  (other processes still use {others:.0%} of a core after {waited:.0f} s;"
                " running anyway, flagged if it lasts)",
                flush=True,
            )
        runs: dict[str, list[Result]] = {server.name: [] for server in servers}
        for _ in range(plan.repeat):  # servers take turns, so a noisy spell hits all alike
            for server in servers:
                r = measure(plan, server, workload)
                runs[server.name].append(r)
                print(
                    f"{workload.name:<18} {server.name:<13} {r.rate:>9,.0f} req/s"
                    f" {r.mb_s:>8,.1f} MB/s  p50 {ms(r.p50)} p99 {ms(r.p99)} ms"
                    f"  CPU {r.cpu_percent:>4.0f} % {r.cpu_us:>8,.0f} µs/req"
                    f"  others {r.others:.0%}{' BUSY' if r.busy else ''}"
                    f"{f'  errors {r.errors}' if r.errors else ''}",
                    flush=True,
                )
        results.extend(median_run(repeats) for repeats in runs.values())


def median_run(runs: list[Result]) -> Result:
    """The run with the median CPU per request, all its numbers kept together."""
    ordered = sorted(runs, key=lambda r: r.cpu_us)
    chosen = ordered[(len(ordered) - 1) // 2]
    if len(runs) > 1:
        chosen.spread = (ordered[0].cpu_us, ordered[-1].cpu_us)
    return chosen


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
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "commit": commit or "unknown",
        "load": f"{os.getloadavg()[0]:.1f}",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def revision(rev: str) -> str:
    """``rev`` as a short commit name."""
    return subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", rev], capture_output=True, text=True
    ).stdout.strip()


def filesystem(path: Path) -> str:
    """The file system ``path`` is on and its mount options, from /proc/self/mounts."""
    path = path.resolve()
    best = ("", "unknown", "")
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mounts").read_text().splitlines():
            _, point, kind, options, *_ = line.split()
            inside = path == Path(point) or Path(point) in path.parents
            if inside and len(point) >= len(best[0]):
                best = (point, kind, options)
    return f"{best[1]} ({best[2]})"


def version(argv: list[str], starts: str) -> str:
    """The first line of a tool's version output that starts with ``starts``."""
    done = subprocess.run(argv, capture_output=True, text=True)
    for line in (done.stdout + done.stderr).splitlines():
        if line.startswith(starts):
            return line.removeprefix(starts).split(" [")[0].strip()
    return "unknown"


def ms(value: float) -> str:
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def num(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def spread(r: Result) -> str:
    return f" ({num(r.spread[0])} to {num(r.spread[1])})" if r.spread else ""


def ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}" if a and b else "-"


# The ratios of the summary table: (numerator, denominator, of what).
RATIOS = (
    (PACKRAT, NGINX, "µs/req"),
    (PACKRAT, NGINX_LOGGED, "µs/req"),
    (PACKRAT, BARE_HTTPTOOLS, "µs/req"),
    (PACKRAT, NAIVE_TORNADO, "µs/req"),
    (PACKRAT_AUTH, PACKRAT, "µs/req"),
    (PACKRAT, PACKRAT_BASELINE, "µs/req"),
    (PACKRAT, NGINX, "req/s"),
    (PACKRAT, NAIVE_TORNADO, "req/s"),
)
SHORT = {
    NAIVE_TORNADO: "naive",
    BARE_HTTPTOOLS: "bare httptools",
    PACKRAT_AUTH: "Packrat auth",
    PACKRAT_BASELINE: "baseline",
}


def table(results: list[Result]) -> list[str]:
    """The summary and the per-run tables of one front-end count, as markdown lines.

    The summary has a column per server that ran, then the ratios of
    ``RATIOS`` whose two servers both ran.
    """
    by = {(r.workload, r.server): r for r in results}
    rows = list(dict.fromkeys(r.workload for r in results))  # run order
    ran = [s for s in SERVERS if any(r.server == s for r in results)]
    ratios = [(a, b, unit) for a, b, unit in RATIOS if a in ran and b in ran]
    names = [f"{s} µs/req" for s in ran]
    names += [f"{unit} {SHORT.get(a, a)} ÷ {SHORT.get(b, b)}" for a, b, unit in ratios]
    out = [
        "| workload | conns | " + " | ".join(names) + " |",
        "|---|--:|" + "--:|" * len(names),
    ]
    for workload in rows:
        runs = {s: by[(workload, s)] for s in ran if (workload, s) in by}
        first = next(iter(runs.values()))
        mark = " ⚠" if any(r.busy or r.errors or not r.requests for r in runs.values()) else ""
        cells = [num(runs[s].cpu_us) if s in runs else "-" for s in ran]
        for a, b, unit in ratios:
            ra, rb = runs.get(a), runs.get(b)
            if unit == "µs/req":
                cells.append(ratio(ra and ra.cpu_us, rb and rb.cpu_us))
            else:
                cells.append(ratio(ra and ra.rate, rb and rb.rate))
        out.append(f"| {workload}{mark} | {first.connections} | " + " | ".join(cells) + " |")
    out += [
        "",
        "| workload | server | req/s | MB/s | p50 ms | p99 ms | CPU % | CPU µs/req | errors"
        " | others % |",
        "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for workload in rows:
        for server in ran:
            r = by.get((workload, server))
            if r:
                out.append(
                    f"| {workload} | {server} | {num(r.rate)} | {num(r.mb_s)} | {ms(r.p50)} |"
                    f" {ms(r.p99)} | {r.cpu_percent:.0f} | {num(r.cpu_us)}{spread(r)} |"
                    f" {r.errors} | {100 * r.others:.0f}{' ⚠' if r.busy else ''} |"
                )
    return out


def mode_line(args: argparse.Namespace) -> str:
    if args.server_cpus:
        return (
            f"pinned: servers on CPU {cpulist(args.server_cpus)}, wrk on CPU"
            f" {cpulist(args.wrk_cpus)} (taskset)"
        )
    return f"unpinned: servers and wrk share all {os.cpu_count()} CPUs"


def cpulist(cpus: list[int]) -> str:
    return ",".join(map(str, cpus))


def render(
    results: list[Result],
    info: dict[str, str],
    args: argparse.Namespace,
    versions: dict[str, str],
    waits: list[float],
) -> str:
    """The markdown block of one run of this script: its setting, then a table per count."""
    busy = sum(r.busy for r in results)
    out = [
        f"### {args.mode.capitalize()}",
        "",
        f"- mode: {mode_line(args)}",
        f"- command: `{args.command}`",
        f"- machine: {info['nproc']} CPUs, {info['cpu']}, Linux {info['kernel']};"
        f" Python {info['python']}, {versions['nginx']}, wrk {versions['wrk']}",
        f"- files on {info['filesystem']}",
        f"- commit {info['commit']}"
        + (f" ({PACKRAT_BASELINE}: {info['baseline']})" if "baseline" in info else "")
        + f", run {info['date']}; 1-minute load average"
        f" {info['load']} before, {os.getloadavg()[0]:.1f} after",
        f"- each run: {args.warmup} s warm-up (dropped), then {args.duration} s measured;"
        f" wrk with {args.threads} thread(s); waited {sum(waits):.0f} s in all for an idle"
        f" machine; {busy} of {len(results)} runs shown had other processes above"
        f" {IDLE_LIMIT:.0%} of a core (⚠)",
    ]
    if args.repeat > 1:
        out.append(
            f"- {args.repeat} runs per server and workload, servers taking turns; each"
            " row shows the run with the median CPU µs/request, the lowest and highest"
            " in brackets"
        )
    for frontends in args.frontends:
        mine = [r for r in results if r.frontends == frontends]
        if not mine:
            continue
        out += [
            "",
            f"#### Packrat with {frontends} front end(s) + coordinator; nginx with"
            f" {frontends} worker(s); bare and naive servers: 1 process",
            "",
            *table(mine),
        ]
    return "\n".join(out) + "\n"


def begin_marker(mode: str, script: str = "bench/http.py") -> str:
    return f"<!-- {script} {mode}: begin -->"


def end_marker(mode: str, script: str = "bench/http.py") -> str:
    return f"<!-- {script} {mode}: end -->"


def update_doc(text: str, mode: str, block: str, script: str = "bench/http.py") -> str:
    """``text`` with the block of ``mode`` replaced, or added at the end if it has none."""
    begin, end = begin_marker(mode, script), end_marker(mode, script)
    fresh = f"{begin}\n{block}{end}"
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        return pattern.sub(lambda _: fresh, text, count=1)
    return text.rstrip("\n") + "\n\n" + fresh + "\n"


# -- main -----------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    cores = sorted(os.sched_getaffinity(0))
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=int, default=DURATION, help="measured seconds")
    parser.add_argument("--warmup", type=int, default=WARMUP, help="dropped seconds (0: none)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="runs per server and workload, servers taking turns; each cell is the run"
        " with the median CPU per request",
    )
    parser.add_argument("--idle-wait", type=float, default=IDLE_WAIT, help="seconds, at most")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="servers on the first half of the CPUs, wrk on the others (taskset)",
    )
    parser.add_argument(
        "--frontends",
        type=int,
        nargs="+",
        help="a table per Packrat front-end count (nginx gets as many workers);"
        " default: the CPUs the servers may use",
    )
    parser.add_argument("--only", nargs="+", help="workload names, e.g. 'GET 1 KiB' exists")
    parser.add_argument(
        "--auth",
        action="store_true",
        help=f"also run Packrat with [auth] on ({PACKRAT_AUTH!r}), a bearer token on every"
        " request to it",
    )
    parser.add_argument(
        "--servers",
        nargs="+",
        choices=SERVERS,
        metavar="SERVER",
        help=f"which servers to run (default: all; {PACKRAT_AUTH!r} with --auth): "
        + ", ".join(map(repr, SERVERS)),
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: 1 s runs, no warm-up, at most 2 s idle wait, only {', '.join(QUICK)}"
        " unless --only says otherwise",
    )
    parser.add_argument(
        "--baseline",
        metavar="REV",
        help=f"also run the packrat/ of this git revision ({PACKRAT_BASELINE!r}), taking turns"
        " with this one: a before and after in one run",
    )
    parser.add_argument("--output", type=Path, default=DOC, help="markdown file to update")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--json", type=Path, help="also write every run's numbers here")
    parser.add_argument(
        "--dir",
        type=Path,
        help="where every server's files go (default: a temporary directory); put it on"
        " the file system, or the mount options, to be measured",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.idle_wait = 1, 0, min(args.idle_wait, 2.0)
        args.only = args.only or list(QUICK)
    if args.pin:
        if len(cores) < 2:
            parser.error("--pin needs at least 2 CPUs")
        half = (len(cores) + 1) // 2
        args.server_cpus, args.wrk_cpus = cores[:half], cores[half:]
        args.mode = "pinned"
    else:
        args.server_cpus, args.wrk_cpus = None, None
        args.mode = "unpinned"
    args.threads = len(args.wrk_cpus or cores)
    optional = {PACKRAT_AUTH: args.auth, PACKRAT_BASELINE: bool(args.baseline)}
    chosen = args.servers or [s for s in SERVERS if optional.get(s, True)]
    chosen += [s for s, wanted in optional.items() if wanted and s not in chosen]
    args.servers = [s for s in SERVERS if s in chosen]
    args.frontends = list(dict.fromkeys(args.frontends or [len(args.server_cpus or cores)]))
    args.command = "python bench/http.py" + (
        " " + shlex.join(sys.argv[1:]) if argv is None and sys.argv[1:] else ""
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
            "bench/http.py: nginx is not installed (apt-get install nginx): measuring the"
            " others without it, and not writing docs/benchmarks.md"
        )
    if args.wrk_cpus:
        os.sched_setaffinity(0, args.wrk_cpus)  # this script's own polling stays off the servers
    print(f"bench/http.py: {mode_line(args)}", flush=True)
    started = time.monotonic()
    info = machine()  # the commit the servers are about to run
    info["filesystem"] = filesystem(args.dir or Path(tempfile.gettempdir()))
    results: list[Result] = []
    waits: list[float] = []
    with tempfile.TemporaryDirectory(prefix="packrat-bench-", dir=args.dir) as tmp:
        work = Path(tmp)
        (work / "bodies").mkdir()
        workloads = make_workloads(work / "bodies")
        if args.only:
            unknown = set(args.only) - {w.name for w in workloads}
            if unknown:
                raise SystemExit(f"no such workload: {', '.join(sorted(unknown))}")
            workloads = [w for w in workloads if w.name in args.only]
        objects = objects_for(workloads)
        www = work / "www"  # nginx and the naive server serve the same files
        write_files(www, objects)
        baseline = None
        if args.baseline:
            (work / "baseline").mkdir()
            baseline = checkout(args.baseline, work / "baseline")
            info["baseline"] = revision(args.baseline)
        for frontends in args.frontends:
            print(f"-- Packrat with {frontends} front end(s)", flush=True)
            plan = Plan(
                wrk=pinned(args.wrk_cpus, [wrk]),
                threads=args.threads,
                warmup=args.warmup,
                duration=args.duration,
                idle_wait=args.idle_wait,
                repeat=args.repeat,
                frontends=frontends,
                waits=waits,
            )
            with contextlib.ExitStack() as stack:
                servers = []
                for name in args.servers:
                    cpus = args.server_cpus
                    if name in (NGINX, NGINX_LOGGED) and nginx:
                        logged = name == NGINX_LOGGED
                        launch = nginx_server(nginx, work, www, frontends, cpus, logged)
                    elif name in BARE:
                        launch = bare_server(name, work, www, cpus)
                    elif name == NAIVE_TORNADO:
                        launch = naive_server(work, www, cpus)
                    elif name == PACKRAT_BASELINE:
                        launch = packrat_server(work, frontends, cpus, source=baseline)
                    elif name in (PACKRAT, PACKRAT_AUTH):
                        launch = packrat_server(work, frontends, cpus, auth=name == PACKRAT_AUTH)
                    else:
                        continue
                    server = stack.enter_context(launch)
                    if name in PACKRATS:
                        load(server, objects)
                    servers.append(server)
                for server in servers:
                    check(server, workloads, objects)
                run_table(plan, servers, workloads, results)
    versions = {
        "nginx": version([nginx, "-v"], "nginx version: ") if nginx else "no nginx",
        "wrk": version([wrk, "--version"], "wrk "),
    }
    block = render(results, info, args, versions, waits)
    print()
    print(block)
    print(f"bench/http.py: {time.monotonic() - started:.0f} s")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "mode": args.mode,
                    "server_cpus": args.server_cpus,
                    "wrk_cpus": args.wrk_cpus,
                    "machine": info,
                    "results": [
                        asdict(r)
                        | {"rate": r.rate, "mb_s": r.mb_s, "cpu_percent": r.cpu_percent}
                        | {"cpu_us": r.cpu_us, "busy": r.busy}
                        for r in results
                    ],
                    "markdown": block,
                },
                indent=1,
            )
        )
    if nginx and not args.no_write:
        text = args.output.read_text() if args.output.exists() else ""
        args.output.write_text(update_doc(text, args.mode, block))
        print(f"updated the {args.mode} block of {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
