"""Periodic snapshots written by a forked child, so the loop never waits for one.

Serialising the index takes time in proportion to the objects (seconds for
millions); done in the coordinator's loop, every upload waited for it once
per interval.  As Redis's ``BGSAVE`` does, the coordinator forks: the child
holds a copy-on-write image of the index at that instant, writes it and
exits, while the parent goes on answering.  The parent's cost is the
``fork`` itself (copying page tables: ``bench/coordinator_stall.py``
measures it).

The child only writes a file and leaves with ``os._exit``: it never touches
the ZeroMQ sockets it inherited, runs no exit handlers, and dies with its
parent (``PR_SET_PDEATHSIG``), so a snapshot never lands after the
coordinator that took it is gone.  The clean snapshot at shutdown is still
written in the parent, after any child has been reaped, so the two never
write at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import logging
import os
import signal
import time
from collections.abc import Callable

log = logging.getLogger("packrat.coordinator")

_PR_SET_PDEATHSIG = 1


class BackgroundSnapshot:
    """At most one child writing a snapshot; ``poll`` reaps it."""

    def __init__(self, write: Callable[[], object], close_in_child: tuple[int, ...] = ()) -> None:
        self.write = write  # runs in the child: save the snapshot or raise
        self.close_in_child = close_in_child  # e.g. the root's lock: held by the parent alone
        self.pid = 0
        self.started = 0.0
        self.fork_seconds = 0.0  # how long the last fork held the loop

    @property
    def running(self) -> bool:
        return self.pid != 0

    def start(self) -> bool:
        """Fork a child that writes the snapshot; False if one is still running."""
        if self.pid:
            return False
        parent = os.getpid()
        started = time.perf_counter()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child, measured by its exit status
            self._child(parent)
        self.fork_seconds = time.perf_counter() - started
        self.pid = pid
        self.started = time.monotonic()
        return True

    def poll(self) -> bool | None:
        """None while the child runs (or none was started); else whether it succeeded."""
        if not self.pid:
            return None
        pid, status = os.waitpid(self.pid, os.WNOHANG)
        if pid == 0:
            return None
        return self._reaped(status)

    def wait(self) -> bool | None:
        """Wait for a running child; its snapshot is as good as any periodic one."""
        if not self.pid:
            return None
        _, status = os.waitpid(self.pid, 0)
        return self._reaped(status)

    def _reaped(self, status: int) -> bool:
        self.pid = 0
        code = os.waitstatus_to_exitcode(status)
        if code != 0:
            log.error("the snapshot process failed (exit status %d); the last snapshot stays", code)
            return False
        log.debug("snapshot written in %.2fs", time.monotonic() - self.started)
        return True

    def _child(self, parent: int) -> None:  # pragma: no cover - runs in the forked child
        code = 1
        try:
            gc.disable()  # a collection would touch, and so copy, every page of the heap
            _die_with(parent)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            for fd in self.close_in_child:
                os.close(fd)
            self.write()
            code = 0
        except BaseException as e:  # reported on stderr and by the exit status
            os.write(2, f"packrat: the snapshot process failed: {e!r}\n".encode())
        finally:
            os._exit(code)


def _die_with(parent: int) -> None:  # pragma: no cover - runs in the forked child
    """Ask Linux to kill this process when ``parent`` dies (elsewhere: no such request)."""
    name = ctypes.util.find_library("c")
    if name is not None:
        libc = ctypes.CDLL(name, use_errno=True)
        if hasattr(libc, "prctl"):
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # it died before the request took effect
        os._exit(1)
