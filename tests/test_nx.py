"""Nx with Packrat as its self-hosted remote cache, with the real nx (npm, pinned in tests/node).

Nx's "custom remote cache" speaks ``GET``/``PUT <server>/v1/cache/<hash>``
with a bearer token, which Packrat stores as keys under the server URL's
path.  A one-project workspace is built, its outputs and Nx's local cache
(``.nx``) are removed, and the next run must take the task from Packrat: Nx
marks it ``[remote cache]`` and Packrat counts the hit.

Nx's specification asks for ``text/plain`` bodies on 401 and 403 (Nx says
"Unauthorized: <message>" then), 403 for a read-only token that writes, and
allows 409 for an existing record, which Packrat answers: a record is never
replaced (``packrat.frontend.nx``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

WRITE_TOKEN = "nx-writer-0123456789"
READ_TOKEN = "nx-reader-0123456789"


@pytest.fixture
def workspace(tmp_path: Path, node_tools: Path, request: pytest.FixtureRequest) -> Path:
    """A workspace of one project whose build writes the test's name into dist/."""
    root = tmp_path / "workspace"
    files = {
        "package.json": {"name": "workspace", "private": True, "workspaces": ["packages/*"]},
        "nx.json": {
            "targetDefaults": {"build": {"cache": True, "outputs": ["{projectRoot}/dist"]}}
        },
        "packages/app/package.json": {
            "name": "app",
            "version": "1.0.0",
            "scripts": {"build": f"mkdir -p dist && echo {request.node.name} > dist/out.txt"},
        },
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps(content, indent=2))
    (root / "node_modules").symlink_to(node_tools.parent)  # nx runs from the workspace's own
    return root


def nx(workspace: Path, url: str, token: str = WRITE_TOKEN) -> subprocess.CompletedProcess[str]:
    """``nx run app:build`` with every local output and cache removed first."""
    shutil.rmtree(workspace / "packages/app/dist", ignore_errors=True)
    shutil.rmtree(workspace / ".nx", ignore_errors=True)
    return subprocess.run(
        [workspace / "node_modules/.bin/nx", "run", "app:build"],
        cwd=workspace,
        env={
            **os.environ,
            "NX_SELF_HOSTED_REMOTE_CACHE_SERVER": url,  # docs/build-tools.md's recipe
            "NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN": token,
            "NX_DAEMON": "false",
            "NX_NO_CLOUD": "true",
            "NX_TUI": "false",
            "NX_SKIP_NX_CACHE": "false",
            "FORCE_COLOR": "0",  # CI machines make chalk colour its output; the tests read words
            "NO_COLOR": "1",
        },
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_run_with_no_local_cache_takes_the_task_from_packrat(workspace, module_server, request):
    server = module_server
    before = server.stats()
    first = nx(workspace, f"{server.url}/nx")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "[remote cache]" not in first.stdout and "0/1 hit" in first.stdout
    stored = server.stats()
    assert stored["commits"] - before["commits"] == 1
    assert stored["recent_uploads"][0]["key"].startswith("nx/v1/cache/")

    second = nx(workspace, f"{server.url}/nx")
    assert second.returncode == 0, second.stdout + second.stderr
    assert "nx run app:build  [remote cache]" in second.stdout, second.stdout
    assert "1/1 hit" in second.stdout
    assert (workspace / "packages/app/dist/out.txt").read_text() == f"{request.node.name}\n"
    after = server.stats_grown(stored, hits=1)
    assert after["hits"] - stored["hits"] == 1
    assert after["commits"] == stored["commits"]


@pytest.fixture
def auth_server(make_server):
    server = make_server(
        wait=False,
        auth={"enabled": "true", "write_tokens": WRITE_TOKEN, "read_tokens": READ_TOKEN},
    )
    server.wait_ready(token=READ_TOKEN)
    return server


def test_a_read_only_token_gets_hits_and_stores_nothing(workspace, auth_server):
    url = f"{auth_server.url}/nx"
    assert nx(workspace, url, READ_TOKEN).returncode == 0
    assert auth_server.stats(WRITE_TOKEN)["commits"] == 0  # refused: 403
    assert nx(workspace, url, WRITE_TOKEN).returncode == 0
    read = nx(workspace, url, READ_TOKEN)
    assert read.returncode == 0 and "[remote cache]" in read.stdout, read.stdout


def test_a_wrong_token_is_reported_as_unauthorized(workspace, auth_server):
    done = nx(workspace, f"{auth_server.url}/nx", "not-a-token-0123456789")
    output = done.stdout + done.stderr
    assert "Misconfigured remote cache endpoint" not in output, output
    assert "Unauthorized: " in output


def test_a_record_is_never_replaced(module_server):
    """409 for an existing record (Nx takes it as "not stored"), before the body is read and
    nothing stored; removing the record lets it be stored again."""
    url = f"{module_server.url}/nx/v1/cache/1234567890"
    assert requests.put(url, data=b"first outputs", timeout=10).status_code == 200
    before = module_server.stats()
    second = requests.put(url, data=b"other outputs", timeout=10)
    assert second.status_code == 409
    assert second.headers["Content-Type"] == "text/plain"
    assert "already" in second.text
    form = requests.post(url, files={"file": ("f", b"other outputs")}, timeout=10)
    assert form.status_code == 409
    assert requests.get(url, timeout=10).content == b"first outputs"
    assert module_server.stats()["commits"] == before["commits"]
    assert module_server.staging_files() == []
    assert requests.delete(url, timeout=10).status_code == 200
    assert requests.put(url, data=b"other outputs", timeout=10).status_code == 200
    # Other keys are replaced as ever, and a path that is not a record is any key.
    for key in ("nx/v1/cache/1234567890/more", "nx/v2/cache/1234567890"):
        for body in (b"one", b"two"):
            assert requests.put(f"{module_server.url}/{key}", data=body, timeout=10).ok


def test_errors_are_text_plain_as_nx_asks(auth_server):
    url = f"{auth_server.url}/nx/v1/cache/42"
    anonymous = requests.get(url, timeout=10)
    assert anonymous.status_code == 401 and anonymous.headers["Content-Type"] == "text/plain"
    assert anonymous.text == "credentials are required\n"
    assert "Bearer" in anonymous.headers["WWW-Authenticate"]
    read_only = {"Authorization": f"Bearer {READ_TOKEN}"}
    refused = requests.put(url, data=b"outputs", headers=read_only, timeout=10)
    assert refused.status_code == 403 and refused.headers["Content-Type"] == "text/plain"
    missing = requests.get(url, headers=read_only, timeout=10)
    assert missing.status_code == 404 and missing.headers["Content-Type"] == "text/plain"
