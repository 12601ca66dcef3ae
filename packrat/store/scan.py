"""Start-up: rebuild the index's entries from the object files and the snapshot.

The files are the truth; the snapshot saves reading every trailer and keeps
recency.  One walk of the 256 fan-out directories (two threads: the work is
system calls, and two overlap disk reads when the files are not cached):

* a file the snapshot lists is trusted without reading it when the snapshot
  is clean (written at shutdown), or when its commit stamp (mtime, see
  ``ObjectWriter``) is older than the snapshot's ``sequence`` and its
  charge is what the snapshot says;
* any other file is adopted by reading its trailer, and placed after the
  snapshot's entries in commit order;
* snapshot rows whose file is gone are dropped; files that are not objects
  (unreadable trailer, a name that is not the hash of their key, symlinks,
  FIFOs) are removed;
* objects found in the old two-level layout (``objects/ab/cd/<digest>``)
  are moved up into ``objects/ab/``.

So recency survives a clean restart exactly, and after ``kill -9`` it is as
old as the last periodic snapshot.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import stat
import time
from array import array
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from packrat.store.accounting import charge
from packrat.store.format import CorruptObject
from packrat.store.layout import FANOUT, Layout
from packrat.store.reader import open_entry
from packrat.store.snapshot import Snapshot

log = logging.getLogger("packrat.store")

SCAN_THREADS = 2
OBJECT_NAME = re.compile(r"[0-9a-f]{64}")  # sha256 of a key, in hex
_PROBE_NS = 1_600_000_000_123_456_789
COARSE_CLOCK_NS = 2_000_000_000  # FAT's 2 s: the coarsest file timestamps in use


@dataclass
class RebuildReport:
    restored: int = 0  # trusted from the snapshot
    adopted: int = 0  # read from a trailer
    dropped: int = 0  # snapshot rows with no file
    removed: int = 0  # entries that were not objects
    migrated: int = 0  # moved up from the old two-level layout
    seconds: float = 0.0


@dataclass
class Rebuilt:
    """The index's entries: columns in key order, and the order to restore them in."""

    keys: list[bytes]  # UTF-8, in key order
    charges: array  # "q", as ``keys``
    seen: array  # "d": last use, Unix time, as ``keys``
    order: list[int]  # positions in ``keys``, least recently used first
    sequence: int  # the largest commit stamp seen
    report: RebuildReport


@dataclass
class _DirScan:
    trusted: list[int] = field(default_factory=list)  # snapshot positions
    changed: int = 0  # snapshot rows whose file changed since
    adopted: list[tuple[int, bytes, int]] = field(default_factory=list)  # stamp, key, charge
    removed: int = 0
    migrated: int = 0
    newest: int = 0


def timestamp_granularity(layout: Layout) -> int:
    """Nanoseconds of the file system's timestamp resolution (1, or coarse)."""
    probe = layout.state / "clock-probe"
    probe.touch()
    try:
        os.utime(probe, ns=(_PROBE_NS, _PROBE_NS))
        exact = probe.stat().st_mtime_ns == _PROBE_NS
    finally:
        probe.unlink(missing_ok=True)
    return 1 if exact else COARSE_CLOCK_NS


def rebuild(layout: Layout, snapshot: Snapshot, granularity: int = 1) -> Rebuilt:
    """The index's entries from the files (``layout`` opened) and ``snapshot``."""
    started = time.monotonic()
    names = _names_by_fanout(snapshot)

    def scan(fanout: str) -> _DirScan:
        return _scan_dir(layout, fanout, snapshot, names[int(fanout, 16)], granularity)

    with ThreadPoolExecutor(SCAN_THREADS) as pool:
        scans = list(pool.map(scan, FANOUT))
    report = RebuildReport()
    trusted: list[int] = []
    adopted: list[tuple[int, bytes, int]] = []
    changed = 0
    sequence = snapshot.sequence
    for part in scans:
        trusted += part.trusted
        changed += part.changed
        adopted += part.adopted
        report.removed += part.removed
        report.migrated += part.migrated
        sequence = max(sequence, part.newest)
    trusted.sort()  # key order, as the snapshot's rows
    report.restored = len(trusted)
    report.dropped = len(snapshot) - report.restored - changed
    report.adopted = len(adopted)
    # Recency: the snapshot's rows by last use, then what was committed since, in commit order.
    adopted.sort()
    seen = array("d", (snapshot.seen[n] for n in trusted))
    seen.extend(stamp / 1e9 for stamp, _, _ in adopted)
    order = sorted(range(len(trusted)), key=seen.__getitem__)
    order += range(len(trusted), len(seen))
    keys = [snapshot.keys[n] for n in trusted] + [key for _, key, _ in adopted]
    charges = array("q", (snapshot.charges[n] for n in trusted))
    charges.extend(cost for _, _, cost in adopted)
    # Into key order (two sorted runs: Timsort merges them in linear time).
    by_key = sorted(range(len(keys)), key=keys.__getitem__)
    position = array("i", bytes(4 * len(keys)))
    for new, old in enumerate(by_key):
        position[old] = new
    report.seconds = time.monotonic() - started
    return Rebuilt(
        [keys[n] for n in by_key],
        array("q", (charges[n] for n in by_key)),
        array("d", (seen[n] for n in by_key)),
        [position[n] for n in order],
        sequence,
        report,
    )


def _names_by_fanout(snapshot: Snapshot) -> list[dict[str, int]]:
    """For each fan-out directory, the file names of the snapshot's rows there: name -> row."""
    names: dict[str, dict[str, int]] = {fanout: {} for fanout in FANOUT}
    sha256 = hashlib.sha256
    for n, key in enumerate(snapshot.keys):
        digest = sha256(key).hexdigest()
        names[digest[:2]][digest] = n
    return list(names.values())


def _scan_dir(
    layout: Layout,
    fanout: str,
    snapshot: Snapshot,
    positions: dict[str, int],
    granularity: int,
) -> _DirScan:
    """One fan-out directory: what to trust, adopt and remove."""
    dir_fd = layout.fanout_fds[fanout]
    result = _DirScan()
    with os.scandir(dir_fd) as entries:
        listing = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
    names = []
    for name, is_dir in listing:
        if is_dir and len(name) == 2:
            moved = _migrate_nested(layout, fanout, name)
            result.migrated += len(moved)
            names += moved
        else:
            names.append(name)
    trust_before = snapshot.sequence - granularity
    for name in names:
        position = positions.get(name) if OBJECT_NAME.fullmatch(name) else None
        try:
            if position is not None:
                if snapshot.clean:
                    result.trusted.append(position)
                    continue
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                result.newest = max(result.newest, info.st_mtime_ns)
                if (
                    stat.S_ISREG(info.st_mode)
                    and info.st_mtime_ns <= trust_before
                    and charge(info, snapshot.keys[position].decode()) == snapshot.charges[position]
                ):
                    result.trusted.append(position)
                    continue
                result.changed += 1
            opened = open_entry(dir_fd, name)
            if opened is None:
                continue  # removed meanwhile
            fd, meta, info = opened
            os.close(fd)
            result.newest = max(result.newest, info.st_mtime_ns)
            result.adopted.append((info.st_mtime_ns, meta.key.encode(), charge(info, meta.key)))
        except FileNotFoundError:
            continue
        except (CorruptObject, OSError) as e:
            log.warning("removing %s/%s, which is not an object: %s", fanout, name, e)
            if _remove_entry(dir_fd, name):
                result.removed += 1
    return result


def _migrate_nested(layout: Layout, fanout: str, sub: str) -> list[str]:
    """Move ``objects/<fanout>/<sub>/*`` (the old layout) up a level; return the names."""
    dir_fd = layout.fanout_fds[fanout]
    sub_fd = os.open(sub, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=dir_fd)
    moved = []
    try:
        for name in os.listdir(sub_fd):
            os.rename(name, name, src_dir_fd=sub_fd, dst_dir_fd=dir_fd)
            moved.append(name)
    finally:
        os.close(sub_fd)
    try:
        os.rmdir(sub, dir_fd=dir_fd)
    except OSError as e:
        log.warning("could not remove the old fan-out directory %s/%s: %s", fanout, sub, e)
    return moved


def _remove_entry(dir_fd: int, name: str) -> bool:
    try:
        os.unlink(name, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    except IsADirectoryError:
        shutil.rmtree(name, dir_fd=dir_fd)
    return True
