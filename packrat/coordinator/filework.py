"""The coordinator's file-system work, off the policy thread and in the order it was decided.

Half of a commit's cost was system calls (the claim's rename and stat, the
victims' unlinks, the stamp, the rename into place) on the one thread that
also runs the policy.  Here the policy thread only decides; a single worker
thread does the file work, job after job in submission order, and hands each
result back to be acted on (``completed``, woken through ``fd`` in the
loop's poller).  One worker, in order, keeps every invariant the store had
when one thread did everything: the disk goes through the same states, each
a little later.  The index is the future state of the disk; a reply that
needs a file change is sent only once the change is done.

One exception to "in order": a rename that makes a fan-out directory grow
must be paid for before the next rename, or two growths could both land
before either is charged (``DIR_RESERVE`` covers one).  A job that asks for
it (``pause_if``) stops the worker after it until ``resume``: the policy
thread then evicts for the growth before anything else reaches the disk.

``threaded=False`` runs each job at once on the caller's thread (start-up,
tools, tests); ``manual=True`` queues jobs until ``run_next`` (the state
machine uses it to check the invariants between any two jobs).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

Result = Any  # what a job's work returned, or the exception it raised


class _Job:
    __slots__ = ("pause_if", "result", "then", "work")

    def __init__(
        self,
        work: Callable[[], Any],
        then: Callable[[Result], None],
        pause_if: Callable[[Result], bool] | None,
    ) -> None:
        self.work = work
        self.then = then
        self.pause_if = pause_if
        self.result: Result = None

    def run(self) -> bool:
        """Do the work; True if the worker must now wait for ``resume``."""
        try:
            self.result = self.work()
        except Exception as e:  # handed to ``then``, which answers the request
            self.result = e
        return self.pause_if is not None and self.pause_if(self.result)


class FileWork:
    """Jobs run in submission order; their ``then`` runs on the thread calling ``completed``."""

    def __init__(self, threaded: bool = False, manual: bool = False) -> None:
        self.threaded = threaded
        self.manual = manual
        self._queue: deque[_Job] = deque()
        self._done: deque[_Job] = deque()
        self._changed = threading.Condition()
        self._paused = False
        self._closing = False
        self._running = False  # the worker has a job in hand
        self.fd = -1
        self._wake_fd = -1
        self._thread: threading.Thread | None = None
        if threaded:
            self.fd, self._wake_fd = os.pipe()
            os.set_blocking(self.fd, False)
            os.set_blocking(self._wake_fd, False)
            self._thread = threading.Thread(target=self._work, name="file-work", daemon=True)
            self._thread.start()

    def __len__(self) -> int:
        """Jobs not yet acted on (queued, running, or done and waiting for ``completed``)."""
        return len(self._queue) + len(self._done) + self._running

    def submit(
        self,
        work: Callable[[], Any],
        then: Callable[[Result], None],
        pause_if: Callable[[Result], bool] | None = None,
    ) -> None:
        job = _Job(work, then, pause_if)
        if not (self.threaded or self.manual):
            job.run()
            job.then(job.result)
            return
        with self._changed:
            self._queue.append(job)
            self._changed.notify()

    def completed(self) -> int:
        """Act on every finished job (on the policy thread); return how many."""
        if self.fd >= 0:
            with contextlib.suppress(BlockingIOError):
                while os.read(self.fd, 4096):
                    pass
        count = 0
        while self._done:
            job = self._done.popleft()
            job.then(job.result)
            count += 1
        return count

    def resume(self) -> None:
        """Let the worker go on after a job that paused it."""
        with self._changed:
            self._paused = False
            self._changed.notify()

    def run_next(self) -> bool:
        """``manual``: run the oldest job and act on it here; False if there was none."""
        if not self._queue:
            return False
        job = self._queue.popleft()
        job.run()
        job.then(job.result)
        return True

    def close(self) -> None:
        """Finish every queued job, act on it, and stop the worker."""
        if self.manual:
            while self.run_next():
                pass
        if self._thread is not None:
            with self._changed:
                self._closing = True
                self._changed.notify()
            while self._thread.is_alive() or self._done:
                self._thread.join(0.01)
                self.completed()  # a job's ``then`` may resume a paused worker
            os.close(self.fd)
            os.close(self._wake_fd)
            self._thread = None

    def _work(self) -> None:
        changed = self._changed
        while True:
            with changed:
                while self._paused or not (self._queue or self._closing):
                    changed.wait()
                if not self._queue:
                    return  # closing, and nothing left
                job = self._queue.popleft()
                self._running = True
            pause = job.run()
            with changed:
                self._paused = pause
                self._done.append(job)
                self._running = False
            with contextlib.suppress(BlockingIOError):
                os.write(self._wake_fd, b"!")
