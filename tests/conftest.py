"""Fixtures that run real Packrat processes on 127.0.0.1.

``packrat_server`` starts ``packrat serve`` (supervisor, coordinator, front
ends) with a config of its own in a temporary directory; ``make_server``
builds one with chosen options.  Every process started is stopped at teardown,
and a test fails if any is left behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests
import trustme

from packrat.coordinator.connection import CoordinatorClient
from packrat.store.accounting import charge
from packrat.store.format import read_trailer
from packrat.store.layout import BLOCK

START_TIMEOUT = 20.0


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
        self, argv: list[str], config: Path, root: Path, port: int, preexec_fn=None
    ) -> None:
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

    def wait_ready(self, writable: bool = True, timeout: float = START_TIMEOUT) -> None:
        """Wait until HTTP answers (and, if ``writable``, the coordinator too)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"packrat exited early:\n{self.log()}")
            try:
                reply = requests.get(self.url + "/", timeout=2)
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
        return requests.post(
            f"{self.url}/{key}", files={"file": (filename, data)}, timeout=30, **kw
        )

    def get(self, key: str, **kw) -> requests.Response:
        return requests.get(f"{self.url}/{key}", timeout=30, **kw)

    def exists(self, key: str) -> bool:
        reply = requests.get(f"{self.url}/exists/{key}", timeout=10)
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


def read_after_stalling(port: int, path: str, stall: float) -> int:
    """GET ``path`` with a small receive buffer, read nothing for ``stall`` seconds,
    then read until the server closes; return the bytes it sent, headers included."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
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


@pytest.fixture
def config_for(tmp_path: Path):
    """Factory: ``config_for(port, **sections)`` writes a test config and returns its path."""

    def write(port: int, **sections) -> Path:
        return write_config(tmp_path / f"config-{port}.ini", tmp_path, port, **sections)

    return write


@pytest.fixture
def packrat_server(make_server) -> PackratProcess:
    return make_server()


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


@pytest.fixture(autouse=True)
def _no_stray_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PACKRAT_CONFIG", raising=False)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
