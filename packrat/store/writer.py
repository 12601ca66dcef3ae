"""The coordinator's hands on ``objects/``: claim, publish, remove, measure.

Only the coordinator changes ``objects/``, from one thread, so these steps
never interleave with each other; front ends only create staging files and
read objects.  A commit is: ``claim`` (rename the staged file to a name the
front end no longer owns), the index makes room, the victims' files are
removed, then ``publish`` stamps the file and renames it into place.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import time
from dataclasses import dataclass

from packrat.store.accounting import DirUsage, charge
from packrat.store.layout import FANOUT, Layout, key_digest
from packrat.store.staging import check_part_name, claimed_name


class StagingMissing(Exception):
    """The staged upload is gone (its front end gave up and removed it)."""


class BadStaging(Exception):
    """The staged file is not what the commit describes."""


@dataclass(slots=True)
class Claimed:
    """A staged upload the coordinator now owns, with what it will cost."""

    name: str  # in staging/
    key: str
    charge: int


class ObjectWriter:
    """Publishes and removes object files; keeps the commit clock and directory growth.

    The commit clock stamps each published file's mtime with a strictly
    increasing nanosecond count (the wall clock, or one more than the last
    stamp when the clock has not moved or went back).  A snapshot records
    the last stamp, so start-up tells files committed after the snapshot by
    comparing integers, never by racing the clock's granularity.
    """

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self.dirs = DirUsage()
        self.clock_ns = 0

    def open(self) -> None:
        self.layout.create()
        self.layout.open_dirs()
        for name in FANOUT:
            self.dirs.measure(name, self.layout.fanout_fds[name])

    def close(self) -> None:
        self.layout.close_dirs()

    def claim(self, staging: str, file_size: int, key: str) -> Claimed:
        """Take the staged file ``staging`` over; check it is ``file_size`` bytes."""
        check_part_name(staging)
        fd = self.layout.staging_fd
        claimed = claimed_name(staging)
        try:
            os.rename(staging, claimed, src_dir_fd=fd, dst_dir_fd=fd)
        except FileNotFoundError:
            raise StagingMissing("the staged upload is gone") from None
        info = os.stat(claimed, dir_fd=fd, follow_symlinks=False)
        if not stat.S_ISREG(info.st_mode) or info.st_size != file_size:
            self.discard(claimed)
            raise BadStaging(
                f"the staged file has {info.st_size} bytes, the commit says {file_size}"
            )
        return Claimed(claimed, key, charge(info, key))

    def discard(self, name: str) -> None:
        """Remove a claimed file that will not be published."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name, dir_fd=self.layout.staging_fd)

    def publish(self, claimed: Claimed) -> int:
        """Stamp and rename the claimed file into place; return the directory growth.

        Replaces the key's old version atomically: readers see the old
        object or the new one, never neither.
        """
        stamp = max(time.time_ns(), self.clock_ns + 1)
        os.utime(claimed.name, ns=(stamp, stamp), dir_fd=self.layout.staging_fd)
        self.clock_ns = stamp
        digest = key_digest(claimed.key)
        fanout = digest[:2]
        try:
            self._rename_in(claimed.name, digest, self.layout.fanout_fds[fanout])
        except FileNotFoundError:
            # The fan-out directory was removed under us: make it again, once.
            self._rename_in(claimed.name, digest, self.layout.reopen_fanout(fanout))
        return self.dirs.measure(fanout, self.layout.fanout_fds[fanout])

    def remove(self, key: str) -> bool:
        """Remove ``key``'s object file; False if there was none."""
        digest = key_digest(key)
        try:
            os.unlink(digest, dir_fd=self.layout.fanout_fd(digest))
        except FileNotFoundError:
            return False
        return True

    def remove_inode(self, digest: str, inode: tuple[int, int]) -> bool:
        """Remove object file ``digest`` if it is still the file ``inode``.

        For a file a reader found corrupt: a newer object committed since
        in its place is left alone.  Removes whatever kind of entry it is
        (a planted FIFO, symlink or directory included).
        """
        dir_fd = self.layout.fanout_fd(digest)
        try:
            info = os.stat(digest, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if (info.st_dev, info.st_ino) != inode:
            return False
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(digest, dir_fd=dir_fd)
        else:
            os.unlink(digest, dir_fd=dir_fd)
        return True

    def _rename_in(self, claimed: str, digest: str, dir_fd: int) -> None:
        os.rename(claimed, digest, src_dir_fd=self.layout.staging_fd, dst_dir_fd=dir_fd)
