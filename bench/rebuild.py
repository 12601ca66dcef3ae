"""How long the coordinator takes to rebuild its index from disk.

Run: ``python bench/rebuild.py [--objects 1000000] [--drop-caches]``
(``make bench`` runs it with 200,000; the issue's figure is for 1,000,000).
Writes that many small objects (64 bytes of data plus the trailer, in the
real layout) under a temporary root, then times the coordinator's start-up
(``Coordinator.load``: the staging sweep, ``store.scan.rebuild`` and filling
the index) for the three ways a coordinator starts:

* no snapshot: every trailer read (first start on an old cache, or a lost
  snapshot);
* periodic snapshot: after ``kill -9``, one stat per file;
* clean snapshot: after a clean stop, only the directory listings.

Each start runs in a fresh process, which also reports its memory per
object once loaded.  ``--baseline DIR`` times another checkout too (``git
worktree add DIR main``) on the same files, in the same run; ``--keep DIR``
builds the cache in DIR, or reuses (and extends) the one a previous run left
there.  The CPU time of each start is reported too: on a machine shared with
other work the wall-clock time is mostly waiting for a core.
``--drop-caches`` (root only) empties the page cache before each run, as after
a reboot.  Issue 17's targets for 1,000,000 objects on a 2-core machine:
under 5 s after a clean stop, under 30 s with no snapshot.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from packrat.store import Layout, ObjectMeta
from packrat.store.format import encode_trailer

ROOT = Path(__file__).resolve().parents[1]


def populate(layout: Layout, count: int, first: int = 0) -> None:
    """Write objects ``first`` to ``count - 1`` (those below are there from a smaller run)."""
    layout.create()
    data = b"x" * 64
    digest = hashlib.sha256(data).hexdigest()
    stamp = time.time_ns()
    for n in tqdm(range(first, count), desc="writing objects", unit="obj", mininterval=2):
        key = f"bench/{n}"
        path = layout.object_path(key)
        meta = ObjectMeta(key, f"{n}.bin", "application/octet-stream", len(data), digest, 0.0)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data + encode_trailer(meta))
        os.utime(fd, ns=(stamp + n, stamp + n))  # commit stamps, as the coordinator sets them
        os.close(fd)


def timed_start(root: Path, count: int, save: str) -> dict[str, float]:
    """In a child process: start a coordinator on ``root``, then save what the next start needs."""
    from packrat.coordinator.service import Coordinator

    try:
        from packrat.core.settings import Settings
    except ImportError:  # a checkout from before packrat/core (--baseline)
        from packrat.config import Settings
    coordinator = Coordinator(Settings(cache_root=root, cache_max_size=1 << 50))
    before = _rss()
    started, cpu_started = time.perf_counter(), time.process_time()
    coordinator.load()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    rss = _rss() - before
    assert len(coordinator.index) == count, len(coordinator.index)
    if save != "none":
        coordinator.snapshot(clean=save == "clean")
    coordinator.close()
    return {"seconds": seconds, "cpu": cpu, "bytes_per_object": rss / count}


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def starts(checkout: Path, root: Path, count: int, drop_caches: bool) -> list[dict[str, float]]:
    """The three starts, in fresh processes running ``checkout``'s code."""
    for name in ("snapshot", "clean"):
        (root / "state" / name).unlink(missing_ok=True)
    results = []
    for save in ("periodic", "clean", "none"):  # each leaves the snapshot the next one needs
        if drop_caches:
            os.sync()
            Path("/proc/sys/vm/drop_caches").write_text("3\n")
        output = subprocess.run(
            [sys.executable, __file__, "--child", str(root), str(count), save],
            env={**os.environ, "PYTHONPATH": str(checkout)},
            cwd="/",
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        results.append(json.loads(output.splitlines()[-1]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--dir", help="where to build the test cache (default: a temp dir)")
    parser.add_argument("--keep", type=Path, help="build the cache here (or reuse it) and keep it")
    parser.add_argument("--baseline", type=Path, help="another checkout to time too, same files")
    parser.add_argument("--drop-caches", action="store_true", help="cold page cache (root)")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        root, count, save = args.child
        print(json.dumps(timed_start(Path(root), int(count), save)))
        return
    if args.keep:
        root = args.keep
    else:
        if args.dir:
            Path(args.dir).mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="packrat-rebuild-", dir=args.dir))
    marker = root / "state" / "bench-objects"
    try:
        made = int(marker.read_text()) if marker.exists() else 0
        if made != args.objects:
            populate(Layout(root), args.objects, made if made < args.objects else 0)
            marker.write_text(str(args.objects))
        cache = "dropped" if args.drop_caches else "warm"
        print(f"objects: {args.objects:,}; page cache: {cache}; load {os.getloadavg()[0]:.1f}")
        checkouts = [("this checkout", ROOT)] + (
            [("baseline", args.baseline)] if args.baseline else []
        )
        for name, checkout in checkouts:
            results = starts(checkout, root, args.objects, args.drop_caches)
            print(f"{name}:")
            for label, result in zip(LABELS, results, strict=True):
                report(label, result, args.objects)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def report(label: str, result: dict[str, float], objects: int) -> None:
    seconds = result["seconds"]
    print(
        f"  {label + ':':19s}{seconds:6.1f} s, CPU {result['cpu']:5.1f} s  "
        f"({objects / seconds:>9,.0f} objects/s; "
        f"{result['bytes_per_object']:,.0f} bytes per object after)",
        flush=True,
    )


LABELS = ("no snapshot", "periodic snapshot", "clean snapshot")


if __name__ == "__main__":
    main()
