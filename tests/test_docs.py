"""Every command in README.md and docs/*.md, run as written, so the documentation cannot drift.

The commands are the fenced ``sh`` and ``python`` blocks.  They run in order,
file by file, against one server, which is ``make run`` itself (README's
first command), with ``$PACKRAT_CONFIG`` naming a test configuration on a
free port.  Each block runs in one shared working directory holding the
files the documents name (``report.pdf``, ``app.tar.gz``, ``access.tsv``) and
the checkout's ``.venv``, with ``packrat`` on the PATH as after ``source
.venv/bin/activate``; ``127.0.0.1:5050`` becomes the server's address.  A
block must exit 0.  A block that cannot run here is in ``NOT_RUN`` with the
test that runs it instead; that list is checked both ways.  ``make`` alone
and ``make help`` are checked here too.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.waiting import wait_answering

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DEFAULT_ADDRESS = "127.0.0.1:5050"
BLOCK = re.compile(r"^```(sh|python)\n(.*?)^```\n", re.M | re.S)

# A block's first line -> why it does not run here, and the test that runs it.
NOT_RUN = {
    (
        "make run    # makes .venv, installs Packrat, serves on http://127.0.0.1:5050"
        " (Ctrl-C stops it)"
    ): "make run is this module's server; make test runs the suite this test is part of",
    "python -m pip install build": "tests/test_install.py builds and installs the wheel so",
    "bazel build --remote_cache=http://127.0.0.1:5050/bazel //...": (
        "tests/test_bazel.py runs Bazel against Packrat in a workspace of its own"
    ),
    "export TURBO_API=http://127.0.0.1:5050": (
        "tests/test_turborepo.py runs turbo against Packrat in a repository of its own"
    ),
    "export NX_SELF_HOSTED_REMOTE_CACHE_SERVER=http://127.0.0.1:5050/nx": (
        "tests/test_nx.py runs nx against Packrat in a workspace of its own"
    ),
}


def blocks(document: Path) -> list[tuple[str, str]]:
    """The (language, code) of each fenced sh and python block, in order."""
    return [(m[1], m[2]) for m in BLOCK.finditer(document.read_text())]


def first_line(code: str) -> str:
    return code.splitlines()[0].strip()


@pytest.fixture(scope="module")
def make_run(tmp_path_factory, config_writer, port_picker):
    """``make run`` from the checkout, as README says, on a free port; stopped at the end."""
    home = tmp_path_factory.mktemp("make-run")
    port = port_picker()
    config = config_writer(home / "packrat.ini", home, port)
    log = home / "make-run.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKRAT_", "MAKE"))}
    with open(log, "wb") as out:
        process = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env={**env, "PACKRAT_CONFIG": str(config)},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, stopped as one below
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(url + "/readyz", timeout=60, process=process, log=log.read_text)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    """Where the blocks run: the files they name, and the checkout's .venv."""
    work = tmp_path_factory.mktemp("reader")
    (work / ".venv").symlink_to(ROOT / ".venv")
    (work / "report.pdf").write_bytes(b"%PDF-1.4 a report\n" * 2000)
    (work / "app.tar.gz").write_bytes(os.urandom(300_000))
    shutil.copy(ROOT / "tests" / "data" / "nasa_19950801_head3000.tsv", work / "access.tsv")
    return work


def test_every_block_runs_or_says_why_not():
    found = {first_line(code) for document in DOCUMENTS for _, code in blocks(document)}
    assert set(NOT_RUN) <= found, set(NOT_RUN) - found  # no stale entry
    assert len(found) > 10


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_the_commands_of(document: Path, make_run: str, workdir: Path):
    address = make_run.removeprefix("http://")
    venv_bin = ROOT / ".venv" / "bin"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PACKRAT_", "MAKE"))}
    env.update(PATH=f"{venv_bin}:{env['PATH']}", VIRTUAL_ENV=str(ROOT / ".venv"))
    env["PACKRAT_URL"] = make_run  # never the real port, even where a block relies on the default
    for language, code in blocks(document):
        if first_line(code) in NOT_RUN:
            continue
        assert DEFAULT_ADDRESS not in address
        code = code.replace(DEFAULT_ADDRESS, address)
        argv = ["bash", "-e", "-o", "pipefail", "-c", code]
        if language == "python":
            argv = [sys.executable, "-c", code]
        started = time.monotonic()
        result = subprocess.run(
            argv,
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=120,
        )
        print(f"{document.name}: {first_line(code)[:60]}: {time.monotonic() - started:.2f} s")
        assert result.returncode == 0, f"{document.name}:\n{code}\n{result.stdout}\n{result.stderr}"


def run_make(*targets: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    return subprocess.run(
        ["make", "--no-print-directory", *targets],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_make_alone_lists_the_targets_and_does_nothing_else():
    alone, help_ = run_make(), run_make("help")
    assert alone.returncode == help_.returncode == 0, alone.stderr
    assert alone.stdout == help_.stdout
    phony = re.search(r"^\.PHONY: (.*)$", (ROOT / "Makefile").read_text(), re.M)[1].split()
    listed = re.findall(r"^  (\S+) +\S", alone.stdout, re.M)
    assert listed == phony
    assert ".venv/bin/packrat" in alone.stdout
    assert "pip" not in alone.stdout and alone.stderr == ""


def test_the_architecture_table_names_every_part_of_the_package_once():
    """README's Architecture table is the living layout: every folder and module, once."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Architecture\n", 1)[1].split("\n## ", 1)[0]
    named = re.findall(r"^\| `(packrat/[^`]+)` \|", section, re.M)
    package = ROOT / "packrat"
    parts = [f"packrat/{p.name}/" for p in package.iterdir() if (p / "__init__.py").exists()]
    parts += [
        f"packrat/{p.name}"
        for p in package.glob("*.py")
        if p.name not in ("__init__.py", "__main__.py")
    ]
    assert sorted(named) == sorted(parts)
