"""The ``packrat`` command, run as a user would, to its end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def packrat(
    *args: str,
    url: str | None = None,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    text: bool = False,
    timeout: float = 60,
) -> subprocess.CompletedProcess:
    """Run ``packrat ARGS`` with output captured (no terminal); ``PACKRAT_*`` from the
    test's own environment is left out, ``$PACKRAT_URL`` is ``url`` and ``env`` is added."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PACKRAT_")}
    if url:
        environ["PACKRAT_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "packrat", *args],
        input=stdin,
        capture_output=True,
        text=text,
        timeout=timeout,
        env={**environ, **(env or {})},
        cwd=cwd,
    )
