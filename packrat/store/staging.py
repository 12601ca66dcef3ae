"""Staging files: uploads being written, and the sweep of abandoned ones.

A front end creates ``staging/<pid>-<random>.part`` exclusively, writes the
data through ``StagedFile`` (size and digests kept as bytes arrive), appends
the trailer (``seal``) and asks the coordinator to commit it.  The
coordinator first claims the file by renaming it to ``.commit``: from then
on a front end that gives up (its client disconnected) cannot pull it away
mid-commit, and a file removed before the claim simply fails the commit.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import itertools
import os
import re
import secrets
import stat
import time
from collections.abc import Iterator

import xxhash

from packrat.core.pids import alive
from packrat.store.format import ObjectMeta, encode_trailer
from packrat.store.layout import Layout
from packrat.store.reader import read_data

HOLD = 64 * 1024  # bytes of an upload held in memory before its first write
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
PART = ".part"
CLAIMED = ".commit"
_NAME = re.compile(r"(\d+)-[0-9a-f]{16}\.(part|commit)")
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class NoSpace(OSError):
    """The disk (or an inode table, a quota, a file-size limit) is full."""


def no_space(error: OSError) -> bool:
    return error.errno in NO_SPACE


_salt = secrets.randbits(32)
_serial = itertools.count()
_pid = os.getpid()  # this process's, in every staging file's name (a system call each time)


def _unique() -> str:
    """16 hex digits no other staging file of this process has: a random half drawn
    once per process, then a counter (no ``getrandom`` per upload; ``O_EXCL``
    still refuses a name in use)."""
    return f"{_salt:08x}{next(_serial) & 0xFFFFFFFF:08x}"


def _after_fork() -> None:
    global _salt, _pid
    _salt = secrets.randbits(32)
    _pid = os.getpid()


os.register_at_fork(after_in_child=_after_fork)


class StagedFile:
    """One upload being written to ``staging/``: size, sha256 and xxh3-128 kept as bytes arrive."""

    __slots__ = ("_fast_hash", "_fd", "_hash", "_held", "_hexdigest", "layout", "name", "size")

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        while True:
            self.name = f"{_pid}-{_unique()}{PART}"
            try:
                self._fd = os.open(self.name, _CREATE_FLAGS, 0o644, dir_fd=layout.staging_fd)
                break
            except FileExistsError:
                continue
            except OSError as e:
                if no_space(e):
                    raise NoSpace(e.errno, f"cannot create a staging file: {e.strerror}") from e
                raise
        self.size = 0
        self._hash = hashlib.sha256()
        self._fast_hash = xxhash.xxh3_128()
        self._hexdigest: str | None = None  # the sha256 of the bytes so far, once asked
        # the first bytes, written with the trailer if that is all
        self._held: bytearray | None = bytearray()

    def write(self, data: bytes | memoryview) -> None:
        """Take bytes of the upload.  Up to ``HOLD`` bytes are held and written
        with the next ones or the trailer: one ``write`` for a small upload."""
        self.size += len(data)
        self._hexdigest = None
        self._hash.update(data)
        self._fast_hash.update(data)
        if self._held is not None:
            if len(self._held) + len(data) <= HOLD:
                self._held += data
                return
            self._write_all(self._held)
            self._held = None
        self._write_all(data)

    def flush(self) -> None:
        """Write the bytes held so far, and every later one at once (a file others read
        while it grows: the read-through's)."""
        if self._held is not None:
            self._write_all(self._held)
            self._held = None

    def hexdigest(self) -> str:
        """The sha256 of the bytes so far, made once (each is a copy and a final of
        OpenSSL's context: an upload asks for it to check it, then to seal)."""
        if self._hexdigest is None:
            self._hexdigest = self._hash.hexdigest()
        return self._hexdigest

    def data(self, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """The bytes written so far, read back: for a check of the whole body that its
        running digests cannot make (another digest, a message to parse) before it is
        sealed."""
        if self._held is not None:
            yield bytes(self._held)
            return
        fd = os.open(self.name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.layout.staging_fd)
        try:
            yield from read_data(fd, 0, self.size, chunk_size)
        finally:
            os.close(fd)

    def seal(
        self,
        key: str,
        filename: str,
        content_type: str,
        stored_at: float | None = None,
        fetched_version: int = 0,
        headers: tuple[tuple[str, str], ...] = (),
    ) -> tuple[ObjectMeta, int]:
        """Append the trailer and close; return the metadata and the file's total size.

        ``stored_at`` (default: now) and ``fetched_version`` are an object's
        own when it was fetched from the object store; ``headers`` go back
        with every read of it (``format.header_problem`` allows them).
        """
        meta = ObjectMeta(
            key=key,
            filename=filename,
            content_type=content_type,
            size=self.size,
            sha256=self.hexdigest(),
            stored_at=time.time() if stored_at is None else stored_at,
            xxh3=self._fast_hash.hexdigest(),
            fetched_version=fetched_version,
            headers=headers,
        )
        trailer = encode_trailer(meta)
        file_size = self.size + len(trailer)
        if self._held is not None:
            trailer = bytes(self._held) + trailer
            self._held = None
        self._write_all(trailer)
        os.close(self._fd)
        self._fd = -1
        return meta, file_size

    def withdraw(self) -> bool:
        """Remove the sealed file unless the coordinator has claimed it; True if removed.

        After a commit's reply did not come in time: if the file could be
        removed here, the coordinator's claim (a rename of this very name)
        can no longer succeed, so nothing was or will be stored; if it was
        gone, the coordinator claimed it and the outcome is its own.
        """
        try:
            os.unlink(self.name, dir_fd=self.layout.staging_fd)
        except FileNotFoundError:
            return False
        return True

    def discard(self) -> None:
        """Close and remove the file, unless the coordinator has claimed it; idempotent."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.name, dir_fd=self.layout.staging_fd)

    def _write_all(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
        except OSError as e:
            if no_space(e):
                raise NoSpace(e.errno, f"writing {self.name}: {e.strerror}") from e
            raise


def check_part_name(name: str) -> None:
    """Refuse anything but the plain name of an upload's staging file."""
    match = _NAME.fullmatch(name)
    if match is None or match.group(2) != PART[1:]:
        raise ValueError(f"not a staging file name: {name!r}")


def claimed_name(name: str) -> str:
    return name[: -len(PART)] + CLAIMED


def staging_owner(name: str) -> int | None:
    """The pid that created a staging file, from its name."""
    match = _NAME.fullmatch(name)
    return int(match.group(1)) if match else None


def sweep_staging(
    layout: Layout, stale_after: float, everything: bool = False, running: bool = False
) -> int:
    """Remove staging files no one will finish; return how many.

    Removed: files whose writer process is gone, files idle for
    ``stale_after`` seconds, claimed files (only a coordinator that died
    mid-commit leaves one), anything that is not a staging file, and with
    ``everything`` all of them (start-up, before any front end runs).  The
    running coordinator's own sweep (``running``) keeps claimed files: they
    wait for its file work, which publishes or discards each.
    """
    removed = 0
    now = time.time()
    writer_alive = functools.cache(alive)  # each writer asked once: staging may hold thousands
    with os.scandir(layout.staging_fd) as entries:
        names = [entry.name for entry in entries]
    for name in names:
        try:
            info = os.stat(name, dir_fd=layout.staging_fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        owner = staging_owner(name)
        keep = not everything and (
            (running and name.endswith(CLAIMED) and owner is not None)
            or (
                name.endswith(PART)
                and stat.S_ISREG(info.st_mode)
                and owner is not None
                and writer_alive(owner)
                and now - info.st_mtime <= stale_after
            )
        )
        if not keep and _remove(layout, name, info):
            removed += 1
    return removed


def remove_staging_of(layout: Layout, pid: int) -> list[str]:
    """Remove the unclaimed staging files of writer ``pid`` (it died); return their names."""
    with os.scandir(layout.staging_fd) as entries:
        names = [e.name for e in entries if e.name.endswith(PART) and staging_owner(e.name) == pid]
    for name in names:
        _remove(layout, name, None)
    return names


def _remove(layout: Layout, name: str, info: os.stat_result | None) -> bool:
    try:
        if info is not None and stat.S_ISDIR(info.st_mode):
            os.rmdir(name, dir_fd=layout.staging_fd)
        else:
            os.unlink(name, dir_fd=layout.staging_fd)
    except FileNotFoundError:
        return False
    except OSError:  # a non-empty directory someone put there: leave it
        return False
    return True
