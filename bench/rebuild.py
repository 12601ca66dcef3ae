"""How long the coordinator takes to rebuild its index from disk.

Run: ``python bench/rebuild.py [--objects 1000000] [--drop-caches]``
(``make bench`` runs it with 200,000; the issue's figure is for 1,000,000).
Writes that many small objects (64 bytes of data plus the trailer, in the
real layout) under a temporary root, then times ``recovery.rebuild`` for the
three ways a coordinator starts:

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

from packrat.coordinator.index import Index
from packrat.coordinator.recovery import rebuild, save_snapshot
from packrat.storage import Layout, ObjectMeta, encode_trailer


def populate(layout: Layout, count: int) -> None:
    layout.create()
    made: set[Path] = set()
    data = b"x" * 64
    digest = hashlib.sha256(data).hexdigest()
    for n in tqdm(range(count), desc="writing objects", unit="obj", mininterval=2):
        key = f"bench/{n}"
        path = layout.object_path(key)
        if path.parent not in made:
            path.parent.mkdir(parents=True, exist_ok=True)
            made.add(path.parent)
        meta = ObjectMeta(key, f"{n}.bin", "application/octet-stream", len(data), digest, 0.0)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data + encode_trailer(meta))
        os.close(fd)


def timed_rebuild(layout: Layout, count: int, drop_caches: bool) -> tuple[float, Index]:
    if drop_caches:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    index = Index("lru", max_size=1 << 50)
    started = time.perf_counter()
    report = rebuild(layout, index)
    seconds = time.perf_counter() - started
    assert report.corrupt == 0 and len(index) == count, report
    return seconds, index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--dir", help="where to build the test cache (default: a temp dir)")
    parser.add_argument("--drop-caches", action="store_true", help="cold page cache (root)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="packrat-rebuild-", dir=args.dir))
    try:
        layout = Layout(root)
        populate(layout, args.objects)
        print(f"objects: {args.objects:,}; page cache: {'dropped' if args.drop_caches else 'warm'}")
        seconds, index = timed_rebuild(layout, args.objects, args.drop_caches)
        print(f"  no snapshot:       {seconds:6.1f} s  ({args.objects / seconds:>9,.0f} objects/s)")
        save_snapshot(layout, index)
        seconds, index = timed_rebuild(layout, args.objects, args.drop_caches)
        print(f"  periodic snapshot: {seconds:6.1f} s  ({args.objects / seconds:>9,.0f} objects/s)")
        save_snapshot(layout, index, clean=True)
        seconds, index = timed_rebuild(layout, args.objects, args.drop_caches)
        print(f"  clean snapshot:    {seconds:6.1f} s  ({args.objects / seconds:>9,.0f} objects/s)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
