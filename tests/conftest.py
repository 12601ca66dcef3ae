"""Fixtures that run real Packrat processes on 127.0.0.1.

``packrat_server`` starts ``packrat serve`` (supervisor, coordinator, front
ends) with a config of its own in a temporary directory; ``make_server``
builds one with chosen options.  Every process started is stopped at teardown,
and a test fails if any is left behind.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

# tests.support and bench.<name> import from the checkout (bench/ is not installed).
sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS
from tests.support.hostile import HostileServer
from tests.support.processes import (
    AUTH_MODES,
    BUCKET,
    PackratProcess,
    free_port,
    shared_server,
    write_config,
)
from tests.support.rawhttp import read_after_stalling
from tests.support.waiting import wait_until


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


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """``(certfile, keyfile, cafile)`` for 127.0.0.1 and localhost, from a CA made here."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    directory = tmp_path_factory.mktemp("tls")
    certfile, keyfile, cafile = directory / "c.pem", directory / "k.pem", directory / "ca.pem"
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


@pytest.fixture(scope="module", params=AUTH_MODES)
def https_server(request, tmp_path_factory, certificate) -> Iterator[PackratProcess]:
    """A server answering HTTPS with ``certificate``, per module and auth mode as ``server``:
    its ``url`` is ``https://``, and ``http`` trusts the certificate's CA."""
    certfile, keyfile, cafile = certificate
    sections = {"server": {"certfile": certfile, "keyfile": keyfile}}
    with shared_server(tmp_path_factory, request.param, sections, cafile=cafile) as process:
        yield process


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
