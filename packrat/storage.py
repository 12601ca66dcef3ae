"""The on-disk layout: where objects and staging files live, and the object format.

::

    <root>/objects/ab/cd/<sha256(key)>   committed objects
    <root>/staging/<pid>-<random>.part   uploads in progress
    <root>/state/index.msgpack           the coordinator's snapshot

An object file is the uploaded bytes followed by a trailer that carries the
metadata, so one atomic ``os.replace`` publishes data and metadata together
and a restart can rebuild the index from the files alone::

    <data><msgpack metadata><uint32 metadata length><b"PKRT1\\n">

Keys never become paths: the path is a pure function of the key's hash, so a
front end finds an object without asking the coordinator.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import struct
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import msgpack

MAGIC = b"PKRT1\n"
_LENGTH = struct.Struct("<I")
TAIL_SIZE = _LENGTH.size + len(MAGIC)
MAX_METADATA = 64 * 1024
TAIL_READ = 1024  # bytes read from an object's end to find its trailer


class CorruptObject(Exception):
    """An object file whose trailer cannot be read."""


@dataclass(frozen=True)
class ObjectMeta:
    """What travels with an object's bytes."""

    key: str
    filename: str
    content_type: str
    size: int  # bytes of data, without the trailer
    sha256: str  # hex digest of the data
    stored_at: float  # Unix time of the commit


def encode_trailer(meta: ObjectMeta) -> bytes:
    body = msgpack.packb(asdict(meta))
    return body + _LENGTH.pack(len(body)) + MAGIC


def read_trailer(fd: int, file_size: int) -> ObjectMeta:
    """Read the metadata of the object open as ``fd`` (``file_size`` from fstat).

    One read of the file's last ``TAIL_READ`` bytes covers almost every
    trailer; a longer one (long key and filename) takes a second read.
    """
    if file_size < TAIL_SIZE:
        raise CorruptObject("file too short for a trailer")
    span = min(file_size, TAIL_READ)
    tail = os.pread(fd, span, file_size - span)
    if len(tail) != span or not tail.endswith(MAGIC):
        raise CorruptObject("trailer magic missing")
    (length,) = _LENGTH.unpack_from(tail, span - TAIL_SIZE)
    start = file_size - TAIL_SIZE - length
    if length > MAX_METADATA or start < 0:
        raise CorruptObject("trailer length out of range")
    if length + TAIL_SIZE <= span:
        body = tail[span - TAIL_SIZE - length : span - TAIL_SIZE]
    else:
        body = os.pread(fd, length, start)
    try:
        meta = ObjectMeta(**msgpack.unpackb(body))
    except (ValueError, TypeError, msgpack.UnpackException) as e:
        raise CorruptObject(f"trailer does not decode: {e}") from None
    if meta.size != start:
        raise CorruptObject(f"trailer says {meta.size} bytes of data, file has {start}")
    return meta


def read_data(fd: int, start: int, stop: int, chunk_size: int = 64 * 1024) -> Iterator[bytes]:
    """The object's bytes ``start:stop`` in chunks; stops early if the file is shorter."""
    offset = start
    while offset < stop:
        chunk = os.pread(fd, min(chunk_size, stop - offset), offset)
        if not chunk:
            return
        offset += len(chunk)
        yield chunk


def read_object_meta(path: Path) -> tuple[ObjectMeta, int]:
    """Metadata and total file size of the object at ``path``."""
    fd = os.open(path, os.O_RDONLY)
    try:
        file_size = os.fstat(fd).st_size
        return read_trailer(fd, file_size), file_size
    finally:
        os.close(fd)


def open_object(layout: Layout, key: str) -> tuple[int, ObjectMeta] | None:
    """Open the object stored under ``key``: ``(fd, meta)``, or None when absent.

    The caller closes ``fd``.  An evicted or replaced file keeps reading
    consistently through ``fd`` (POSIX unlink and rename semantics).
    Raises ``CorruptObject`` when the file is there but unreadable.
    """
    try:
        fd = os.open(layout.object_path(key), os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        meta = read_trailer(fd, os.fstat(fd).st_size)
        if meta.key != key:
            raise CorruptObject(f"object file holds key {meta.key!r}")
    except BaseException:
        os.close(fd)
        raise
    return fd, meta


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


class Layout:
    """Paths under one cache root; the only code that builds them."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        self.staging = self.root / "staging"
        self.state = self.root / "state"

    def create(self) -> None:
        for path in (self.objects, self.staging, self.state):
            path.mkdir(parents=True, exist_ok=True)

    def object_path(self, key: str) -> Path:
        digest = key_digest(key)
        return self.objects / digest[:2] / digest[2:4] / digest

    def new_staging_file(self) -> tuple[Path, int]:
        """Create a fresh staging file exclusively; return its path and an fd."""
        while True:
            path = self.staging / f"{os.getpid()}-{secrets.token_hex(8)}.part"
            try:
                return path, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                continue

    def staging_path(self, name: str) -> Path:
        """The staging file called ``name``; refuses anything but a plain name."""
        if not name.endswith(".part") or "/" in name or name.startswith("."):
            raise ValueError(f"not a staging file name: {name!r}")
        return self.staging / name

    def snapshot_path(self) -> Path:
        return self.state / "index.msgpack"

    def clean_mark_path(self) -> Path:
        return self.state / "index.clean"

    def object_top_dirs(self) -> list[str]:
        """The first level of the fan-out (``objects/ab``)."""
        return _subdirs(str(self.objects))

    def iter_objects(self) -> Iterator[os.DirEntry[str]]:
        """Every object file under ``objects/``, as directory entries."""
        for top in self.object_top_dirs():
            yield from self.iter_dir_objects(top)

    @staticmethod
    def iter_dir_objects(top: str) -> Iterator[os.DirEntry[str]]:
        """The object files under one top-level fan-out directory.

        Plain ``os.scandir`` with no ``Path`` objects: a restart walks a
        million of these, and pathlib would triple the time.
        """
        for mid in _subdirs(top):
            with os.scandir(mid) as entries:
                for entry in entries:
                    if entry.is_file(follow_symlinks=False):
                        yield entry


def _subdirs(path: str) -> list[str]:
    try:
        with os.scandir(path) as entries:
            return [e.path for e in entries if e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return []


def staging_owner(path: Path) -> int | None:
    """The pid that created a staging file, from its name."""
    head = path.name.split("-", 1)[0]
    return int(head) if head.isdigit() else None
