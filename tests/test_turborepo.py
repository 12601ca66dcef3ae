"""Turborepo with Packrat as its remote cache, with the real turbo (npm, pinned in tests/node).

A one-package npm workspace is built with ``--api`` pointing at Packrat; its
outputs and every local cache (``.turbo``) are then removed, and the next run
must replay the task from Packrat: turbo's run summary says ``HIT`` from
``REMOTE`` and Packrat counts the artifact's hit.

turbo also finds the remote cache enabled (``/v8/artifacts/status``), sends
its usage events (counted in Packrat's metrics), gets the time a hit saved
and a signed artifact's tag back (``x-artifact-duration``, ``x-artifact-tag``
kept with the object), keeps teams apart (``--team``: a key namespace each),
and ``--dry`` asks the query endpoint.  The API itself is checked with plain
HTTP too: errors in turbo's shape, malformed headers and events refused
(test_build_tools_objectstore: the headers kept through an object store).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

TOKEN = "turbo-token-0123456789"


def write_repo(root: Path, output: str, remote_cache: dict | None = None) -> Path:
    """A workspace with one package whose build writes ``output`` into dist/."""
    npm = subprocess.check_output(["npm", "--version"], text=True, timeout=60).strip()
    files = {
        "package.json": {
            "name": "repo",
            "private": True,
            "packageManager": f"npm@{npm}",
            "workspaces": ["packages/*"],
        },
        "package-lock.json": {
            "name": "repo",
            "lockfileVersion": 3,
            "requires": True,
            "packages": {
                "": {"name": "repo", "workspaces": ["packages/*"]},
                "packages/app": {"name": "app", "version": "1.0.0"},
                "node_modules/app": {"resolved": "packages/app", "link": True},
            },
        },
        "turbo.json": {
            "tasks": {"build": {"outputs": ["dist/**"]}},
            **({"remoteCache": remote_cache} if remote_cache else {}),
        },
        "packages/app/package.json": {
            "name": "app",
            "version": "1.0.0",
            "scripts": {"build": f"mkdir -p dist && echo {output} > dist/out.txt"},
        },
    }
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(json.dumps(content, indent=2))
    (root / ".gitignore").write_text("dist/\n.turbo/\nnode_modules/\n")
    subprocess.run(["git", "init", "-q", str(root)], check=True, timeout=60)
    return root


def turbo(node_tools: Path, repo: Path, url: str, *flags: str, **env: str) -> tuple[str, dict]:
    """``turbo run build`` against ``url``; its output and the task's cache summary."""
    shutil.rmtree(repo / "packages/app/dist", ignore_errors=True)
    shutil.rmtree(repo / ".turbo", ignore_errors=True)  # the local cache and old summaries
    done = subprocess.run(
        [node_tools / "turbo", "run", "build", f"--api={url}", "--summarize", *flags],
        cwd=repo,
        env={
            **os.environ,
            "TURBO_TOKEN": TOKEN,
            "TURBO_TEAM": "team",
            "TURBO_TELEMETRY_DISABLED": "1",
            "TURBO_NO_UPDATE_NOTIFIER": "1",
            "DO_NOT_TRACK": "1",
            **env,
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    (summary,) = (repo / ".turbo" / "runs").glob("*.json")
    (task,) = json.loads(summary.read_text())["tasks"]
    return output, task["cache"]


@pytest.fixture
def repo(tmp_path: Path, request: pytest.FixtureRequest) -> Path:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    return write_repo(tmp_path / "repo", output=request.node.name)


def test_a_run_with_no_local_cache_replays_the_task_from_packrat(
    node_tools, repo, module_server, request
):
    server = module_server
    before = server.stats()
    _, cache = turbo(node_tools, repo, server.url)
    assert cache["status"] == "MISS"
    stored = server.stats()
    assert stored["commits"] - before["commits"] == 1  # the artifact, nothing else
    (upload,) = stored["recent_uploads"][:1]
    assert re.fullmatch(r"v8/artifacts/team/[0-9a-f]{16}", upload["key"])  # TURBO_TEAM's

    output, cache = turbo(node_tools, repo, server.url)
    assert cache["status"] == "HIT" and cache["source"] == "REMOTE", output
    assert "cache hit, replaying logs" in output
    assert (repo / "packages/app/dist/out.txt").read_text() == f"{request.node.name}\n"
    after = server.stats_grown(stored, hits=1)
    assert after["hits"] - stored["hits"] == 1
    assert after["commits"] == stored["commits"]


def test_without_packrat_the_same_run_executes_the_task(node_tools, repo, free_tcp_port):
    """The check that the hit above is Packrat's: with no server, a miss both times."""
    url = f"http://127.0.0.1:{free_tcp_port}"
    for _ in range(2):
        _, cache = turbo(node_tools, repo, url)
        assert cache["status"] == "MISS"


def test_turbo_reports_the_remote_cache_available(node_tools, repo, module_server):
    output, _ = turbo(node_tools, repo, module_server.url)
    assert "Remote caching unavailable" not in output, output
    assert "Remote caching enabled" in output or "Remote caching" not in output


def test_a_remote_hit_reports_the_time_it_saved(node_tools, repo, module_server):
    turbo(node_tools, repo, module_server.url)
    _, cache = turbo(node_tools, repo, module_server.url)
    assert cache["source"] == "REMOTE"
    assert cache["timeSaved"] > 0


def test_teams_do_not_share_artifacts(node_tools, repo, module_server):
    turbo(node_tools, repo, module_server.url, "--team=alpha")
    _, other_team = turbo(node_tools, repo, module_server.url, "--team=beta")
    assert other_team["status"] == "MISS"
    _, same_team = turbo(node_tools, repo, module_server.url, "--team=alpha")
    assert same_team["status"] == "HIT" and same_team["source"] == "REMOTE"


def test_signed_artifacts_are_hits(node_tools, tmp_path, module_server):
    repo = write_repo(tmp_path / "signed", "signed", remote_cache={"signature": True})
    key = {"TURBO_REMOTE_CACHE_SIGNATURE_KEY": "signing-key-0123456789-0123456789"}
    _, first = turbo(node_tools, repo, module_server.url, **key)
    assert first["status"] == "MISS"
    output, second = turbo(node_tools, repo, module_server.url, **key)
    assert second["status"] == "HIT" and second["source"] == "REMOTE", output


def metric(server, name: str, labels: str) -> float:
    text = requests.get(server.url + "/metrics", timeout=10).text
    match = re.search("^" + re.escape(f"{name}{{{labels}}}") + r" (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def test_usage_events_are_counted_and_dry_runs_ask_the_query_endpoint(
    node_tools, repo, module_server
):
    server = module_server
    hits = 'event="HIT",source="REMOTE"'
    before = metric(server, "packrat_turbo_events_total", hits)
    saved = metric(server, "packrat_turbo_saved_seconds_total", 'source="REMOTE"')
    turbo(node_tools, repo, server.url)
    turbo(node_tools, repo, server.url)  # a remote hit, reported in an event
    assert metric(server, "packrat_turbo_events_total", hits) == before + 1
    assert metric(server, "packrat_turbo_saved_seconds_total", 'source="REMOTE"') > saved
    shutil.rmtree(repo / ".turbo", ignore_errors=True)
    done = subprocess.run(
        [node_tools / "turbo", "run", "build", f"--api={server.url}", "--dry=json"],
        cwd=repo,
        env={**os.environ, "TURBO_TOKEN": TOKEN, "TURBO_TEAM": "team", "DO_NOT_TRACK": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    (task,) = json.loads(done.stdout)["tasks"]
    assert task["cache"]["status"] == "HIT" and task["cache"]["timeSaved"] > 0, done.stdout


def put_artifact(url: str, hash_: str, body: bytes, query: str = "", **headers: str):
    return requests.put(
        f"{url}/v8/artifacts/{hash_}{query}",
        data=body,
        headers={"Authorization": f"Bearer {TOKEN}", **headers},
        timeout=10,
    )


def test_the_artifacts_api_over_plain_http(module_server):
    url = module_server.url
    status = requests.get(f"{url}/v8/artifacts/status?slug=t", timeout=10)
    assert status.status_code == 200 and status.json() == {"status": "enabled"}
    refused = requests.delete(f"{url}/v8/artifacts/status", timeout=10)
    assert refused.status_code == 405 and refused.json()["error"]["code"] == "method_not_allowed"

    tag = "Tc0BmHvJYMIYJ62/zx87YqO0Flxk+5Ovip25NY825CQ="
    stored = {"x-artifact-duration": "1234", "x-artifact-tag": tag, "x-artifact-sha": "ab" * 20}
    assert put_artifact(url, "0a1b2c3d", b"tar.gz bytes", "?teamId=team_one&slug=one", **stored)
    for method in ("GET", "HEAD"):
        reply = requests.request(method, f"{url}/v8/artifacts/0a1b2c3d?teamId=team_one", timeout=10)
        assert reply.status_code == 200
        assert {name: reply.headers[name] for name in stored} == stored
    # The key is the team's (teamId before slug), and reads as any other key.
    assert module_server.get("v8/artifacts/team_one/0a1b2c3d").content == b"tar.gz bytes"
    assert requests.get(f"{url}/v8/artifacts/0a1b2c3d?slug=one", timeout=10).status_code == 404
    missing = requests.get(f"{url}/v8/artifacts/ffff?teamId=team_one", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

    query = requests.post(
        f"{url}/v8/artifacts?teamId=team_one",
        json={"hashes": ["0a1b2c3d", "ffff", "../x"]},
        timeout=10,
    )
    assert query.status_code == 200
    answer = query.json()
    assert answer["0a1b2c3d"] == {"size": 12, "taskDurationMs": 1234, "tag": tag, "sha": "ab" * 20}
    assert answer["ffff"] is None and "error" in answer["../x"]

    before = module_server.stats()
    for headers in (
        {"x-artifact-duration": "-5"},
        {"x-artifact-duration": "soon"},
        {"x-artifact-tag": "t" * 601},
        {"x-artifact-tag": "caf\u00e9".encode().decode("latin-1")},
    ):
        reply = put_artifact(url, "0a1b2c3e", b"x", **headers)
        assert reply.status_code == 400, headers
        assert reply.json()["error"]["code"] == "bad_request"
    for team in ("?slug=a/b", "?teamId=..", "?slug=%00"):
        assert put_artifact(url, "0a1b2c3e", b"x", team).status_code == 400, team
    for body in (b"not json", b'{"events": []}', b'[{"source": "CLOUD", "event": "HIT"}]'):
        reply = requests.post(f"{url}/v8/artifacts/events", data=body, timeout=10)
        assert reply.status_code == 400 and reply.json()["error"]["message"], body
    assert module_server.stats()["commits"] == before["commits"]  # nothing stored


@pytest.fixture
def auth_server(make_server):
    server = make_server(
        wait=False,
        auth={"enabled": "true", "write_tokens": TOKEN, "read_tokens": "turbo-reader-0123456789"},
    )
    server.wait_ready(token=TOKEN)
    return server


def test_errors_come_in_turbos_shape_with_auth_on(auth_server):
    url = auth_server.url
    anonymous = requests.get(f"{url}/v8/artifacts/status", timeout=10)
    assert anonymous.status_code == 401 and "Bearer" in anonymous.headers["WWW-Authenticate"]
    assert anonymous.json()["error"]["code"] == "unauthorized"
    reader = {"Authorization": "Bearer turbo-reader-0123456789"}
    assert requests.get(f"{url}/v8/artifacts/status", headers=reader, timeout=10).ok
    assert requests.post(f"{url}/v8/artifacts/events", json=[], headers=reader, timeout=10).ok
    refused = requests.put(f"{url}/v8/artifacts/abcd", data=b"x", headers=reader, timeout=10)
    assert refused.status_code == 403
    assert refused.json() == {
        "code": "forbidden",
        "message": refused.json()["message"],
        "error": {"code": "forbidden", "message": refused.json()["message"]},
    }
    assert put_artifact(url, "abcd", b"x").status_code == 200
