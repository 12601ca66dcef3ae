"""Where things live under one cache root: the only code that builds a path.

::

    <root>/objects/<ab>/<sha256(key)>     committed objects; <ab> is the digest's
                                          first two hex digits (256 directories)
    <root>/staging/<pid>-<random>.part    uploads being written by front end <pid>
    <root>/staging/<pid>-<random>.commit  an upload the coordinator has claimed
    <root>/state/snapshot                 the coordinator's index snapshot
    <root>/state/clean                    mark of a clean shutdown (names a snapshot)
    <root>/state/lock                     held (flock) by the instance that owns the root
    <root>/state/metrics/                 Prometheus values of each process (core.metrics_directory)
    <root>/state/uploaded                 what reached the object store (``packrat.objectstore``)
    <root>/state/fetching                 locked by byte ranges while a key is fetched from it

Keys never become paths: an object's name is the sha256 of its key, so a
front end finds it without asking the coordinator.  The fan-out is fixed at
256 directories, made once and never removed, so the directories' own disk
use is a known constant (``FIXED_OVERHEAD``) rather than one directory per
few objects.

Every process opens the directories once (``open_dirs``) with
``O_NOFOLLOW`` and then works relative to those descriptors: a directory
swapped for a symlink afterwards cannot send a read or a write outside the
root, and a fan-out directory found to be a symlink at start-up is replaced.
A fan-out directory removed while running is made again by the next commit
there (``reopen_fanout``); every other process finds the new one on its next
miss there (``fanout_replaced``).  Either way the descriptor keeps its number
(``dup2``), so a caller holding it, on another thread too, is never left with
a closed or reused one.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("packrat.store")

FANOUT = [f"{n:02x}" for n in range(256)]
BLOCK = 4096  # bytes: the allocation unit accounting rounds up to
# Disk the layout takes whatever the cache holds: the root, its three
# directories and the 256 fan-out directories at one block each, the lock
# and the clean mark.  ``du -s <root>`` stays within max_size plus this.
FIXED_OVERHEAD = (4 + len(FANOUT)) * BLOCK + 2 * BLOCK
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class LayoutError(Exception):
    """The cache root cannot be used as it is; the text says why, for the operator."""


@functools.lru_cache(maxsize=4096)
def key_digest(key: str) -> str:
    """The hex sha256 of ``key``: its object's file name (remembered for the keys in use)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Layout:
    """Paths under one cache root, and descriptors of its directories once opened."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.staging = self.root / "staging"
        self.state = self.root / "state"
        self.staging_fd = -1
        self.fanout_fds: dict[str, int] = {}
        # For a miss's check, one stat: each fan-out directory's path, made once (a Path
        # costs more than the stat), and (st_dev, st_ino) of the one its descriptor holds.
        self._fanout_paths: dict[str, str] = {}
        self._fanout_ids: dict[str, tuple[int, int]] = {}

    # -- paths ------------------------------------------------------------

    def object_path(self, key: str) -> Path:
        """For messages and tests; the I/O itself goes through ``fanout_fd``."""
        digest = key_digest(key)
        return self.objects / digest[:2] / digest

    def snapshot_path(self) -> Path:
        return self.state / "snapshot"

    def clean_mark_path(self) -> Path:
        return self.state / "clean"

    def lock_path(self) -> Path:
        return self.state / "lock"

    def uploaded_mark_path(self) -> Path:
        return self.state / "uploaded"

    def fetch_lock_path(self) -> Path:
        return self.state / "fetching"

    # -- directories ------------------------------------------------------

    def create(self) -> None:
        """Make the root's directories; replace a fan-out entry that is not one.

        ``objects/``, ``staging/`` and ``state/`` must be real directories
        (a symlink there is refused: renames must stay on one file system
        and inside the root).  Safe to run in several processes at once.
        """
        self.root.mkdir(parents=True, exist_ok=True)
        for path in (self.objects, self.staging, self.state):
            _make_real_dir(path, replace=False)
        for name in FANOUT:
            _make_real_dir(self.objects / name, replace=True)

    def open_dirs(self, fanout: bool = True) -> None:
        """Open ``staging/`` and (``fanout``) every fan-out directory, for ``*at`` calls.

        ``O_NOFOLLOW``: 257 descriptors, held for the life of the process.
        """
        self.close_dirs()
        try:
            self.staging_fd = os.open(self.staging, _DIR_FLAGS)
            for name in FANOUT if fanout else ():
                self._fanout_paths[name] = str(self.objects / name)
                self._point_at(name, os.open(self._fanout_paths[name], _DIR_FLAGS))
        except OSError as e:
            self.close_dirs()
            raise LayoutError(f"cannot open the cache directories under {self.root}: {e}") from e

    def reopen_fanout(self, name: str) -> int:
        """Make and reopen one fan-out directory (someone removed it)."""
        _make_real_dir(self.objects / name, replace=True)
        self._point_at(name, os.open(self.objects / name, _DIR_FLAGS))
        return self.fanout_fds[name]

    def fanout_replaced(self, digest: str) -> bool:
        """Whether ``digest``'s fan-out directory is not the one opened, in which case
        its descriptor now refers to the one there (for a reader to retry a miss once).

        A removed directory that no one made again, or a symlink there, is not
        followed: the old descriptor is kept and the miss stands.
        """
        name = digest[:2]
        path = self._fanout_paths[name]
        try:
            there = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        same = (there.st_dev, there.st_ino) == self._fanout_ids[name]
        if same or not stat.S_ISDIR(there.st_mode):
            return False
        try:
            fd = os.open(path, _DIR_FLAGS)
        except OSError:  # removed again, or made a symlink, since the stat
            return False
        self._point_at(name, fd)
        return True

    def _point_at(self, name: str, fd: int) -> None:
        """Make ``name``'s descriptor refer to ``fd``'s directory, keeping its number
        (``dup2``: no other thread's call can land on a closed or reused one); closes ``fd``."""
        info = os.fstat(fd)
        self._fanout_ids[name] = (info.st_dev, info.st_ino)
        held = self.fanout_fds.get(name, -1)
        if held < 0:
            self.fanout_fds[name] = fd
            return
        os.dup2(fd, held, inheritable=False)
        os.close(fd)

    def close_dirs(self) -> None:
        for fd in [self.staging_fd, *self.fanout_fds.values()]:
            if fd >= 0:
                os.close(fd)
        self.staging_fd = -1
        self.fanout_fds = {}

    def fanout_fd(self, digest: str) -> int:
        return self.fanout_fds[digest[:2]]


def _make_real_dir(path: Path, replace: bool) -> None:
    """Make ``path`` a directory; what stands there instead is replaced or refused."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        try:
            path.mkdir()
        except FileExistsError:  # another process made it meanwhile
            pass
        else:
            return
        info = path.lstat()
    if stat.S_ISDIR(info.st_mode):
        return
    if not replace:
        kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a directory"
        raise LayoutError(f"{path} is {kind}; Packrat needs a real directory there")
    log.warning("replacing %s, which is not a directory of ours", path)
    path.unlink()
    path.mkdir(exist_ok=True)
