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

``--drop-caches`` (root only) empties the page cache before each run, as after
a reboot.  The target is under 30 s for 1,000,000 objects on a 2-core machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path

from tqdm import tqdm

from packrat.coordinator.service import Coordinator
from packrat.core.settings import Settings
from packrat.store import Layout, ObjectMeta
from packrat.store.format import encode_trailer


def populate(layout: Layout, count: int) -> None:
    layout.create()
    data = b"x" * 64
    digest = hashlib.sha256(data).hexdigest()
    stamp = time.time_ns()
    for n in tqdm(range(count), desc="writing objects", unit="obj", mininterval=2):
        key = f"bench/{n}"
        path = layout.object_path(key)
        meta = ObjectMeta(key, f"{n}.bin", "application/octet-stream", len(data), digest, 0.0)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data + encode_trailer(meta))
        os.utime(fd, ns=(stamp + n, stamp + n))  # commit stamps, as the coordinator sets them
        os.close(fd)


def timed_start(root: Path, count: int, drop_caches: bool) -> tuple[float, Coordinator]:
    if drop_caches:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    coordinator = Coordinator(Settings(cache_root=root, cache_max_size=1 << 50))
    started = time.perf_counter()
    coordinator.load()
    seconds = time.perf_counter() - started
    assert len(coordinator.index) == count
    return seconds, coordinator


def report(label: str, seconds: float, objects: int) -> None:
    print(
        f"  {label + ':':19s}{seconds:6.1f} s  ({objects / seconds:>9,.0f} objects/s)", flush=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--dir", help="where to build the test cache (default: a temp dir)")
    parser.add_argument("--drop-caches", action="store_true", help="cold page cache (root)")
    args = parser.parse_args()
    if args.dir:
        Path(args.dir).mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="packrat-rebuild-", dir=args.dir))
    try:
        populate(Layout(root), args.objects)
        print(f"objects: {args.objects:,}; page cache: {'dropped' if args.drop_caches else 'warm'}")
        # Each start leaves the snapshot the next one needs.
        for label, next_clean in (("no snapshot", False), ("periodic snapshot", True)):
            seconds, coordinator = timed_start(root, args.objects, args.drop_caches)
            report(label, seconds, args.objects)
            coordinator.snapshot(clean=next_clean)
            coordinator.close()
        seconds, coordinator = timed_start(root, args.objects, args.drop_caches)
        report("clean snapshot", seconds, args.objects)
        coordinator.close()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
