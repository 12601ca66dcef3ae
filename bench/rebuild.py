"""How long the coordinator takes to rebuild its index from disk.

Run: ``python bench/rebuild.py [--objects 1000000]`` (``make bench`` runs it
with 200,000; the issue's figure is for 1,000,000).  Writes that many small
objects (64 bytes of data plus the trailer, in the real layout) under a
temporary root, then times ``recovery.rebuild``:

* cold: no snapshot, every trailer read (after ``kill -9`` before any snapshot);
* warm: with the snapshot a clean shutdown leaves (one stat per file).

The target is under 30 s for 1,000,000 objects on a 2-core machine.
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


def timed_rebuild(layout: Layout) -> tuple[float, Index]:
    index = Index("lru", max_size=1 << 50)
    started = time.perf_counter()
    report = rebuild(layout, index)
    rebuild_seconds = time.perf_counter() - started
    assert report.corrupt == 0
    return rebuild_seconds, index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--dir", help="where to build the test cache (default: a temp dir)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="packrat-rebuild-", dir=args.dir))
    try:
        layout = Layout(root)
        populate(layout, args.objects)
        os.sync()
        cold, index = timed_rebuild(layout)
        assert len(index) == args.objects, len(index)
        save_snapshot(layout, index)
        warm, index = timed_rebuild(layout)
        assert len(index) == args.objects, len(index)
        print(f"objects:                  {args.objects:,}")
        print(f"rebuild without snapshot: {cold:6.1f} s  ({args.objects / cold:,.0f} objects/s)")
        print(f"rebuild with snapshot:    {warm:6.1f} s  ({args.objects / warm:,.0f} objects/s)")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
