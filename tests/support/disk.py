"""What a cache root spends on disk, measured from the disk itself."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from packrat.store.accounting import charge
from packrat.store.format import read_trailer
from packrat.store.layout import BLOCK


def du(path: Path) -> int:
    """``du -s -B1 path``: allocated bytes of every directory and file under ``path``,
    no symlink followed; a file removed while counting (evicted) counts nothing."""
    total = 0
    for directory, _names, files in os.walk(path):
        for entry in [directory, *(os.path.join(directory, name) for name in files)]:
            with contextlib.suppress(FileNotFoundError):
                total += os.lstat(entry).st_blocks * 512
    return total


def charged_on_disk(root: Path) -> int:
    """Charges of every object file (``store.accounting``) plus the fan-out directories' growth."""
    total = 0
    for fanout in sorted((root / "objects").iterdir()):
        total += max(fanout.stat().st_blocks * 512 - BLOCK, 0)
        for path in fanout.iterdir():
            with contextlib.suppress(FileNotFoundError):
                with open(path, "rb") as f:
                    info = os.fstat(f.fileno())
                    meta = read_trailer(f.fileno(), info.st_size)
                total += charge(info, meta.key)
    return total
