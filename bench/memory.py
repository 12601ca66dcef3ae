"""Bytes of coordinator memory per indexed object, for every policy.

Run: ``python bench/memory.py --objects 1000000 3000000 [--churn 3] [--baseline DIR]``.
Each measurement runs in a fresh process: an ``Index`` (what the coordinator
holds per object: keys, charges, last use, the policy's order and ghost) is
filled with N objects whose keys are shaped as ``bench/rebuild.py`` writes
them (``bench/<n>``, 12 bytes at a million), in a cache sized to hold
exactly N, then ``--churn`` times N more uploads go through it, each
evicting one, a quarter of them followed by a read of a recent upload.
One pass fills s3gdsf's ghost (three times the cache's bytes) only a
third of the way; three leave ghosts full and the key table worn by
removals, a cache's steady state.  The figures are the growth of the
process's resident memory divided by N, when filled and after the churn.
``--baseline DIR`` measures another checkout too (``git worktree add DIR
main``), in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ("lru", "fifo", "sieve", "s3fifo", "gdsf", "lfuda", "s3gdsf")


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure(policy: str, count: int, churn: int) -> dict[str, float]:
    """In the child process: fill, churn, and report bytes per object."""
    from packrat.coordinator.index import DIR_RESERVE, Index
    from packrat.store.accounting import expected_charge

    charge = expected_charge(244, "bench/1000000")  # what bench/rebuild.py's objects cost
    index = Index(policy, count * charge + DIR_RESERVE, low_water=1.0)
    before = rss()
    started = time.perf_counter()
    for n in range(count):
        index.make_room(charge)
        index.insert(f"bench/{n}", charge)
    filled = rss()
    for n in range(count, (1 + churn) * count):
        index.make_room(charge)
        index.insert(f"bench/{n}", charge)
        if n % 4 == 0:  # a quarter as many reads, of recent uploads
            index.touch([f"bench/{n - n % 1000}"])
    seconds = time.perf_counter() - started
    assert len(index) == count, len(index)
    return {
        "filled": (filled - before) / count,
        "churned": (rss() - before) / count,
        "us_per_upload": seconds / ((1 + churn) * count) * 1e6,
    }


def run(checkout: Path, policy: str, count: int, churn: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(checkout)}
    output = subprocess.run(
        [sys.executable, __file__, "--child", policy, str(count), str(churn)],
        env=env,
        cwd="/",
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return json.loads(output.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--policies", nargs="+", default=list(POLICIES))
    parser.add_argument("--churn", type=int, default=3, help="uploads after filling, times N")
    parser.add_argument("--baseline", type=Path, help="another checkout to measure too")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        policy, count, churn = args.child
        print(json.dumps(measure(policy, int(count), int(churn))))
        return
    print(f"1-minute load average {os.getloadavg()[0]:.1f}; churn {args.churn} x N")
    for count in args.objects:
        for policy in args.policies:
            new = run(ROOT, policy, count, args.churn)
            line = (
                f"{count:>10,} {policy:7s} {new['filled']:6.0f} B/object filled, "
                f"{new['churned']:6.0f} after churn, {new['us_per_upload']:5.1f} us/upload"
            )
            if args.baseline:
                old = run(args.baseline, policy, count, args.churn)
                line += (
                    f" | baseline {old['filled']:4.0f} / {old['churned']:4.0f} B, "
                    f"{old['us_per_upload']:5.1f} us; ratio {new['churned'] / old['churned']:.2f}"
                )
            print(line, flush=True)


if __name__ == "__main__":
    main()
