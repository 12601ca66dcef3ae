"""Packrat processes for tests: a config of their own, a free port, stopped by PID.

``PackratProcess`` runs one ``python -m packrat <role>`` and gives the test
its URL, log, children and shortcuts; ``shared_server`` is one ``packrat
serve`` for a whole module, in one of ``AUTH_MODES``.
"""

from __future__ import annotations

import contextlib
import functools
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

from packrat.coordinator.connection import CoordinatorClient
from tests.support.disk import charged_on_disk, du
from tests.support.waiting import START_TIMEOUT, is_ok, shows_figures, wait_answering, wait_until

REPO = Path(__file__).resolve().parent.parent.parent
TOKEN = "test-write-token-0123456789"  # the write token of servers with [auth] on
AUTH_MODES = ("auth off", "auth on")
BUCKET = "packrat-tests"  # the bucket of the one SeaweedFS the tests share (conftest's seaweedfs)


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
        cafile: Path | None = None,
    ) -> None:
        self.token = token  # sent as a bearer token by ``http`` and the helpers
        self.cafile = cafile  # a server with certfile/keyfile: HTTPS, verified against it
        self.config = config
        self.root = root
        self.port = port
        self.url = f"{'https' if cafile else 'http'}://127.0.0.1:{port}"
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
        if self.cafile:
            session.verify = str(self.cafile)
            session.trust_env = False  # else $REQUESTS_CA_BUNDLE would replace ``verify``
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
        accept = shows_figures if writable else is_ok
        self.wait_answering("/", accept=accept, timeout=timeout, headers=headers)

    def wait_for_socket(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until a coordinator has bound its ipc:// socket."""
        sock = self.root / "run" / "coordinator.sock"

        def bound() -> bool:
            assert self.process.poll() is None, f"coordinator exited:\n{self.log()}"
            return sock.exists()

        wait_until(bound, timeout, what="the coordinator's socket", detail=self.log)

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

        return wait_until(grown, what=f"stats grown by {at_least}")

    def stats_listing(self, count: int) -> dict:
        """``stats()`` once ``count`` processes are listed: the coordinator, and each front
        end from its first heartbeat on (a front end answers before that)."""

        def listed() -> dict | None:
            now = self.stats()
            return now if len(now["processes"]) >= count else None

        return wait_until(listed, what=f"{count} processes in the stats")

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

    def wait_answering(self, path: str, **wait: object) -> requests.Response:
        """``waiting.wait_answering`` for ``path`` here through ``http`` (its credentials),
        failing at once if the process exits."""
        return wait_answering(
            self.url + path, process=self.process, log=self.log, session=self.http, **wait
        )


def _kill(proc: psutil.Process) -> None:
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.kill()


@contextlib.contextmanager
def shared_server(
    tmp_path_factory,
    mode: str,
    sections: dict,
    environment: dict[str, str] | None = None,
    cafile: Path | None = None,
) -> Iterator[PackratProcess]:
    """A ``packrat serve`` for a module, in ``mode`` (one of ``AUTH_MODES``), with
    ``sections`` added to its configuration and ``environment`` to its own
    (``cafile``: the CA of its certificate, when ``sections`` turn HTTPS on)."""
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
        process = PackratProcess(["serve"], config, root, port, token=token, cafile=cafile)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
