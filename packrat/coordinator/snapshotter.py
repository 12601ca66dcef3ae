"""Periodic snapshots written a slice at a time between messages, so no upload waits for one.

Writing the whole index at once took 1.4 s per million objects, and every
upload waited for it once per interval.  A forked child (as Redis's
``BGSAVE``) only makes the loop wait for ``fork``, but that copies the page
tables: 63 ms at ten million objects here (``bench/stall.py``).  So a
``SnapshotJob`` makes the rows' blocks in key order, ``SLICE`` seconds'
worth per turn of the loop after its messages, resuming after the last key
written; a thread writes them (``SnapshotWriter(behind=True)``: a ``write``
throttled for dirty pages held the loop 30 ms at a million objects while
other work filled the disk), and the final ``fsync`` and rename run in a
thread too.  When the disk falls ``BACKLOG`` bytes behind, slices wait.

The rows are then not one instant's index, and need not be: the snapshot's
``sequence`` is the commit stamp when it began, so start-up re-reads every
file committed after that, whatever its row says; a row whose file was
evicted or deleted meanwhile finds no file and is dropped; a key touched
after its row was written restarts with a slightly older last use, as after
any ``kill -9``.  The key order makes a key that moves (deleted and
committed again) appear at most once.
"""

from __future__ import annotations

import logging
import threading
import time

from packrat.coordinator.index import Index
from packrat.store.layout import Layout
from packrat.store.snapshot import SnapshotWriter

log = logging.getLogger("packrat.coordinator")

SLICE = 0.004  # seconds of writing per turn of the loop
ROWS = 1024  # rows per block of the file (and per step inside a slice)
BACKLOG = 8 << 20  # bytes made and not written yet, beyond which a slice waits


class SnapshotJob:
    """One snapshot being written: ``step`` until it returns True, then ``finish``."""

    def __init__(self, index: Index, layout: Layout, sequence: int, rows: int = ROWS) -> None:
        self.index = index
        self.rows = rows  # per block
        self.writer = SnapshotWriter(layout, sequence, behind=True)
        self.started = time.monotonic()
        self.written = False  # every row is in the file
        self._finisher: threading.Thread | None = None
        self._error: OSError | None = None

    def step(self, seconds: float = SLICE) -> bool:
        """Write rows for about ``seconds``; True once every key has its row."""
        deadline = time.perf_counter() + seconds
        writer = self.writer
        while not self.written and writer.backlog < BACKLOG:
            keys, charges, seen = self.index.rows_after(writer.last_key, self.rows)
            writer.add(keys, charges, seen)
            self.written = len(keys) < self.rows
            if time.perf_counter() >= deadline:
                break
        return self.written

    def finish(self, clean: bool = False) -> None:
        """Write everything left, fsync and rename, here and now (raises ``OSError``)."""
        while not self.step(float("inf")):
            pass
        self.writer.finish(clean)

    def finish_in_background(self) -> None:
        """``fsync`` and rename in a thread: a large file's fsync takes a while."""
        self._finisher = threading.Thread(target=self._finish, name="snapshot-fsync", daemon=True)
        self._finisher.start()

    def done(self) -> bool | None:
        """None while the background finish runs; else whether the snapshot was saved."""
        if self._finisher is None or self._finisher.is_alive():
            return None
        if self._error is not None:
            log.error("could not save the index snapshot: %s", self._error)
            return False
        log.debug(
            "snapshot of %d rows saved in %.2fs",
            self.writer.rows,
            time.monotonic() - self.started,
        )
        return True

    def abort(self) -> None:
        """Give up: the temporary file goes, the last snapshot stays."""
        if self._finisher is not None:
            self._finisher.join()
        else:
            self.writer.abort()

    def _finish(self) -> None:
        try:
            self.writer.finish()
        except OSError as e:
            self._error = e
