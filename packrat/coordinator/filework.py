"""The coordinator's file-system work, done after the decisions of a turn, in their order.

A commit's system calls are the claim's rename and stat, the victims'
unlinks, the stamp and the rename into place.  The server queues them
(``queued=True``): a turn of its loop first decides every message already
received, then runs the queued jobs in decision order (``run_all``), each
job's ``then`` acting on its result at once (a claim's ``then`` decides
the evictions and queues the publish).  The disk goes through the same
states as when each request did its own file work, each a little later;
the index is the disk's future state, and a reply that needs a file change
is sent only once it is done.

Why on the loop's thread: a worker thread (issue 17's first attempt) more
than doubled the coordinator's CPU per commit, as the two threads handed
the interpreter lock to each other around every system call; and a turn's
file work run back to back costs less than each request's run inside it
(docs/coordinator.md, *Commits*).

Run in order by one thread, a job's ``then`` runs before the next job
starts, so a rename that grows a fan-out directory is paid for (by evicting)
before anything else reaches the disk.  Without ``queued`` each job runs
as it is submitted (start-up, tools, tests); the state machine queues jobs
and runs them one at a time (``run_next``) to check the invariants between
any two.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

Result = Any  # what a job's work returned, or the exception it raised
Job = tuple[Callable[[], Any], Callable[[Result], None]]


class FileWork:
    """Jobs run in submission order, each followed by its ``then``, on the caller's thread."""

    def __init__(self, queued: bool = False) -> None:
        self.queued = queued
        self._queue: deque[Job] = deque()

    def __len__(self) -> int:
        """Jobs queued and not run yet."""
        return len(self._queue)

    def submit(self, work: Callable[[], Any], then: Callable[[Result], None]) -> None:
        if self.queued:
            self._queue.append((work, then))
        else:
            _run(work, then)

    def run_next(self) -> bool:
        """Run the oldest job and act on it; False if there was none."""
        if not self._queue:
            return False
        _run(*self._queue.popleft())
        return True

    def run_all(self) -> int:
        """Run every job, those their ``then`` queues included; return how many."""
        queue, count = self._queue, 0
        while queue:  # ``_run`` written out: a Python call less per job, two per commit
            work, then = queue.popleft()
            try:
                result = work()
            except Exception as e:
                result = e
            then(result)
            count += 1
        return count

    def close(self) -> None:
        """What was decided reaches the disk (and is answered) before a stop."""
        self.run_all()


def _run(work: Callable[[], Any], then: Callable[[Result], None]) -> None:
    try:
        result = work()
    except Exception as e:  # handed to ``then``, which answers the request
        result = e
    then(result)
