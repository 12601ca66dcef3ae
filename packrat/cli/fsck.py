"""``packrat fsck [--repair]``: check every object against its digest and the index.

Problems found:

* ``corrupt``: not an object file (unreadable trailer, a name that is not
  the hash of the key it holds, a symlink or FIFO), or data that does not
  match its sha256;
* ``missing``: the index snapshot lists a key whose file is gone (evicted or
  deleted since the snapshot, or lost);
* ``unindexed``: an object the snapshot does not know (committed since the
  snapshot; the coordinator adopts it at its next start; only reported);
* ``staging``: leftover staging files.

``--repair`` removes corrupt files: through the running coordinator, so its
index stays exact, or, when no instance holds the cache root, directly
(holding the root's lock meanwhile).  Each repair is checked on disk.  Exit
status: ``OK`` when nothing corrupt remains, ``CORRUPT_LEFT`` when something
could not be repaired or was found without ``--repair``, ``BROKEN_ROOT``
when there is no cache to check.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from packrat.coordinator.connection import CoordinatorClient
from packrat.core.errors import PackratError
from packrat.core.exits import ExitStatus
from packrat.core.settings import Settings
from packrat.store import CorruptObject, Layout, RootLocked, lock_root, open_entry
from packrat.store.layout import FANOUT, key_digest
from packrat.store.reader import data_matches
from packrat.store.snapshot import read_snapshot
from packrat.store.staging import sweep_staging

COORDINATOR_TIMEOUT = 5.0


@dataclass
class Finding:
    kind: str  # corrupt, missing, unindexed, staging
    path: Path
    detail: str
    key: str | None = None
    inode: tuple[int, int] | None = None  # of a corrupt file: what a repair removes


def check_entry(dir_fd: int, name: str, path: Path) -> Finding | None:
    """Verify one object file: what it is, its trailer, its name and its digest."""
    try:
        opened = open_entry(dir_fd, name)
    except CorruptObject as e:
        return Finding("corrupt", path, str(e), inode=e.inode)
    if opened is None:
        return None  # evicted while we looked
    fd, meta, info = opened
    try:
        if not data_matches(fd, meta):
            inode = (info.st_dev, info.st_ino)
            return Finding("corrupt", path, "data does not match its sha256", meta.key, inode)
    finally:
        os.close(fd)
    return None


def scan(layout: Layout) -> Iterator[Finding | Path]:
    """Findings, and each object file checked (a ``Path``), as the walk goes."""
    snapshot = {key_digest(key): key for key, _, _ in read_snapshot(layout)[0].rows()}
    for fanout in FANOUT:
        dir_fd = layout.fanout_fds[fanout]
        for name in sorted(os.listdir(dir_fd)):
            path = layout.objects / fanout / name
            yield path
            finding = check_entry(dir_fd, name, path)
            known = snapshot.pop(name, None)
            if finding is not None:
                finding.key = finding.key or known
                yield finding
            elif known is None:
                yield Finding(
                    "unindexed", path, "not in the index snapshot (adopted at next start)"
                )
    for name, key in snapshot.items():
        yield Finding(
            "missing",
            layout.objects / name[:2] / name,
            "in the last index snapshot, file is gone (evicted since, or lost)",
            key,
        )
    for name in sorted(os.listdir(layout.staging_fd)):
        yield Finding("staging", layout.staging / name, "upload in progress or abandoned")


def run(settings: Settings, repair: bool, out: TextIO = sys.stdout) -> int:
    layout = Layout(settings.cache_root)
    if not layout.objects.is_dir():
        print(f"packrat fsck: no cache at {layout.root}", file=sys.stderr)
        return ExitStatus.BROKEN_ROOT
    layout.open_dirs()
    started = time.monotonic()
    findings: list[Finding] = []
    checked = 0
    for item in scan(layout):
        if isinstance(item, Path):
            checked += 1
        else:
            findings.append(item)
    corrupt = [f for f in findings if f.kind == "corrupt"]
    repaired = _repair(settings, layout, corrupt, out) if repair and corrupt else set()
    for finding in findings:
        note = ""
        if finding.kind == "corrupt" and repair:
            note = "  -> removed" if id(finding) in repaired else "  -> NOT removed"
        key = f" (key {finding.key!r})" if finding.key else ""
        print(f"{finding.kind:9s} {finding.path}  {finding.detail}{key}{note}", file=out)
    if repair:
        swept = sweep_staging(layout, settings.coordinator_stale_staging)
        if swept:
            print(f"removed {swept} dead or stale staging files", file=out)
    counts = {kind: sum(f.kind == kind for f in findings) for kind in _KINDS}
    print(
        f"checked {checked} objects in {time.monotonic() - started:.1f}s: "
        + ", ".join(f"{count} {kind}" for kind, count in counts.items()),
        file=out,
    )
    layout.close_dirs()
    return ExitStatus.CORRUPT_LEFT if len(repaired) < len(corrupt) else ExitStatus.OK


_KINDS = ("corrupt", "missing", "unindexed", "staging")


def _repair(settings: Settings, layout: Layout, corrupt: list[Finding], out: TextIO) -> set[int]:
    """Remove corrupt files; return the ``id`` of each finding whose file is really gone."""
    try:
        lock_fd = lock_root(layout, "fsck")
    except RootLocked as e:
        return _repair_online(settings, corrupt, out, str(e))
    try:
        for finding in corrupt:
            _remove_if_same(finding)
    finally:
        os.close(lock_fd)
    return {id(f) for f in corrupt if _gone(f)}


def _repair_online(
    settings: Settings, corrupt: list[Finding], out: TextIO, holder: str
) -> set[int]:
    """Ask the running coordinator to drop each file, so its index stays exact."""
    endpoint, keys = settings.coordinator_endpoint, settings.coordinator_curve_keys
    with CoordinatorClient(endpoint, COORDINATOR_TIMEOUT, keys) as coordinator:
        for finding in corrupt:
            if finding.inode is None:
                continue
            try:
                coordinator.drop(finding.path.name, finding.inode, finding.key)
            except PackratError as e:
                print(f"packrat fsck: {holder}, and its coordinator: {e.message}", file=out)
                break
    return {id(f) for f in corrupt if _gone(f)}


def _remove_if_same(finding: Finding) -> None:
    """Remove the finding's file directly (no coordinator runs), if it is still that file."""
    try:
        info = finding.path.lstat()
    except FileNotFoundError:
        return
    if finding.inode is not None and (info.st_dev, info.st_ino) != finding.inode:
        return
    if stat.S_ISDIR(info.st_mode):
        shutil.rmtree(finding.path)
    else:
        finding.path.unlink(missing_ok=True)


def _gone(finding: Finding) -> bool:
    """Whether the corrupt file is no longer at its path (a newer object may be)."""
    try:
        info = finding.path.lstat()
    except FileNotFoundError:
        return True
    return finding.inode is not None and (info.st_dev, info.st_ino) != finding.inode
