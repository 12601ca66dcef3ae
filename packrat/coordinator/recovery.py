"""Start-up and shutdown state: the snapshot, and rebuilding the index from disk.

The files are the truth; the snapshot only saves reading every trailer and
keeps recency.  A snapshot entry counts when a file of the same name and size
is on disk; any other file is adopted by reading its trailer; snapshot entries
whose file is gone are dropped.  After ``kill -9`` the snapshot is at most one
``snapshot_interval`` old, so recency is that approximate: keys used since are
ordered by their file's modification time (their commit) instead.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import msgpack

from packrat.coordinator.index import Index
from packrat.storage import CorruptObject, Layout, key_digest, read_object_meta, staging_owner

log = logging.getLogger("packrat.coordinator")

SNAPSHOT_VERSION = 1


@dataclass
class RebuildReport:
    restored: int = 0  # taken from the snapshot
    adopted: int = 0  # read from a trailer
    dropped: int = 0  # snapshot entries with no file
    corrupt: int = 0  # files removed because their trailer is unreadable
    seconds: float = 0.0


def save_snapshot(layout: Layout, index: Index) -> None:
    """Write the index atomically (temp file, fsync, rename)."""
    rows = index.entries_by_recency()
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


def load_snapshot(layout: Layout) -> dict[str, tuple[str, int, float]]:
    """``digest -> (key, size, last_access)``; empty when there is no usable snapshot."""
    try:
        data = layout.snapshot_path().read_bytes()
        snapshot = msgpack.unpackb(data)
        if snapshot.get("v") != SNAPSHOT_VERSION:
            raise ValueError("unknown snapshot version")
        return {key_digest(key): (key, size, seen) for key, size, seen in snapshot["entries"]}
    except FileNotFoundError:
        return {}
    except (ValueError, TypeError, KeyError, msgpack.UnpackException) as e:
        log.warning("ignoring unreadable snapshot %s: %s", layout.snapshot_path(), e)
        return {}


def rebuild(layout: Layout, index: Index) -> RebuildReport:
    """Fill ``index`` from the object files, oldest use first."""
    started = time.monotonic()
    report = RebuildReport()
    snapshot = load_snapshot(layout)
    rows: list[tuple[float, str, int]] = []
    for entry in layout.iter_objects():
        try:
            stat = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue
        known = snapshot.pop(entry.name, None)
        if known is not None and known[1] == stat.st_size:
            key, size, seen = known
            rows.append((max(seen, stat.st_mtime), key, size))
            report.restored += 1
            continue
        try:
            meta, size = read_object_meta(entry.path)
            if key_digest(meta.key) != entry.name:
                raise CorruptObject("file name is not the hash of its key")
        except (CorruptObject, OSError) as e:
            log.warning("removing unreadable object %s: %s", entry.path, e)
            os.unlink(entry.path)
            report.corrupt += 1
            continue
        rows.append((stat.st_mtime, meta.key, size))
        report.adopted += 1
    report.dropped = len(snapshot)
    rows.sort()
    for seen, key, size in rows:
        index.restore(key, size, seen)
    report.seconds = time.monotonic() - started
    return report


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
