"""Reading objects: open one safely, stream its bytes, check its digest.

Opening never follows a symlink and never blocks (a FIFO planted at an
object's path would otherwise hang the reader forever); anything that is not
a regular file holding the expected key's trailer is a ``CorruptObject``
carrying its inode, for the coordinator to remove exactly that file.
"""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from collections.abc import Iterator

import xxhash

from packrat.store.format import CorruptObject, ObjectMeta, read_trailer
from packrat.store.layout import Layout, key_digest

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
CHUNK = 64 * 1024


def open_entry(
    dir_fd: int, name: str, key: str | None = None
) -> tuple[int, ObjectMeta, os.stat_result] | None:
    """Open object file ``name`` in the fan-out directory ``dir_fd``.

    Returns ``(fd, meta, stat)`` (the caller closes ``fd``), or None when
    there is no such file.  The file must hold ``key``'s trailer, or, when
    ``key`` is None, a key whose digest is ``name``.  An evicted or replaced
    file keeps reading consistently through ``fd`` (POSIX unlink and rename).
    """
    opened = open_read(dir_fd, name, key)
    return None if opened is None else opened[:3]


def open_read(
    dir_fd: int, name: str, key: str | None = None, whole_up_to: int = 0
) -> tuple[int, ObjectMeta, os.stat_result, memoryview | None] | None:
    """``open_entry``, and a file of at most ``whole_up_to`` bytes read whole.

    The fourth item is then the object's data, read with its trailer in one
    ``pread`` (one system call less per small read); else None.
    """
    try:
        fd = os.open(name, _OPEN_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError as e:
        if e.errno != errno.ELOOP:
            raise
        link = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        raise CorruptObject("a symlink, not an object file", _inode(link)) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise CorruptObject("not a regular file", _inode(info))
        whole = os.pread(fd, info.st_size, 0) if info.st_size <= whole_up_to else None
        try:
            meta = read_trailer(fd, info.st_size, whole)
        except CorruptObject as e:
            e.inode = _inode(info)
            raise
        holds_right_key = meta.key == key if key is not None else key_digest(meta.key) == name
        if not holds_right_key:
            raise CorruptObject(f"the file holds key {meta.key!r}", _inode(info))
    except BaseException:
        os.close(fd)
        raise
    # A view, not a copy: up to 64 KiB a read.
    return fd, meta, info, None if whole is None else memoryview(whole)[: meta.size]


def open_key(layout: Layout, key: str) -> tuple[int, ObjectMeta, os.stat_result] | None:
    """Open the object stored under ``key`` (see ``open_entry``)."""
    opened = open_to_read(layout, key, 0)
    return None if opened is None else opened[:3]


def is_stored(layout: Layout, key: str) -> bool:
    """Whether an object file is at ``key``'s place: one ``stat``, no trailer read (for a
    check whose answer a read of the object confirms later; a corrupt file is found then)."""
    digest = key_digest(key)
    info = _lstat(layout, digest)
    if info is None and layout.fanout_replaced(digest):
        info = _lstat(layout, digest)
    return info is not None and stat.S_ISREG(info.st_mode)


def _lstat(layout: Layout, digest: str) -> os.stat_result | None:
    try:
        return os.stat(digest, dir_fd=layout.fanout_fd(digest), follow_symlinks=False)
    except FileNotFoundError:
        return None


def open_to_read(
    layout: Layout, key: str, whole_up_to: int
) -> tuple[int, ObjectMeta, os.stat_result, memoryview | None] | None:
    """Open the object stored under ``key``, small ones read whole (see ``open_read``).

    A miss whose fan-out directory was removed and made again since this
    process opened it is retried once in the new one (``Layout.fanout_replaced``).
    """
    digest = key_digest(key)
    opened = open_read(layout.fanout_fd(digest), digest, key, whole_up_to)
    if opened is None and layout.fanout_replaced(digest):
        opened = open_read(layout.fanout_fd(digest), digest, key, whole_up_to)
    return opened


# A file's ctime is trusted to change with its next change only once this many ns
# have passed since it was set: file systems keep times at up to 2 s granularity.
SETTLED_NS = 2_000_000_000

# An entry: the identity of the file read, its metadata, and its verified bytes (small
# objects read whole) or None.
_Entry = tuple[tuple[int, int, int, int, int], ObjectMeta, bytes | None]


class MetadataCache:
    """The metadata of the objects read lately, and the bytes of the small ones, each
    checked by one ``lstat`` per lookup.

    ``HEAD`` and ``exists`` need an object's metadata, not its bytes: opening
    the file and reading its trailer every time costs four system calls,
    one ``lstat`` of its name costs one.  A ``GET`` of a small object (those
    read whole) whose bytes a read has checked against the object's digest
    (``verified``) is answered from those bytes, kept in memory up to
    ``body_bytes`` in all (0: none), after the same ``lstat``: no open, read
    or hash.

    An entry holds for the very file it was read from: its identity (device,
    inode, size, modification and change times) must be the one ``lstat``
    finds, so a file replaced, rewritten, altered in place or removed is read
    again (or missed).  The change time is set by the kernel at every change
    and cannot be set back; an entry is kept only once it has had time to
    tick (``SETTLED_NS``), so a change in the same tick, or a new file in a
    reused inode, cannot keep it.  The oldest entries go first when there
    are ``size`` of them or their bytes would pass ``body_bytes``.
    """

    def __init__(
        self,
        layout: Layout,
        size: int = 4096,
        body_bytes: int = 32 << 20,
    ) -> None:
        self.layout = layout
        self.size = size
        self.body_bytes = body_bytes
        self.kept_bytes = 0  # of the bodies in the entries
        self._entries: dict[str, _Entry] = {}

    def read(self, key: str) -> ObjectMeta | None:
        """``key``'s metadata, or None when no object is stored under it; ``CorruptObject``
        as ``open_to_read``."""
        layout = self.layout
        digest = key_digest(key)
        try:  # _lstat, without its call: this runs for every HEAD and exists
            info = os.stat(digest, dir_fd=layout.fanout_fd(digest), follow_symlinks=False)
        except FileNotFoundError:
            self._drop(key)
            if not layout.fanout_replaced(digest):
                return None
        else:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == _identity(info):
                return entry[1]
        opened = open_to_read(layout, key, 0)
        if opened is None:
            return None
        fd, meta, info, _ = opened
        os.close(fd)
        self._keep(key, info, meta, None)
        return meta

    def body(self, key: str) -> tuple[ObjectMeta, bytes] | None:
        """``key``'s metadata and verified bytes when they are kept and its file is the
        one they were read from (one ``lstat``); None: read the file."""
        entry = self._entries.get(key)
        if entry is None or entry[2] is None:
            return None
        digest = key_digest(key)
        try:
            info = os.stat(digest, dir_fd=self.layout.fanout_fd(digest), follow_symlinks=False)
        except FileNotFoundError:
            self._drop(key)
            return None
        if entry[0] != _identity(info):
            self._drop(key)  # changed: the read that follows keeps it again
            return None
        return entry[1], entry[2]

    def verified(self, key: str, info: os.stat_result, meta: ObjectMeta, data: memoryview) -> bool:
        """Whether ``data``, all of ``key``'s object as read from the file ``info``
        describes, matches its digest; if so, kept for the next reads (``body``)."""
        if not Checker.whole_matches(meta, data):
            return False
        if self.body_bytes > 0 and len(data) <= self.body_bytes:
            self._keep(key, info, meta, data)
        return True

    def _keep(
        self, key: str, info: os.stat_result, meta: ObjectMeta, body: memoryview | None
    ) -> None:
        """Remember what a read found, once its file has settled (its bytes copied only
        then); the oldest entries make room."""
        self._drop(key)
        if info.st_ctime_ns > time.time_ns() - SETTLED_NS:
            return  # too fresh to keep
        entries = self._entries
        added = 0 if body is None else len(body)
        while entries and (len(entries) >= self.size or self.kept_bytes + added > self.body_bytes):
            self._drop(next(iter(entries)))  # the oldest
        entries[key] = (_identity(info), meta, None if body is None else bytes(body))
        self.kept_bytes += added

    def _drop(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and entry[2] is not None:
            self.kept_bytes -= len(entry[2])


def _identity(info: os.stat_result) -> tuple[int, int, int, int, int]:
    return info.st_ino, info.st_dev, info.st_size, info.st_mtime_ns, info.st_ctime_ns


def read_data(fd: int, start: int, stop: int, chunk_size: int = CHUNK) -> Iterator[bytes]:
    """The object's bytes ``start:stop`` in chunks; stops early if the file is shorter."""
    offset = start
    while offset < stop:
        chunk = os.pread(fd, min(chunk_size, stop - offset), offset)
        if not chunk:
            return
        offset += len(chunk)
        yield chunk


class Checker:
    """Checks the bytes a reader sends against the object's digest, as they go.

    The fast xxh3-128 when the trailer has one; the sha256 for objects
    stored before it existed.
    """

    __slots__ = ("_expected", "_hash")

    def __init__(self, meta: ObjectMeta) -> None:
        if meta.xxh3:
            self._hash = xxhash.xxh3_128()
            self._expected = meta.xxh3
        else:
            self._hash = hashlib.sha256()
            self._expected = meta.sha256

    def update(self, data: bytes | memoryview) -> None:
        self._hash.update(data)

    def matches(self) -> bool:
        return self._hash.hexdigest() == self._expected

    @staticmethod
    def whole_matches(meta: ObjectMeta, data: bytes | memoryview) -> bool:
        """Whether ``data``, all of the object, matches its digest (in one call: small reads)."""
        if meta.xxh3:
            return xxhash.xxh3_128_hexdigest(data) == meta.xxh3
        return hashlib.sha256(data).hexdigest() == meta.sha256


def data_matches(fd: int, meta: ObjectMeta, chunk_size: int = 1 << 20) -> bool:
    """Whether the object's data is whole and hashes to its recorded digests (both)."""
    digest = hashlib.sha256()
    fast = xxhash.xxh3_128()
    length = 0
    for chunk in read_data(fd, 0, meta.size, chunk_size):
        digest.update(chunk)
        fast.update(chunk)
        length += len(chunk)
    return (
        length == meta.size
        and digest.hexdigest() == meta.sha256
        and (not meta.xxh3 or fast.hexdigest() == meta.xxh3)
    )


def _inode(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino
