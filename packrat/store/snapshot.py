"""The index snapshot: what start-up may trust without reading every trailer.

The file is ``MAGIC``, then blocks of rows in strictly increasing key
order, then a footer::

    block:  b"B" <u32 rows> <u32 key bytes> <charges: i64 each> <last uses: f64 each>
            <key lengths: u16 each> <keys, UTF-8, one after the other>
    footer: b"E" <u32 length> <msgpack {"saved_at", "sequence", "rows"}> <sha256 of all before>

Columns, so start-up reads a million rows with a few ``frombytes`` calls
instead of unpacking a million Python objects, and blocks, so a snapshot can
be written a slice at a time between the coordinator's messages
(``SnapshotWriter``) without holding the whole index twice.  ``sequence``
is the commit stamp of the last commit before the snapshot began
(``ObjectWriter.clock_ns``): files stamped after it are re-read at start-up,
whatever the snapshot says about them.  A row names no file: the file's name
is the sha256 of the key, computed, so a row cannot point at another key's
file; the strict key order means no key has two rows.  A snapshot that
breaks any of this (or fails its checksum) is ignored whole and the index is
rebuilt from the files.

``state/clean`` marks a snapshot written by a clean shutdown, after the
last change: it holds that snapshot's checksum, and start-up removes it
before anything else, so it never outlives the run it describes.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import math
import os
import queue
import struct
import sys
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgpack

from packrat.core.keys import MAX_KEY_BYTES
from packrat.store.layout import Layout

log = logging.getLogger("packrat.store")

MAGIC = b"PKRTSNAP4\n"
CHECKSUM = hashlib.sha256().digest_size
_BLOCK = struct.Struct("<cII")  # b"B", rows, key bytes
_FOOTER = struct.Struct("<cI")  # b"E", footer length
_LITTLE = sys.byteorder == "little"


@dataclass
class Snapshot:
    """The index as last saved: columns in key order."""

    keys: list[bytes] = field(default_factory=list)
    charges: array = field(default_factory=lambda: array("q"))
    seen: array = field(default_factory=lambda: array("d"))  # last use, Unix time
    sequence: int = 0
    saved_at: float = 0.0
    clean: bool = False  # written by a clean shutdown: nothing changed since

    def __len__(self) -> int:
        return len(self.keys)

    def rows(self) -> Iterator[tuple[str, int, float]]:
        """``(key, charge, last use)`` in key order."""
        for key, charge, seen in zip(self.keys, self.charges, self.seen, strict=True):
            yield key.decode(), charge, seen


class SnapshotWriter:
    """Writes a snapshot block by block to a temporary file; ``finish`` publishes it.

    With ``behind``, a thread writes (and hashes) the blocks ``add`` makes, so
    the caller never waits for the disk: a ``write`` into the page cache is
    held tens of milliseconds when the kernel throttles a process for dirty
    pages (measured while other work filled the disk), and the coordinator's
    loop must not be.  ``backlog`` says how many bytes the thread has yet to
    write, so the caller can wait for it without blocking.
    """

    def __init__(self, layout: Layout, sequence: int, behind: bool = False) -> None:
        self.layout = layout
        self.sequence = sequence
        self.rows = 0
        self.last_key = b""  # rows must come in strictly increasing key order
        self._target = layout.snapshot_path()
        self._temp = self._target.with_name(self._target.name + ".tmp")
        self._hash = hashlib.sha256()
        self._file = open(self._temp, "wb")  # noqa: SIM115 - closed by finish or abort
        self._write(MAGIC)
        # Each count is changed by one thread only: handed by the caller, written by the thread.
        self._handed = self._written = 0
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._error: OSError | None = None
        self._thread: threading.Thread | None = None
        if behind:
            self._thread = threading.Thread(target=self._write_handed, name="snapshot-write")
            self._thread.daemon = True
            self._thread.start()

    @property
    def backlog(self) -> int:
        """Bytes handed to the writing thread that it has not written yet."""
        return self._handed - self._written

    def add(self, keys: list[bytes], charges: array, seen: array) -> None:
        """Append rows (``keys`` strictly increasing, and above every earlier row's)."""
        if not keys:
            return
        columns = [charges, seen, array("H", map(len, keys))]
        if not _LITTLE:
            columns = [array(column.typecode, column) for column in columns]
            for column in columns:
                column.byteswap()
        blob = b"".join(keys)
        block = b"".join(
            [_BLOCK.pack(b"B", len(keys), len(blob)), *(c.tobytes() for c in columns), blob]
        )
        if self._thread is None:
            self._write(block)
        else:
            self._handed += len(block)
            self._queue.put(block)
        self.rows += len(keys)
        self.last_key = keys[-1]

    def finish(self, clean: bool = False) -> int:
        """Write the footer, fsync, rename into place; return the file's size."""
        fields = {"saved_at": time.time(), "sequence": self.sequence, "rows": self.rows}
        footer = msgpack.packb(fields)
        try:
            self._join()
            self._write(_FOOTER.pack(b"E", len(footer)) + footer)
            checksum = self._hash.digest()
            self._file.write(checksum)
            self._file.flush()
            os.fsync(self._file.fileno())
            size = self._file.tell()
            self._file.close()
            os.replace(self._temp, self._target)
        except OSError:
            self.abort()
            raise
        if clean:
            self.layout.clean_mark_path().write_text(checksum.hex())
        return size

    def abort(self) -> None:
        with contextlib.suppress(OSError):  # the file goes anyway
            self._join()
        with contextlib.suppress(OSError):
            self._file.close()
        self._temp.unlink(missing_ok=True)

    def _join(self) -> None:
        """Let the writing thread write what it was handed, and end; raise what it met."""
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._error is not None:
            raise self._error

    def _write_handed(self) -> None:
        while (block := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write(block)
                except OSError as e:
                    self._error = e  # finish raises it
            self._written += len(block)

    def _write(self, data: bytes) -> None:
        self._hash.update(data)
        self._file.write(data)


def save_snapshot(
    layout: Layout, rows: list[tuple[bytes, int, float]], sequence: int, clean: bool = False
) -> int:
    """Write a whole snapshot of ``(key, charge, last use)`` rows (sorted here); return its size."""
    rows = sorted(rows)
    writer = SnapshotWriter(layout, sequence)
    try:
        writer.add(
            [key for key, _, _ in rows],
            array("q", [charge for _, charge, _ in rows]),
            array("d", [seen for _, _, seen in rows]),
        )
    except BaseException:
        writer.abort()
        raise
    return writer.finish(clean)


def load_snapshot(layout: Layout) -> Snapshot:
    """The saved snapshot for a starting coordinator (see ``read_snapshot``).

    Consumes the clean mark: from this call on, the snapshot ages.
    """
    mark = layout.clean_mark_path()
    try:
        mark_text = mark.read_text().strip()
        mark.unlink()
    except FileNotFoundError:
        mark_text = ""
    snapshot, checksum = read_snapshot(layout)
    snapshot.clean = bool(checksum) and mark_text == checksum.hex()
    return snapshot


def read_snapshot(layout: Layout) -> tuple[Snapshot, bytes]:
    """The saved snapshot and its checksum; an empty one when there is none or it is damaged."""
    try:
        blob = layout.snapshot_path().read_bytes()
    except FileNotFoundError:
        return Snapshot(), b""
    try:
        return _parse(blob)
    except (ValueError, TypeError, KeyError, struct.error, msgpack.UnpackException) as e:
        log.warning("ignoring the snapshot %s: %s", layout.snapshot_path(), e)
        return Snapshot(), b""


def _parse(blob: bytes) -> tuple[Snapshot, bytes]:
    if not blob.startswith(MAGIC):
        raise ValueError("not a version-4 snapshot")
    body, checksum = memoryview(blob)[:-CHECKSUM], blob[-CHECKSUM:]
    if len(blob) < len(MAGIC) + CHECKSUM or hashlib.sha256(body).digest() != checksum:
        raise ValueError("checksum mismatch")
    snapshot = Snapshot()
    position = len(MAGIC)
    while body[position : position + 1] == b"B":
        _, rows, key_bytes = _BLOCK.unpack_from(body, position)
        position += _BLOCK.size
        position = _read_block(snapshot, body, position, rows, key_bytes)
    kind, length = _FOOTER.unpack_from(body, position)
    position += _FOOTER.size
    if kind != b"E" or position + length != len(body):
        raise ValueError("malformed footer")
    footer = msgpack.unpackb(body[position:], use_list=False)
    sequence, rows = footer["sequence"], footer["rows"]
    if type(sequence) is not int or rows != len(snapshot):
        raise ValueError("malformed footer")
    snapshot.sequence = sequence
    snapshot.saved_at = float(footer["saved_at"])
    return snapshot, checksum


def _read_block(snapshot: Snapshot, body: memoryview, position: int, rows: int, nbytes: int) -> int:
    """Append one block's rows to ``snapshot``, checking them; return the position after it."""
    charges, seen, lengths = array("q"), array("d"), array("H")
    for column, size in ((charges, 8), (seen, 8), (lengths, 2)):
        end = position + rows * size
        if end > len(body):
            raise ValueError("truncated block")
        column.frombytes(body[position:end])
        if not _LITTLE:
            column.byteswap()
        position = end
    if sum(lengths) != nbytes or position + nbytes > len(body):
        raise ValueError("key lengths do not add up")
    if rows and (min(charges) <= 0 or not all(map(math.isfinite, seen))):
        raise ValueError("a row has a charge that is not positive or a time that is not finite")
    keys = snapshot.keys
    previous = keys[-1] if keys else b""
    data = bytes(body[position : position + nbytes])
    offset = 0
    for length in lengths:
        key = data[offset : offset + length]
        offset += length
        # Strictly increasing: no key has two rows (they would index one file twice).
        if not 0 < length <= MAX_KEY_BYTES or key <= previous:
            raise ValueError(f"the row for {key!r} is out of order, repeated or malformed")
        keys.append(key)
        previous = key
    snapshot.charges.extend(charges)
    snapshot.seen.extend(seen)
    return position + nbytes
