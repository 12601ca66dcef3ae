"""Varnish 7 (Debian's) in front of Packrat: what is stored, what is revalidated.

* The built-in VCL with ``cache_max_age = 0``: nothing is stored, every read
  goes through whole (``no-cache`` answers are never stored by it).
* deploy/varnish/packrat.vcl: objects are stored and each hit is
  revalidated (Packrat answers 304 with no body), ranges come from the
  stored copy, and an overwrite is seen at once.
* The built-in VCL with ``cache_max_age = 60``: a second read never reaches
  Packrat.

Packrat's access log tells which reads reached it and how they were answered.
Each varnishd is stopped by the PID it wrote, and its worker with it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from tests.support.processes import free_port
from tests.support.waiting import wait_answering, wait_until

VARNISHD = shutil.which("varnishd") or "/usr/sbin/varnishd"
VCL = Path(__file__).parents[1] / "deploy" / "varnish" / "packrat.vcl"
BUILT_IN = 'vcl 4.1;\nbackend packrat { .host = "127.0.0.1"; .port = "5050"; }\n'

pytestmark = pytest.mark.skipif(
    not Path(VARNISHD).exists(), reason="varnishd (Debian's varnish) is not installed"
)


@pytest.fixture
def varnish(tmp_path: Path) -> Iterator:
    """``varnish(vcl_text, backend_port)``: the URL of a varnishd in front of that port."""
    started: list[psutil.Process] = []

    def start(vcl: str, port: int) -> str:
        workdir = tmp_path / f"varnish-{len(started)}"
        workdir.mkdir()
        (workdir / "packrat.vcl").write_text(vcl.replace('"5050"', f'"{port}"'))
        listen = free_port()
        subprocess.run(
            [
                VARNISHD,
                "-j", "none",  # as the test's own user: no jail to set up
                "-a", f"127.0.0.1:{listen}",
                "-f", str(workdir / "packrat.vcl"),
                "-n", str(workdir),
                "-P", str(workdir / "varnishd.pid"),
                "-T", "none",
                "-s", "malloc,16m",
                "-p", "thread_pools=1",
                "-p", "thread_pool_min=5",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )  # fmt: skip
        started.append(psutil.Process(int((workdir / "varnishd.pid").read_text())))
        url = f"http://127.0.0.1:{listen}"
        wait_answering(url + "/healthz", accept=lambda reply: True)
        return url

    yield start
    for manager in started:
        workers = manager.children(recursive=True)
        manager.terminate()
        _, alive = psutil.wait_procs([manager, *workers], timeout=10)
        for process in alive:
            process.kill()
        assert not alive, f"varnishd left behind: {alive}"


@pytest.fixture
def origin(make_server):
    """Packrat with one front end, so its access log is in the order requests came."""
    return make_server(frontend={"processes": 1})


def reads_answered(server, key: str) -> list[str]:
    """The statuses Packrat answered to GETs of ``key`` so far: a request of its own
    is sent last, and once its line is in the log (flushed every second), every
    line before it is too."""
    marker = f"marker-{time.monotonic_ns()}"
    requests.get(f"{server.url}/exists/{marker}", timeout=10)
    wait_until(lambda: marker in server.log())
    return re.findall(rf'GET "/{re.escape(key)}" (\d+) ', server.log())


def test_the_built_in_vcl_stores_nothing_that_says_no_cache(origin, varnish):
    url = varnish(BUILT_IN, origin.port)
    assert requests.put(f"{origin.url}/v/a", data=b"one", timeout=10).ok
    for _ in range(2):
        reply = requests.get(f"{url}/v/a", timeout=10)
        assert reply.content == b"one" and reply.headers["Cache-Control"] == "public, no-cache"
    assert reads_answered(origin, "v/a") == ["200", "200"]  # both whole


def test_the_shipped_vcl_stores_and_revalidates(origin, varnish):
    url = varnish(VCL.read_text(), origin.port)
    assert requests.put(f"{origin.url}/v/b", data=b"version one", timeout=10).ok
    assert requests.get(f"{url}/v/b", timeout=10).content == b"version one"
    again = requests.get(f"{url}/v/b", timeout=10)
    assert again.content == b"version one"
    part = requests.get(f"{url}/v/b", headers={"Range": "bytes=0-6"}, timeout=10)
    assert part.status_code == 206 and part.content == b"version"
    assert reads_answered(origin, "v/b") == ["200", "304", "304"]

    assert requests.put(f"{origin.url}/v/b", data=b"version two", timeout=10).ok
    assert requests.get(f"{url}/v/b", timeout=10).content == b"version two"  # never stale
    assert reads_answered(origin, "v/b") == ["200", "304", "304", "200"]


def test_with_cache_max_age_the_built_in_vcl_serves_from_its_store(make_server, varnish):
    server = make_server(frontend={"cache_max_age": 60, "processes": 1})
    url = varnish(BUILT_IN, server.port)
    assert requests.put(f"{server.url}/v/c", data=b"kept", timeout=10).ok
    for _ in range(3):
        reply = requests.get(f"{url}/v/c", timeout=10)
        assert reply.content == b"kept" and reply.headers["Cache-Control"] == "public, max-age=60"
    assert reads_answered(server, "v/c") == ["200"]
