"""Run libCacheSim on the very requests ``packrat simulate`` replays.

libCacheSim (PyPI ``libcachesim``) is a bench/test dependency only.  Requests
are written as an oracleGeneral file (keys numbered in order of first
appearance) so both simulators see identical objects and sizes; each run is a
subprocess with a timeout, because some libCacheSim policies hang on some
traces (LFUDA on NASA at 1 %).

Run as a module it is that subprocess:
``python -m packrat.simulator.reference FILE ALGORITHM BYTES`` prints
``[object_miss_ratio, byte_miss_ratio]``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Hashable
from pathlib import Path

from packrat.simulator.traces import ORACLE_RECORD, Request

ALGORITHMS = {
    "lru": "LRU",
    "fifo": "FIFO",
    "sieve": "Sieve",
    "s3fifo": "S3FIFO",
    "gdsf": "GDSF",
    "lfuda": "LFUDA",
    "wtinylfu": "WTinyLFU",
    "lhd": "LHD",
    "arc": "ARC",
}
"""Our policy names (and a few libCacheSim-only ones) to libCacheSim classes."""


def write_oracle_general(requests: list[Request], path: Path) -> None:
    """Write requests in libCacheSim's binary format, next-access times included."""
    ids: dict[Hashable, int] = {}
    next_use = [-1] * len(requests)
    last: dict[Hashable, int] = {}
    for i in range(len(requests) - 1, -1, -1):
        key = requests[i][0]
        next_use[i] = last.get(key, -1)
        last[key] = i + 1
    with path.open("wb") as f:
        for i, (key, size) in enumerate(requests):
            obj_id = ids.setdefault(key, len(ids) + 1)
            f.write(ORACLE_RECORD.pack(i + 1, obj_id, size, next_use[i]))


def run(
    trace: Path, policy: str, capacity: int, timeout: float = 120
) -> tuple[float, float] | None:
    """libCacheSim's (object, byte) miss ratios; ``None`` on timeout or failure."""
    argv = [sys.executable, "-m", __name__, str(trace), ALGORITHMS[policy], str(capacity)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=True)
    except (subprocess.TimeoutExpired, subprocess.CalledProcessError):
        return None
    omr, bmr = json.loads(done.stdout.strip().splitlines()[-1])
    return omr, bmr


def _main(trace: str, algorithm: str, capacity: str) -> None:
    import libcachesim

    reader = libcachesim.TraceReader(trace, libcachesim.TraceType.ORACLE_GENERAL_TRACE)
    cache = getattr(libcachesim, algorithm)(cache_size=int(capacity))
    print(json.dumps(list(cache.process_trace(reader))))


if __name__ == "__main__":
    _main(*sys.argv[1:4])
