"""Fixtures that run real Packrat processes on 127.0.0.1.

``packrat_server`` starts ``packrat serve`` (supervisor, coordinator, front
ends) with a config of its own in a temporary directory; ``make_server``
builds one with chosen options.  Every process started is stopped at teardown,
and a test fails if any is left behind.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import requests
import trustme

from packrat.coordinator.connection import CoordinatorClient
from packrat.store.accounting import charge
from packrat.store.format import read_trailer
from packrat.store.layout import BLOCK

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))  # bench/ is not installed: its modules import as bench.<name>

from bench.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS  # noqa: E402

START_TIMEOUT = 20.0
TOKEN = "test-write-token-0123456789"  # the write token of servers with [auth] on
AUTH_MODES = ("auth off", "auth on")
BUCKET = "packrat-tests"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(path: Path, root: Path, port: int, **sections: dict[str, object]) -> Path:
    """Write a packrat.ini for a test: a private root, port and ipc endpoint."""
    options: dict[str, dict[str, object]] = {
        "server": {"host": "127.0.0.1", "port": port},
        "frontend": {"processes": 2},
        "cache": {"root": root / "cache", "max_size": "64M"},
        "coordinator": {"endpoint": f"ipc://{root}/run/coordinator.sock", "timeout": 5},
        "metrics": {"directory": root / "run" / "metrics"},
    }
    for section, values in sections.items():
        options.setdefault(section, {}).update(values)
    lines = []
    for section, values in options.items():
        lines.append(f"[{section}]")
        lines += [f"{key} = {value}" for key, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


class PackratProcess:
    """One ``python -m packrat <role>`` process group with helpers for tests."""

    def __init__(
        self,
        argv: list[str],
        config: Path,
        root: Path,
        port: int,
        preexec_fn=None,
        token: str | None = None,
    ) -> None:
        self.token = token  # sent as a bearer token by ``http`` and the helpers
        self.config = config
        self.root = root
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = root / f"{argv[0]}-{port}-{time.monotonic_ns()}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            [sys.executable, "-m", "packrat", *argv, "--config", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=preexec_fn,
        )
        self.psutil = psutil.Process(self.process.pid)

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def auth(self) -> dict[str, str]:
        """The request headers that carry this server's credential (none when auth is off)."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    @functools.cached_property
    def http(self) -> requests.Session:
        """A session that sends the credential with every request when auth is on."""
        session = requests.Session()
        session.headers.update(self.auth)
        return session

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def children(self, role: str | None = None) -> list[psutil.Process]:
        """Live child processes, optionally only those whose title names ``role``."""
        found = []
        for child in self.psutil.children(recursive=True):
            try:
                if role is None or f"packrat {role}" in " ".join(child.cmdline()):
                    found.append(child)
            except psutil.NoSuchProcess:
                continue
        return found

    def wait_ready(
        self, writable: bool = True, timeout: float = START_TIMEOUT, token: str | None = None
    ) -> None:
        """Wait until HTTP answers (and, if ``writable``, the coordinator too);
        ``token``: a bearer token that may read, for a server whose own is not set."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"packrat exited early:\n{self.log()}")
            try:
                reply = self.http.get(self.url + "/", headers=headers, timeout=2)
                if reply.status_code == 200 and (not writable or "Objects" in reply.text):
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or slow on a loaded machine
            time.sleep(0.05)
        raise AssertionError(f"packrat did not become ready:\n{self.log()}")

    def wait_for_socket(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until a coordinator has bound its ipc:// socket."""
        sock = self.root / "run" / "coordinator.sock"
        deadline = time.monotonic() + timeout
        while not sock.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"coordinator did not start:\n{self.log()}")
            time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM the group leader and wait; SIGKILL everything on timeout."""
        descendants = self.children()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            status = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            for proc in [self.psutil, *descendants]:
                _kill(proc)
            self.process.wait()
            raise AssertionError(f"packrat did not stop within {timeout}s:\n{self.log()}") from None
        finally:
            self._log.close()
        _, alive = psutil.wait_procs(descendants, timeout=5)
        for proc in alive:
            _kill(proc)
        assert not alive, f"processes left behind: {alive}"
        return status

    # -- HTTP shortcuts ---------------------------------------------------

    def upload(self, key: str, data: bytes, filename: str = "blob.bin", **kw) -> requests.Response:
        return self.http.post(
            f"{self.url}/{key}", files={"file": (filename, data)}, timeout=30, **kw
        )

    def get(self, key: str, **kw) -> requests.Response:
        return self.http.get(f"{self.url}/{key}", timeout=30, **kw)

    def exists(self, key: str) -> bool:
        reply = self.http.get(f"{self.url}/exists/{key}", timeout=10)
        assert reply.status_code == 200, reply.text
        return reply.json()["present"]

    def object_bytes(self) -> int:
        """Bytes of all object files on disk, as the coordinator counts them."""
        total = 0
        for path in (self.cache / "objects").rglob("*"):
            with contextlib.suppress(FileNotFoundError):  # evicted while we looked
                if path.is_file():
                    total += path.stat().st_size
        return total

    def staging_files(self) -> list[Path]:
        return list((self.cache / "staging").glob("*"))

    def stats(self, token: str | None = None) -> dict:
        """``GET /api/stats`` (with ``token`` as a bearer token)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        reply = requests.get(f"{self.url}/api/stats", headers=headers, timeout=10)
        assert reply.status_code == 200, reply.text
        return reply.json()

    def stats_grown(self, before: dict, **at_least: int) -> dict:
        """``stats()`` once each named figure has grown by at least so much since
        ``before`` (reads reach the coordinator in batches, a little later)."""

        def grown() -> dict | None:
            now = self.stats()
            return now if all(now[k] - before[k] >= n for k, n in at_least.items()) else None

        return wait_until(grown)

    def coordinator_stats(self) -> dict:
        """The running coordinator's figures, asked over its own socket."""
        endpoint = f"ipc://{self.root}/run/coordinator.sock"
        with CoordinatorClient(endpoint, timeout=5) as client:
            return client.stats()

    def charged_on_disk(self) -> int:
        """What the object files and directory growth should be charged, from the disk."""
        return charged_on_disk(self.cache)

    def du(self) -> int:
        """``du -s`` of the cache root, in bytes of allocated blocks."""
        return du(self.cache)


def charged_on_disk(root: Path) -> int:
    """Charges of every object file (``store.accounting``) plus the fan-out directories' growth."""
    total = 0
    for fanout in sorted((root / "objects").iterdir()):
        total += max(fanout.stat().st_blocks * 512 - BLOCK, 0)
        for path in fanout.iterdir():
            with contextlib.suppress(FileNotFoundError):
                with open(path, "rb") as f:
                    info = os.fstat(f.fileno())
                    meta = read_trailer(f.fileno(), info.st_size)
                total += charge(info, meta.key)
    return total


def du(path: Path) -> int:
    """``du -s`` of ``path`` in bytes (allocated blocks, directories included)."""
    out = subprocess.run(["du", "-s", "-B1", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def _kill(proc: psutil.Process) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.kill()


@pytest.fixture
def make_server(tmp_path: Path) -> Iterator:
    """Factory: ``make_server(role="serve", **sections)`` starts a role and waits for it.

    All servers of one test share the cache root and coordinator endpoint, so
    ``make_server("coordinator")`` then ``make_server("frontend")`` twice
    gives a cluster whose front ends listen on ports of their own.
    """
    started: list[PackratProcess] = []

    def start(
        role: str = "serve",
        port: int | None = None,
        wait: bool = True,
        preexec_fn=None,
        **sections,
    ) -> PackratProcess:
        port = port or free_port()
        config = write_config(tmp_path / f"packrat-{len(started)}.ini", tmp_path, port, **sections)
        server = PackratProcess([role], config, tmp_path, port, preexec_fn=preexec_fn)
        started.append(server)
        if wait and role == "coordinator":
            server.wait_for_socket()
        elif wait:
            server.wait_ready()
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            server.stop()


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.05):
    """Poll ``predicate`` until it returns something true; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def read_after_stalling(port: int, path: str, stall: float, headers: dict | None = None) -> int:
    """GET ``path`` with a small receive buffer, read nothing for ``stall`` seconds,
    then read until the server closes; return the bytes it sent, headers included."""
    lines = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n{lines}\r\n".encode())
        time.sleep(stall)
        sock.settimeout(10)
        received = 0
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
    return received


@pytest.fixture
def certificate(tmp_path: Path) -> tuple[Path, Path, Path]:
    """``(certfile, keyfile, cafile)`` for 127.0.0.1 and localhost, from a CA made here."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, cafile = tmp_path / "c.pem", tmp_path / "k.pem", tmp_path / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(cafile))
    return certfile, keyfile, cafile


@pytest.fixture
def stalled_read():
    """``stalled_read(port, path, stall)``: bytes a server sent a reader that stalled."""
    return read_after_stalling


@pytest.fixture
def https_server(make_server, certificate) -> tuple[PackratProcess, str]:
    """A server answering HTTPS with ``certificate``, and its URL, once it is ready."""
    certfile, keyfile, cafile = certificate
    server = make_server(wait=False, server={"certfile": certfile, "keyfile": keyfile})
    url = f"https://127.0.0.1:{server.port}"

    def ready() -> bool:
        assert server.process.poll() is None, server.log()
        try:
            return requests.get(url + "/readyz", verify=str(cafile), timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    wait_until(ready, timeout=START_TIMEOUT)
    return server, url


@pytest.fixture
def wait_for():
    """``wait_for(predicate, timeout=15)``: poll until true, or fail the test."""
    return wait_until


@pytest.fixture
def free_tcp_port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def config_writer():
    """``write_config(path, root, port, **sections)``, for fixtures wider than a test."""
    return write_config


@pytest.fixture(scope="session")
def port_picker():
    """``free_port()``, for fixtures wider than a test."""
    return free_port


@pytest.fixture
def config_for(tmp_path: Path):
    """Factory: ``config_for(port, **sections)`` writes a test config and returns its path."""

    def write(port: int, **sections) -> Path:
        return write_config(tmp_path / f"config-{port}.ini", tmp_path, port, **sections)

    return write


@pytest.fixture
def packrat_server(make_server) -> PackratProcess:
    return make_server()


@pytest.fixture(scope="module", params=AUTH_MODES)
def server(request, tmp_path_factory) -> Iterator[PackratProcess]:
    """One ``packrat serve`` per test module and auth mode, shared by the module's tests.

    The HTTP semantics run with access control off and on, as uvicorn runs its
    suite over both of its protocol classes: with ``auth on`` the server has
    ``[auth]`` enabled and one write token, and ``server.http`` (and the
    helpers ``upload``, ``get``, ``exists``) send it; raw requests add
    ``server.auth``.  Tests on a shared server use keys of their own.  A
    module's ``SERVER_SECTIONS`` (``{"cache": {"max_size": "4M"}}``) adds to
    its configuration.
    """
    sections = getattr(request.module, "SERVER_SECTIONS", {})
    with shared_server(tmp_path_factory, request.param, sections) as process:
        yield process


@pytest.fixture(scope="session")
def start_shared_server():
    """``shared_server`` for modules whose server fixture has more parameters than the mode."""
    return shared_server


@contextlib.contextmanager
def shared_server(
    tmp_path_factory, mode: str, sections: dict, environment: dict[str, str] | None = None
) -> Iterator[PackratProcess]:
    """A ``packrat serve`` for a module, in ``mode`` (one of ``AUTH_MODES``), with
    ``sections`` added to its configuration and ``environment`` to its own."""
    root = tmp_path_factory.mktemp("shared-server")
    port = free_port()
    options: dict[str, dict[str, object]] = {"cache": {"max_size": "64M"}}
    for section, values in sections.items():
        options.setdefault(section, {}).update(values)
    token = None
    if mode == "auth on":
        token = TOKEN
        options["auth"] = {"enabled": "true", "write_tokens": TOKEN}
    config = write_config(root / "packrat.ini", root, port, **options)
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (environment or {}).items():
            patch.setenv(name, value)
        process = PackratProcess(["serve"], config, root, port, token=token)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def module_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PackratProcess]:
    """One server (auth off) shared by a whole test module: the real tools' tests start
    slow tools once and count what each test adds to its figures (``stats_grown``)."""
    with shared_server(tmp_path_factory, "auth off", {}) as process:
        yield process


@pytest.fixture
def mount_tmpfs(tmp_path):
    """Factory: ``mount_tmpfs("size=4m")`` mounts a real small file system (root only)."""
    mounted: list[Path] = []

    def mount(options: str) -> Path:
        mountpoint = tmp_path / f"small-fs-{len(mounted)}"
        mountpoint.mkdir()
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a tmpfs needs root")
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mountpoint)],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({result.stderr.strip()})")
        mounted.append(mountpoint)
        return mountpoint

    yield mount
    for mountpoint in mounted:
        subprocess.run(["umount", "-l", str(mountpoint)], check=False)


NODE_TOOLS = Path(__file__).parent / "node"  # package.json pins turbo and nx; .ci/run installs them


@pytest.fixture(scope="session")
def node_tools() -> Path:
    """``tests/node/node_modules/.bin``, with the pinned versions installed (``npm ci``) once.

    ``.ci/run`` installs them before the suite; a checkout without them gets
    them here (the tests that need them are skipped, saying why, where npm is absent).
    """
    pinned = json.loads((NODE_TOOLS / "package.json").read_text())["dependencies"]

    def installed() -> bool:
        for name, version in pinned.items():
            manifest = NODE_TOOLS / "node_modules" / name / "package.json"
            if not manifest.exists() or json.loads(manifest.read_text())["version"] != version:
                return False
        return True

    if not installed():
        if shutil.which("npm") is None:
            pytest.skip("npm is not installed (.ci/run installs Node.js)")
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund"],
            cwd=NODE_TOOLS,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0 or not installed():
            pytest.fail(f"npm ci failed in {NODE_TOOLS}: {done.stderr[-2000:]}")
    return NODE_TOOLS / "node_modules" / ".bin"


@pytest.fixture(autouse=True)
def _no_stray_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PACKRAT_CONFIG", raising=False)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")


# -- a server that lies, for the client ------------------------------------------


class HostileServer:
    """An HTTP server on loopback that answers each request with the next answer queued.

    ``reply`` queues an answer exactly as given (only ``Connection: close``
    is added); ``reply_endless`` one whose body never ends.  Request heads
    are kept in ``requests``; each connection is closed after its answer.
    The thread stops by itself when the fixture ends.
    """

    def __init__(self) -> None:
        self.answers: list[Callable[[socket.socket], None]] = []
        self.requests: list[bytes] = []
        self.sent = 0  # body bytes an endless answer got out
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @staticmethod
    def head(status: str, headers: dict[str, object]) -> bytes:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return f"HTTP/1.1 {status}\r\n{lines}Connection: close\r\n\r\n".encode()

    def reply(self, status: str, headers: dict[str, object], body: bytes = b"") -> None:
        self.answers.append(lambda conn: conn.sendall(self.head(status, headers) + body))

    def reply_endless(self, status: str, headers: dict[str, object], piece: bytes) -> None:
        """The head, then ``piece`` again and again until the client leaves (10 s at most)."""

        def send(conn: socket.socket) -> None:
            conn.sendall(self.head(status, headers))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                conn.sendall(piece)
                self.sent += len(piece)

        self.answers.append(send)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            # OSError: the client went away, which is what some tests check.
            with conn, contextlib.suppress(OSError):
                conn.settimeout(10)
                self._answer(conn)

    def _answer(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        self.requests.append(head)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return
            body += chunk
        if self.answers:
            self.answers.pop(0)(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self._listener.close()


@pytest.fixture
def hostile_server() -> Iterator[HostileServer]:
    server = HostileServer()
    yield server
    server.close()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """One real S3-compatible store (SeaweedFS on loopback ports) for every test that needs
    one; each test gets a key prefix of its own in ``BUCKET`` (``objectstore``)."""
    store = SeaweedFS(tmp_path_factory.mktemp("seaweedfs"))
    try:
        store.wait_ready()
        store.create_bucket(BUCKET)
        yield store
    finally:
        store.stop()


@pytest.fixture
def objectstore(seaweedfs: SeaweedFS, tmp_path: Path, request: pytest.FixtureRequest) -> dict:
    """``[objectstore]`` settings for this test: the shared store, a prefix of its own,
    credentials in a file (AWS format), short timeouts."""
    credentials = tmp_path / "s3-credentials"
    credentials.write_text(
        f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n"
    )
    credentials.chmod(0o600)
    name = re.sub(r"[^A-Za-z0-9-]", "-", request.node.name)[:60]
    return {
        "bucket": BUCKET,
        "endpoint_url": seaweedfs.endpoint,
        "prefix": f"{name}-{secrets.token_hex(4)}/",
        "addressing_style": "path",
        "credentials_file": credentials,
        "connect_timeout": 1,
        "read_timeout": 2,
        "uploader_endpoint": f"ipc://{tmp_path}/run/uploader.sock",
    }
