"""The index snapshot: what start-up may trust without reading every trailer.

The file is ``MAGIC``, the sha256 of the payload, then the payload: a
msgpack map ``{"saved_at", "sequence", "entries"}`` with one row
``[key, charge, last_access, digest]`` per object, least recently used
first.  ``sequence`` is the commit stamp of the last commit the entries
include (``ObjectWriter.clock_ns``).  It is written atomically (temporary
file, fsync, rename); one that fails its checksum or does not parse is
ignored, and the index is rebuilt from the files.

``state/clean`` marks a snapshot written by a clean shutdown, after the
last change: it holds that snapshot's checksum, and start-up removes it
before anything else, so it never outlives the run it describes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field

import msgpack

from packrat.store.layout import Layout

log = logging.getLogger("packrat.store")

MAGIC = b"PKRTSNAP3\n"
CHECKSUM = hashlib.sha256().digest_size

Row = tuple[str, int, float, bytes]  # key, charge, last access (Unix time), sha256(key)


@dataclass
class Snapshot:
    """The index as last saved: rows least recently used first."""

    entries: list[Row] = field(default_factory=list)
    sequence: int = 0
    saved_at: float = 0.0
    clean: bool = False  # written by a clean shutdown: nothing changed since


def save_snapshot(layout: Layout, entries: list[Row], sequence: int, clean: bool = False) -> int:
    """Write a snapshot atomically; return its size in bytes."""
    payload = msgpack.packb({"saved_at": time.time(), "sequence": sequence, "entries": entries})
    checksum = hashlib.sha256(payload).digest()
    target = layout.snapshot_path()
    temp = target.with_name(target.name + ".tmp")
    try:
        with open(temp, "wb") as f:
            f.write(MAGIC + checksum)
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, target)
    except OSError:
        temp.unlink(missing_ok=True)
        raise
    if clean:
        layout.clean_mark_path().write_text(checksum.hex())
    return len(MAGIC) + CHECKSUM + len(payload)


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
    except (ValueError, TypeError, KeyError, msgpack.UnpackException) as e:
        log.warning("ignoring the damaged snapshot %s: %s", layout.snapshot_path(), e)
        return Snapshot(), b""


def _parse(blob: bytes) -> tuple[Snapshot, bytes]:
    if not blob.startswith(MAGIC):
        raise ValueError("not a version-3 snapshot")
    checksum = blob[len(MAGIC) : len(MAGIC) + CHECKSUM]
    payload = memoryview(blob)[len(MAGIC) + CHECKSUM :]
    if hashlib.sha256(payload).digest() != checksum:
        raise ValueError("checksum mismatch")
    data = msgpack.unpackb(payload, use_list=False)
    entries = data["entries"]
    keys = set()
    for key, charge, seen, digest in entries:
        if not (
            isinstance(key, str)
            and type(charge) is int
            and charge > 0
            and isinstance(seen, float | int)
            and isinstance(digest, bytes)
            and len(digest) == 32
        ):
            raise ValueError(f"malformed row for {key!r}")
        # A checksum only says the file is whole, not that it tells the truth:
        # a row naming the wrong file would put a phantom key in the index.
        if hashlib.sha256(key.encode("utf-8")).digest() != digest:
            raise ValueError(f"the row for {key!r} names another key's file")
        if key in keys:
            raise ValueError(f"{key!r} has two rows")
        keys.add(key)
    sequence = data["sequence"]
    if type(sequence) is not int:
        raise ValueError("malformed sequence")
    return Snapshot(list(entries), sequence, float(data["saved_at"])), checksum
