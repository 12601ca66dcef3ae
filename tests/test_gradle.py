"""Gradle with Packrat as its HTTP build cache, with the real Gradle (Debian's 4.4.1 on JDK 17).

A Java project with a main and a test source set (two cacheable compilations)
is built with the remote cache on and the local one off; then its outputs,
its ``.gradle`` directory and the user home's local build cache are removed,
and the next build must take both compilations from Packrat: Gradle prints
``FROM-CACHE`` for each and Packrat counts two hits.

One daemon for the module (its own Gradle user home in a temporary
directory), stopped at the end by ``gradle --stop`` and, should that fail,
by its PID.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.skipif(
    shutil.which("gradle") is None, reason="gradle (Debian's package) is not installed"
)

TASKS = (":compileJava", ":compileTestJava")
SOURCES = {
    "build.gradle": "apply plugin: 'java'\n",
    "src/main/java/demo/Answer.java": (
        "package demo;\n"
        "public class Answer {\n"
        "    public static int answer() { return 42; }\n"
        "    public static void main(String[] args) { System.out.println(answer()); }\n"
        "}\n"
    ),
    "src/test/java/demo/AnswerCheck.java": (
        "package demo;\n"
        "public class AnswerCheck {\n"
        "    public static boolean ok() { return Answer.answer() == 42; }\n"
        "}\n"
    ),
}
# The docs' recipe, in Gradle 4's Groovy DSL (docs/build-tools.md).
SETTINGS = """\
rootProject.name = 'demo'
buildCache {{
    local {{ enabled = false }}
    remote(HttpBuildCache) {{
        url = '{url}/gradle/'
        push = true
    }}
}}
"""


class Gradle:
    """``gradle`` in one project with its own user home, and the daemon it starts."""

    def __init__(self, project: Path, user_home: Path) -> None:
        self.project = project
        self.user_home = user_home

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["gradle", "--gradle-user-home", str(self.user_home), "--console=plain", *args],
            cwd=self.project,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def daemons(self) -> list[psutil.Process]:
        found = []
        for process in psutil.process_iter(["cmdline"]):
            cmdline = " ".join(process.info["cmdline"] or ())
            if "GradleDaemon" in cmdline and str(self.user_home) in cmdline:
                found.append(process)
        return found

    def stop(self) -> None:
        self("--stop")
        for daemon in self.daemons():
            with contextlib.suppress(psutil.NoSuchProcess):
                daemon.kill()
                daemon.wait(10)


@pytest.fixture(scope="module")
def gradle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gradle]:
    root = tmp_path_factory.mktemp("gradle")
    project = root / "project"
    for name, text in SOURCES.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    runner = Gradle(project, root / "user-home")
    try:
        yield runner
    finally:
        runner.stop()
    assert not runner.daemons()


def build(gradle: Gradle, url: str) -> str:
    (gradle.project / "settings.gradle").write_text(SETTINGS.format(url=url))
    done = gradle("--build-cache", "compileJava", "compileTestJava")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


def wipe(gradle: Gradle) -> None:
    """Everything local a build could reuse: outputs, the project's state, the local cache."""
    shutil.rmtree(gradle.project / "build")
    shutil.rmtree(gradle.project / ".gradle")
    shutil.rmtree(gradle.user_home / "caches" / "build-cache-1", ignore_errors=True)


def test_a_build_after_wiping_everything_local_takes_both_compilations_from_packrat(
    gradle, module_server
):
    server = module_server
    before = server.stats()
    first = build(gradle, server.url)
    for task in TASKS:
        assert f"{task}\n" in first, first  # run, not from any cache
    classes = (gradle.project / "build/classes/java/main/demo/Answer.class").read_bytes()
    stored = server.stats_grown(before, misses=len(TASKS))
    assert stored["commits"] - before["commits"] == len(TASKS)
    keys = [upload["key"] for upload in stored["recent_uploads"][: len(TASKS)]]
    assert all(key.startswith("gradle/") for key in keys), keys

    wipe(gradle)
    second = build(gradle, server.url)
    for task in TASKS:
        assert f"{task} FROM-CACHE" in second, second
    assert (gradle.project / "build/classes/java/main/demo/Answer.class").read_bytes() == classes
    after = server.stats_grown(stored, hits=len(TASKS))
    assert after["hits"] - stored["hits"] == len(TASKS)
    assert after["misses"] == stored["misses"]
    assert after["commits"] == stored["commits"]


def test_without_packrat_the_same_wiped_build_compiles_again(gradle, free_tcp_port):
    """The check that the hits above come from Packrat: with no server there, no FROM-CACHE."""
    wipe(gradle)
    report = build(gradle, f"http://127.0.0.1:{free_tcp_port}")
    assert "FROM-CACHE" not in report
    for task in TASKS:
        assert f"{task}\n" in report, report
