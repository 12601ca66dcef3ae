"""What an object costs against ``max_size``: the disk it really takes.

``max_size`` bounds ``du -s <root>`` (beyond the layout's fixed
``FIXED_OVERHEAD``), so an object is charged

* the blocks its file has allocated (``st_blocks``, and at least its size
  rounded up to a 4 KiB block: what nginx's cache manager and bazel-remote
  count), and
* its row of the index snapshot in ``state/``, twice: the old snapshot and
  the one being written exist together for a moment.

The fan-out directories grow as they fill (and on most file systems never
shrink); the coordinator measures that growth (``DirUsage``) and charges it
too.
"""

from __future__ import annotations

import os

from packrat.store.layout import BLOCK, FANOUT

SNAPSHOT_ROW = 64  # bytes of one snapshot row besides its key


def round_up(nbytes: int, block: int = BLOCK) -> int:
    """``nbytes`` rounded up to whole blocks.

    >>> round_up(1), round_up(4096), round_up(4097), round_up(4097, 65536)
    (4096, 4096, 8192, 65536)
    """
    return -(-nbytes // block) * block


def state_charge(key: str) -> int:
    """The snapshot bytes an entry for ``key`` takes (two copies at a time)."""
    return 2 * (SNAPSHOT_ROW + len(key.encode("utf-8")))


def charge(file_stat: os.stat_result, key: str) -> int:
    """Bytes an object file of ``key`` counts against ``max_size``."""
    allocated = max(file_stat.st_blocks * 512, round_up(file_stat.st_size))
    return allocated + state_charge(key)


def expected_charge(file_size: int, key: str, block: int = BLOCK) -> int:
    """``charge`` of a freshly written file of ``file_size`` bytes (no sparse or extra blocks)
    on a file system allocating ``block`` bytes at a time (at least ``BLOCK``).

    >>> expected_charge(5000, "k")
    8322
    """
    return round_up(file_size, max(block, BLOCK)) + state_charge(key)


class DirUsage:
    """How far the fan-out directories have grown beyond their first block."""

    def __init__(self) -> None:
        self._growth = dict.fromkeys(FANOUT, 0)
        self.total = 0

    def measure(self, name: str, dir_fd: int) -> int:
        """Re-read one directory's size; return the change in ``total``."""
        grown = max(os.fstat(dir_fd).st_blocks * 512 - BLOCK, 0)
        change = grown - self._growth[name]
        self._growth[name] = grown
        self.total += change
        return change
