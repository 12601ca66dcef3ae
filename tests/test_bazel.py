"""Bazel with Packrat as its HTTP remote cache, with the real Bazel (Debian's bazel-bootstrap).

A workspace of three actions (two compilations and a link, as genrules calling
the local C compiler: Bazel 4.2's own C++ rules need ``@rules_cc`` and
``@rules_java`` from the network, and Debian's rules_cc 0.0.4 is too new for
Bazel 4.2) is built with ``--remote_cache``; ``clean --expunge`` then wipes
every local output, cache and the server itself, and the next build must take
all three actions from Packrat: Bazel says so ("3 remote cache hit") and
Packrat counts the action-cache entries and the output blobs as hits.

One Bazel install base and output root for the module (``output_user_root``
in a temporary directory); the server is shut down at the end by ``bazel
shutdown`` and, should that fail, by its PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from packrat.buildtools.reapi import output_digests

pytestmark = pytest.mark.skipif(
    shutil.which("bazel") is None or shutil.which("cc") is None,
    reason="bazel (Debian's bazel-bootstrap) or a C compiler is not installed",
)

ACTIONS = 3  # lib.o, main.o, app
SOURCES = {
    "WORKSPACE": "",
    "lib.h": "int answer(void);\n",
    "lib.c": '#include "lib.h"\nint answer(void) { return 42; }\n',
    "main.c": '#include <stdio.h>\n#include "lib.h"\n'
    'int main(void) { printf("%d\\n", answer()); return 0; }\n',
    "BUILD": """\
genrule(
    name = "lib_o",
    srcs = ["lib.c", "lib.h"],
    outs = ["lib.o"],
    cmd = "cc -O1 -c $(location lib.c) -o $@",
)
genrule(
    name = "main_o",
    srcs = ["main.c", "lib.h"],
    outs = ["main.o"],
    cmd = "cc -O1 -I$$(dirname $(location lib.h)) -c $(location main.c) -o $@",
)
genrule(
    name = "answer",
    srcs = [":lib_o", ":main_o"],
    outs = ["answer.bin"],
    cmd = "cc $(SRCS) -o $@",
    executable = True,
)
""",
}


class Bazel:
    """``bazel`` in one workspace, with one output root, and the server it starts."""

    def __init__(self, workspace: Path, output_user_root: Path) -> None:
        self.workspace = workspace
        self.output_user_root = output_user_root
        self.server_pids: set[int] = set()

    def __call__(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            ["bazel", f"--output_user_root={self.output_user_root}", *args],
            cwd=self.workspace,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        self._note_server()
        return done

    def _note_server(self) -> None:
        for path in self.output_user_root.glob("*/server/server.pid.txt"):
            with contextlib.suppress(OSError, ValueError):
                self.server_pids.add(int(path.read_text().strip()))

    def shutdown(self) -> None:
        self("shutdown", timeout=120)
        for pid in self.server_pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                server = psutil.Process(pid)
                if str(self.output_user_root) in " ".join(server.cmdline()):
                    server.kill()
                    server.wait(10)


@pytest.fixture(scope="module")
def bazel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bazel]:
    root = tmp_path_factory.mktemp("bazel")
    workspace = root / "workspace"
    workspace.mkdir()
    for name, text in SOURCES.items():
        (workspace / name).write_text(text)
    runner = Bazel(workspace, root / "output_user_root")
    try:
        yield runner
    finally:
        runner.shutdown()


def build(bazel: Bazel, *flags: str) -> str:
    """Build the binary (no sandbox debugging: Debian's bazelrc turns it on); Bazel's report."""
    done = bazel("build", "--nosandbox_debug", *flags, "//:answer")
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stderr


def test_a_build_after_clean_expunge_takes_every_action_from_packrat(bazel, module_server):
    server = module_server
    cache = f"--remote_cache={server.url}/bazel"
    before = server.stats()
    first = build(bazel, cache)
    assert f"{ACTIONS} linux-sandbox" in first or f"{ACTIONS} local" in first, first
    binary = (bazel.workspace / "bazel-bin" / "answer.bin").read_bytes()
    stored = server.stats_grown(before, misses=ACTIONS)
    # Per action: its action-cache entry, its output, and the Action and Command
    # messages (Bazel 4.2 stores them in cas/ too), all under the prefix.
    assert stored["commits"] - before["commits"] == 4 * ACTIONS
    assert stored["misses"] - before["misses"] == ACTIONS  # each action asked first
    uploads = [upload["key"] for upload in stored["recent_uploads"]]
    assert sum(key.startswith("bazel/ac/") for key in uploads) == ACTIONS
    assert all(key.startswith(("bazel/ac/", "bazel/cas/")) for key in uploads)
    # Each action result names its output, stored in cas/ with the size it says, and
    # its empty stdout and stderr (the empty blob, which needs no storage).
    results = requests.get(f"{server.url}/api/keys", params={"prefix": "bazel/ac/"}, timeout=10)
    assert len(results.json()["keys"]) == ACTIONS
    for entry in results.json()["keys"]:
        output, stdout, stderr = output_digests(server.get(entry["key"]).content).files
        assert stdout.size == stderr.size == 0
        stored_blob = server.get(f"bazel/cas/{output.hash}")
        assert stored_blob.status_code == 200 and len(stored_blob.content) == output.size > 0
    stored = server.stats_grown(stored, hits=2 * ACTIONS)  # the reads just made

    assert bazel("clean", "--expunge").returncode == 0  # outputs, caches and the server
    assert not (bazel.workspace / "bazel-bin").exists()
    second = build(bazel, cache)
    assert f"{ACTIONS} remote cache hit" in second, second
    assert (bazel.workspace / "bazel-bin" / "answer.bin").read_bytes() == binary
    ran = subprocess.run([bazel.workspace / "bazel-bin" / "answer.bin"], capture_output=True)
    assert ran.stdout == b"42\n"
    after = server.stats_grown(stored, hits=2 * ACTIONS)
    # Each action's entry, then its output: all hits, nothing new stored.
    assert after["hits"] - stored["hits"] == 2 * ACTIONS
    assert after["misses"] == stored["misses"]
    assert after["commits"] == stored["commits"]


def test_a_bazel_without_the_remote_cache_runs_every_action(bazel):
    """The check that the hits above come from Packrat: without it, nothing is cached."""
    assert bazel("clean", "--expunge").returncode == 0
    report = build(bazel)
    assert "remote cache hit" not in report
    assert f"{ACTIONS} linux-sandbox" in report or f"{ACTIONS} local" in report, report
    assert os.access(bazel.workspace / "bazel-bin" / "answer.bin", os.X_OK)
