"""Start-up and shutdown state: the snapshot, and rebuilding the index from disk.

The object files are the truth; the snapshot saves reading every trailer and
keeps recency.  Rebuilding walks ``objects/`` once (in threads, one top-level
fan-out directory per task, since the work is system calls):

* a file the snapshot lists, unchanged since the snapshot (older than it, or
  the snapshot was written by a clean shutdown), keeps its snapshot entry and
  place in the recency order;
* any other file is adopted by reading its trailer, and placed after the
  snapshot's entries in the order of its modification time (its commit);
* snapshot entries whose file is gone are dropped; files whose trailer is
  unreadable are removed.

So recency survives a clean restart exactly, and after ``kill -9`` it is as
old as the last periodic snapshot.
"""

from __future__ import annotations

import logging
import math
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

from packrat.coordinator.index import Index
from packrat.storage import CorruptObject, Layout, key_digest, read_object_meta, staging_owner

log = logging.getLogger("packrat.coordinator")

SNAPSHOT_VERSION = 2
# Two threads overlap disk reads when the files are not cached (200,000
# objects: 34 s with one thread, 20 s with two) and cost little when they are
# (4.1 s against 4.8 s); more threads lose to GIL contention (8: 7.9 s cached).
SCAN_THREADS = 2


@dataclass
class Snapshot:
    """The index as last saved: entries least recently used first."""

    entries: list[tuple[str, int, float, bytes]] = field(default_factory=list)
    saved_at: float = 0.0
    clean: bool = False  # written by a clean shutdown: nothing changed since

    def digests(self) -> dict[str, int]:
        """Object file name -> position in ``entries``."""
        return {digest.hex(): n for n, (_, _, _, digest) in enumerate(self.entries)}


@dataclass
class RebuildReport:
    restored: int = 0  # taken from the snapshot
    adopted: int = 0  # read from a trailer
    dropped: int = 0  # snapshot entries with no file
    corrupt: int = 0  # files removed because their trailer is unreadable
    seconds: float = 0.0


def save_snapshot(layout: Layout, index: Index, clean: bool = False) -> None:
    """Write the index atomically (temp file, fsync, rename).

    ``clean`` marks a snapshot taken at shutdown, after the last change: the
    next start-up may trust it without looking at each file.  The mark is a
    separate file that start-up removes, so it never outlives the run it
    describes.
    """
    rows = [
        (key, size, seen, bytes.fromhex(key_digest(key)))
        for key, size, seen in index.entries_by_recency()
    ]
    payload = msgpack.packb({"v": SNAPSHOT_VERSION, "saved_at": time.time(), "entries": rows})
    target = layout.snapshot_path()
    temp = target.with_suffix(".tmp")
    try:
        with open(temp, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except OSError:
        temp.unlink(missing_ok=True)
        raise
    if clean:
        layout.clean_mark_path().touch()


def load_snapshot(layout: Layout) -> Snapshot:
    """The saved snapshot (empty when there is none or it is unreadable)."""
    try:
        data = msgpack.unpackb(layout.snapshot_path().read_bytes(), use_list=False)
        if data.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"snapshot version {data.get('v')!r}, expected {SNAPSHOT_VERSION}")
        entries = list(data["entries"])
        saved_at = float(data["saved_at"])
    except FileNotFoundError:
        return Snapshot()
    except (ValueError, TypeError, KeyError, AttributeError, msgpack.UnpackException) as e:
        log.warning("ignoring unreadable snapshot %s: %s", layout.snapshot_path(), e)
        return Snapshot()
    clean_mark = layout.clean_mark_path()
    clean = clean_mark.exists() and clean_mark.stat().st_mtime >= saved_at
    return Snapshot(entries, saved_at, clean)


def rebuild(layout: Layout, index: Index) -> RebuildReport:
    """Fill ``index`` from the object files, least recently used first."""
    started = time.monotonic()
    snapshot = load_snapshot(layout)
    layout.clean_mark_path().unlink(missing_ok=True)  # from now on the snapshot ages
    positions = snapshot.digests()
    trusted_before = math.inf if snapshot.clean else snapshot.saved_at
    report = RebuildReport()
    found = bytearray(len(snapshot.entries))
    adopted: list[tuple[float, str, int]] = []
    with ThreadPoolExecutor(SCAN_THREADS) as pool:
        scans = pool.map(
            lambda top: _scan_top_dir(top, positions, trusted_before), layout.object_top_dirs()
        )
        superseded = 0  # listed in the snapshot, but the file changed since
        for present, changed, fresh, corrupt in scans:
            for position in present:
                found[position] = 1
            superseded += changed
            adopted += fresh
            report.corrupt += corrupt
    for (key, size, seen, _), here in zip(snapshot.entries, found, strict=True):
        if here:
            index.restore(key, size, seen)
    report.restored = sum(found)
    report.dropped = len(found) - report.restored - superseded
    adopted.sort()
    for seen, key, size in adopted:
        index.restore(key, size, seen)
    report.adopted = len(adopted)
    report.seconds = time.monotonic() - started
    return report


def _scan_top_dir(
    top: str, positions: dict[str, int], trusted_before: float
) -> tuple[list[int], int, list[tuple[float, str, int]], int]:
    """One fan-out directory: snapshot positions confirmed, how many snapshot
    entries changed since, files adopted, files removed as corrupt."""
    present: list[int] = []
    changed = 0
    adopted: list[tuple[float, str, int]] = []
    corrupt = 0
    for entry in Layout.iter_dir_objects(top):
        position = positions.get(entry.name)
        try:
            if position is not None and (
                trusted_before == math.inf
                or entry.stat(follow_symlinks=False).st_mtime < trusted_before
            ):
                present.append(position)
                continue
            if position is not None:
                changed += 1
            meta, size = read_object_meta(entry.path)
            if key_digest(meta.key) != entry.name:
                raise CorruptObject("file name is not the hash of its key")
            adopted.append((entry.stat(follow_symlinks=False).st_mtime, meta.key, size))
        except FileNotFoundError:
            continue
        except (CorruptObject, OSError) as e:
            log.warning("removing unreadable object %s: %s", entry.path, e)
            Path(entry.path).unlink(missing_ok=True)
            corrupt += 1
    return present, changed, adopted, corrupt


def sweep_staging(layout: Layout, stale_after: float, everything: bool = False) -> int:
    """Remove staging files whose writer is gone or that sat idle too long.

    ``everything`` removes all of them: for start-up, before any front end runs.
    """
    removed = 0
    now = time.time()
    try:
        entries = list(os.scandir(layout.staging))
    except FileNotFoundError:
        return 0
    for entry in entries:
        path = Path(entry.path)
        try:
            idle = now - entry.stat(follow_symlinks=False).st_mtime
        except FileNotFoundError:
            continue
        if everything or idle > stale_after or not _alive(staging_owner(path)):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _alive(pid: int | None) -> bool:
    if pid is None:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
