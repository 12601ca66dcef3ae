"""Prometheus metrics shared by every process of one cache root.

Front ends and the supervisor count with ``prometheus_client`` in its
multiprocess mode: each process writes its values to memory-mapped files in
``<root>/state/metrics/`` and ``GET /metrics`` on any front end adds up
every file there.  A counter's file outlives its process, so totals survive
a front end's crash and restart; the gauge of uploads in flight counts live
processes only (each scrape first removes the live gauges of processes that
are gone, whoever supervises them).

Who clears the directory: ``packrat serve`` at start, before any child runs
(it holds the root's lock, so no other process writes there).  Under
supervisord or systemd nothing clears it: counters then keep their totals
across restarts of the whole group too, and the directory gains a few small
files per process started; remove its files while every Packrat process is
stopped to start from zero.  The variable ``PROMETHEUS_MULTIPROC_DIR`` is
set by each process from its own configuration; setting it by hand has no
effect.
"""

from __future__ import annotations

import os
from pathlib import Path

from packrat.core.numbers import whole_number
from packrat.core.pids import alive

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"


_pid = os.getpid()


def _refresh_pid() -> None:
    global _pid
    _pid = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)


def _this_pid() -> int:
    return _pid


def use_directory(directory: Path) -> None:
    """Make this process's metrics shared through ``directory``.

    Call before the process creates any metric: ``prometheus_client`` picks
    its value class when first imported, so it is picked again here.  Each
    value asks for the process id at every change to notice forks; here
    that is a variable kept right across forks rather than a system call
    (four of them per request).
    """
    directory.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_VAR] = str(directory)
    from prometheus_client import values

    values.ValueClass = values.MultiProcessValue(process_identifier=_this_pid)


def shared_directory() -> Path | None:
    """The directory this process's metrics go to, None when they stay in the process."""
    from prometheus_client import values

    directory = os.environ.get(ENV_VAR)
    if directory is None or values.ValueClass is values.MutexValue:
        return None
    return Path(directory)


def clear_directory(directory: Path) -> int:
    """Remove every process's values (no Packrat process may be running); return how many files."""
    removed = 0
    for path in directory.glob("*.db"):
        path.unlink(missing_ok=True)
        removed += 1
    return removed


def forget_dead_processes(directory: Path) -> None:
    """Remove the live gauges (uploads in flight) of processes that are gone."""
    from prometheus_client import multiprocess

    for path in directory.glob("gauge_live*_*.db"):
        pid = whole_number(path.stem.rsplit("_", 1)[1])
        if pid is not None and not alive(pid):
            multiprocess.mark_process_dead(pid, str(directory))
