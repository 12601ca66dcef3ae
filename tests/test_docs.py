"""``make`` alone and ``make help`` list the targets (and build nothing)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


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
