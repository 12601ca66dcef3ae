"""How fast the ``packrat`` command starts: ``--version``, ``--help`` and ``exists``.

Run: ``python bench/cli_startup.py [--runs 20] [--baseline REV]``.
Starts one ``packrat serve`` (one front end) and times, in fresh
processes, ``python -m packrat --version``, ``--help`` and ``exists`` of an
absent key against it (one HTTP round trip), beside ``python -c pass``, the
interpreter's own start-up.  With ``--baseline REV`` (a git revision, for
instance ``2ea04b7``: before the CLI became a package) the same commands of
that version's ``packrat/`` run too, interleaved with this one's, so both
see the same machine load.  Then one ``-X importtime`` run of each
``exists`` says where its import time goes, by top-level package.

The figures are wall-clock times of whole processes: the median and the
fastest of ``--runs``.  The goal (issue 19) is ``exists`` and ``--version``
under 0.15 s.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

# As in bench/http.py: this directory must not hide the standard library's http.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.http import checkout, packrat_server

REPO = Path(__file__).resolve().parent.parent
ABSENT = "bench/cli-startup/absent"


def commands(url: str) -> dict[str, list[str]]:
    """Each measured command line, after ``python``."""
    return {
        "python -c pass": ["-c", "pass"],
        "packrat --version": ["-m", "packrat", "--version"],
        "packrat --help": ["-m", "packrat", "--help"],
        "packrat exists (absent)": ["-m", "packrat", "exists", ABSENT, "--url", url],
    }


def environment(source: Path) -> dict[str, str]:
    """``packrat`` from ``source``, byte code cached as an installed package's is."""
    env = dict(os.environ, PYTHONPATH=str(source))
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def timed(argv: list[str], source: Path, cwd: Path) -> float:
    """Seconds one fresh process takes, start to exit, with ``packrat`` from ``source``.

    ``cwd`` holds no ``packrat/``: ``python -m`` puts it first on the path.
    """
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *argv], env=environment(source), cwd=cwd, capture_output=True, timeout=60
    )
    seconds = time.perf_counter() - started
    if done.returncode not in (0, 1):  # exists: 1 is "not stored", the expected answer
        raise SystemExit(f"{argv} exited {done.returncode}: {done.stderr.decode()}")
    return seconds


def import_times(argv: list[str], source: Path, cwd: Path) -> dict[str, float]:
    """Seconds of ``-X importtime`` self time by top-level package (plus ``total``)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", *argv],
        env=environment(source),
        cwd=cwd,
        capture_output=True,
        timeout=60,
    )
    by_package: dict[str, float] = defaultdict(float)
    for line in done.stderr.decode().splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, _, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        by_package[name.split(".")[0]] += int(self_us) / 1e6
        by_package["total"] += int(self_us) / 1e6
    return by_package


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each command (default 20)")
    parser.add_argument("--baseline", metavar="REV", help="also time this git revision's CLI")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="packrat-cli-startup-") as tmp:
        work = Path(tmp)
        sources = {"this version": REPO}
        if args.baseline:
            (work / "baseline").mkdir()
            sources[args.baseline] = checkout(args.baseline, work / "baseline")
        with packrat_server(work, 1, None) as server:
            lines = commands(server.url)
            for argv in lines.values():  # warm-up: byte code written, not counted
                for source in sources.values():
                    timed(argv, source, work)
            times: dict[tuple[str, str], list[float]] = defaultdict(list)
            for _ in range(args.runs):  # interleaved: both versions see the same load
                for what, argv in lines.items():
                    for version, source in sources.items():
                        times[(what, version)].append(timed(argv, source, work))
            exists = lines["packrat exists (absent)"]
            imports = {v: import_times(exists, s, work) for v, s in sources.items()}
    print(f"{args.runs} runs each, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}\n")
    header = "| command | " + " | ".join(f"{v}: median (fastest)" for v in sources) + " |"
    print(header)
    print("|---" * (len(sources) + 1) + "|")
    for what in lines:
        cells = []
        for version in sources:
            runs = times[(what, version)]
            cells.append(f"{statistics.median(runs) * 1000:.0f} ms ({min(runs) * 1000:.0f})")
        print(f"| `{what}` | " + " | ".join(cells) + " |")
    print("\n`-X importtime` of `packrat exists`, self time by top-level package (ms):\n")
    for version, by_package in imports.items():
        top = sorted(by_package.items(), key=lambda item: -item[1])[:8]
        print(f"- {version}: " + ", ".join(f"{name} {seconds * 1000:.0f}" for name, seconds in top))


if __name__ == "__main__":
    main()
