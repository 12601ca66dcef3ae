"""Packrat as a user installs it: ``python -m build``, then the wheel in a fresh venv.

The wheel is built once per module from a copy of the sources (so the
checkout stays clean), the way README's Install section says, and installed
with ``--no-deps`` into a new virtualenv that sees the test environment's
packages for its dependencies (nothing is downloaded for them).  Then, from an
empty directory far from the checkout: ``--version``, ``packrat config`` on
built-in defaults, and ``packrat serve`` with a put and a get through the
installed client.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from packrat import __version__
from tests.support.waiting import shows_figures, wait_answering

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["pyproject.toml", "README.md", "packrat"]
TIMEOUT = 300


def quiet_env() -> dict[str, str]:
    """The environment without what would add noise unrelated to Packrat.

    ``PYTHONDONTWRITEBYTECODE`` makes setuptools print "byte-compiling is
    disabled"; ``PACKRAT_*`` would change what the commands find.
    """
    drop = ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH")
    return {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("PACKRAT_")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel ``python -m build`` makes, and everything the build printed."""
    work = tmp_path_factory.mktemp("build")
    source = work / "src"
    source.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(
                ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__")
            )
        else:
            shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(work / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=quiet_env(),
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (path,) = (work / "dist").glob("*.whl")
    return path, built.stdout + built.stderr


@pytest.fixture(scope="module")
def venv(wheel: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A fresh virtualenv with the wheel installed, and what pip printed."""
    env_dir = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(env_dir)], check=True, timeout=TIMEOUT)
    python = env_dir / "bin" / "python"
    # Dependencies come from this test environment, not the network.
    purelib = subprocess.check_output(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        text=True,
    ).strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "test-dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel[0])],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env={**quiet_env(), "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return env_dir, installed.stdout + installed.stderr


def test_the_wheel_builds_without_warnings(wheel):
    path, output = wheel
    assert path.name == f"packrat_cache-{__version__}-py3-none-any.whl"
    noise = [line for line in output.splitlines() if "warning" in line.lower()]
    assert not noise, output


def test_the_wheel_holds_the_package_and_its_data(wheel):
    with zipfile.ZipFile(wheel[0]) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"packrat_cache-{__version__}.dist-info/METADATA").decode()
        entry_points = archive.read(f"packrat_cache-{__version__}.dist-info/entry_points.txt")
    for name in (
        "packrat/cli/main.py",
        "packrat/core/settings.py",
        "packrat/client.py",
        "packrat/frontend/openapi.json",
        "packrat/frontend/templates/status.html",
        "packrat/frontend/static/packrat.css",
    ):
        assert name in names, name
    assert "Name: packrat-cache\n" in metadata
    assert f"Version: {__version__}\n" in metadata
    assert "License-Expression: MIT" in metadata
    for requirement in ("tornado", "pyzmq", "tqdm"):
        assert f"Requires-Dist: {requirement}" in metadata, requirement
    # The client speaks http.client: requests is for the tests only.
    assert 'Requires-Dist: requests>=2.31; extra == "test"\n' in metadata
    assert "Requires-Dist: requests>=2.31\n" not in metadata
    assert b"packrat = packrat.cli.main:main" in entry_points


def test_it_installs_into_a_fresh_venv_without_warnings(venv):
    env_dir, output = venv
    assert "Successfully installed packrat-cache" in output
    noise = [line for line in output.splitlines() if "warning" in line.lower()]
    assert not noise, output
    check = subprocess.run(
        [str(env_dir / "bin" / "python"), "-m", "pip", "check"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=quiet_env(),
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_installed_command_runs_anywhere(venv, tmp_path, free_tcp_port):
    env_dir, _ = venv
    packrat = str(env_dir / "bin" / "packrat")
    anywhere = tmp_path / "anywhere"
    anywhere.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [packrat, *args], cwd=anywhere, capture_output=True, text=True, timeout=60, env=env
        )

    env = {**quiet_env(), "PACKRAT_URL": f"http://127.0.0.1:{free_tcp_port}"}
    where = subprocess.check_output(
        [str(env_dir / "bin" / "python"), "-c", "import packrat; print(packrat.__file__)"],
        cwd=anywhere,
        text=True,
    )
    assert where.startswith(str(env_dir)), where  # the wheel's copy, not the checkout
    assert run("--version").stdout.strip() == f"packrat {__version__}"
    if not Path("/etc/packrat/packrat.ini").exists():  # else that file is the configuration
        shown = run("config")
        assert shown.returncode == 0, shown.stderr
        assert "built-in defaults" in shown.stdout.splitlines()[0]

    # Only the port differs from the defaults: the cache root and the
    # coordinator's socket are the default relative paths, under `anywhere`.
    (anywhere / "etc").mkdir()
    (anywhere / "etc" / "packrat.ini").write_text(f"[server]\nport = {free_tcp_port}\n")
    log = tmp_path / "serve.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [packrat, "serve"], cwd=anywhere, stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        url = env["PACKRAT_URL"] + "/"
        wait_answering(url, shows_figures, timeout=30, process=server, log=log.read_text)
        (anywhere / "hello.txt").write_text("hello from the wheel")
        put = run("put", "hello.txt", "greetings/hello")
        assert put.returncode == 0, put.stderr
        assert json.loads(put.stdout)["size"] == 20
        got = run("get", "greetings/hello")
        assert got.returncode == 0 and got.stdout == "hello from the wheel"
        assert (anywhere / "var" / "cache" / "objects").is_dir()
    finally:
        server.send_signal(signal.SIGTERM)
        assert server.wait(30) == 0, log.read_text()
