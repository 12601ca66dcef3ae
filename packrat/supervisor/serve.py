"""``packrat serve``: start the coordinator and the front ends, keep them running.

Each role runs as its own ``python -m packrat <role>`` process, exactly what
supervisord runs in ``deploy/``, so both ways of running exercise the same
code.  A child that dies is restarted after a backoff that doubles on each
quick failure.  SIGTERM/SIGINT stop the front ends (which finish the requests
under way), then the coordinator, each with SIGTERM and SIGKILL after a grace
period, before this process exits; children also get SIGTERM from the kernel
if this process dies without cleaning up (``PR_SET_PDEATHSIG``).

It also clears the shared metrics directory before any child starts and
counts restarts there (``packrat_restarts_total{role}``, ``packrat.core.metrics_directory``).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import Counter

from packrat.core import metrics_directory
from packrat.core.exits import FATAL
from packrat.core.settings import Settings
from packrat.frontend.app import listen
from packrat.store import Layout, lock_root, sweep_staging
from packrat.store.lock import INHERITED_FD
from packrat.store.staging import remove_staging_of

log = logging.getLogger("packrat.supervisor")

# Seconds each kind of child gets to exit after SIGTERM; together under 10.
FRONTEND_GRACE = 6.5  # front ends finish requests under way for up to 5 s
COORDINATOR_GRACE = 3.0
BACKOFF_FIRST = 0.5  # seconds before the first restart
BACKOFF_MAX = 10.0
HEALTHY_AFTER = 30.0  # a child that ran this long resets its backoff
_PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    name: str
    argv: list[str]
    pass_fds: tuple[int, ...] = ()  # descriptors the child inherits (the root's lock)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    start_at: float = field(default=0.0)

    def start(self) -> None:
        # A session of its own: a terminal's Ctrl-C reaches only the
        # supervisor, which then stops the children in order.
        env = dict(os.environ)
        if self.pass_fds:
            env[INHERITED_FD] = str(self.pass_fds[0])
        self.process = subprocess.Popen(
            self.argv,
            preexec_fn=_die_with_parent,
            start_new_session=True,
            pass_fds=self.pass_fds,
            env=env,
        )
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)

    @property
    def role(self) -> str:
        return self.name.split()[0]

    def reap(self) -> int | None:
        """The exit status if the child has exited since last looked at."""
        if self.process is None:
            return None
        status = self.process.poll()
        if status is not None:
            self.process = None
        return status


def _die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when the supervisor dies."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def children_for(settings: Settings, config_path: Path | None, lock_fd: int) -> list[Child]:
    base = [sys.executable, "-m", "packrat"]
    # None: no file was found, and the children find none either (built-in defaults).
    config = ["--config", str(config_path.resolve())] if config_path else []
    children = [Child("coordinator", [*base, "coordinator", *config], pass_fds=(lock_fd,))]
    for number in range(settings.processes):
        children.append(
            Child(f"frontend {number}", [*base, "frontend", "--number", str(number), *config])
        )
    if settings.objectstore_enabled:
        children.append(Child("uploader", [*base, "uploader", *config]))
    return children


def serve(settings: Settings, config_path: Path | None) -> int:
    """Run the process group until signalled; return the exit status.

    Before any child starts: the cache root's lock (``RootLocked`` when
    another instance holds it), an HTTP address that can be bound
    (``CannotListen``), and a staging area swept clean.
    """
    layout = Layout(settings.cache_root)
    layout.create()
    lock_fd = lock_root(layout, "serve")
    listen(settings, reuse_port=False)[0].close()  # is the port free?
    layout.open_dirs(fanout=False)  # the staging sweeps need only staging/
    removed = sweep_staging(layout, settings.coordinator_stale_staging, everything=True)
    if removed:
        log.info("removed %d leftover staging files", removed)
    metrics_directory.use_directory(settings.metrics_directory)
    metrics_directory.clear_directory(settings.metrics_directory)
    children = children_for(settings, config_path, lock_fd)
    restarts = _restart_counter({child.role for child in children})
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    for child in children:
        child.start()
    status = 0
    while not stopping:
        now = time.monotonic()
        for child in children:
            pid = child.process.pid if child.process else None
            exit_status = child.reap()
            if exit_status is not None:
                if pid is not None:
                    for name in remove_staging_of(layout, pid):
                        log.info("removed %s left by pid %d", name, pid)
                if exit_status in FATAL:
                    log.error("%s cannot run (exit status %d); stopping", child.name, exit_status)
                    stopping, status = True, exit_status
                    break
                if now - child.started_at > HEALTHY_AFTER:
                    child.failures = 0
                delay = min(BACKOFF_FIRST * 2**child.failures, BACKOFF_MAX)
                child.failures += 1
                child.start_at = now + delay
                log.warning(
                    "%s exited with %s; restarting in %.1fs", child.name, exit_status, delay
                )
            elif child.process is None and now >= child.start_at:
                child.start()
                restarts.labels(child.role).inc()
        time.sleep(0.1)
    stop_all(children)
    layout.close_dirs()
    os.close(lock_fd)
    return status


def _restart_counter(roles: set[str]) -> Counter:
    """``packrat_restarts_total{role}``, each role shown from zero (after ``use_directory``)."""
    counter = Counter(
        "packrat_restarts",
        "Processes restarted by packrat serve after they exited, by role",
        ["role"],
        registry=None,
    )
    for role in sorted(roles):
        counter.labels(role)
    return counter


def stop_all(children: list[Child]) -> None:
    """Stop the front ends, then the coordinator, each within a grace period.

    Front ends first, with the uploader: they finish the requests under way
    (uploads included, which still need the coordinator to commit), and the
    uploader gives its uploads under way 3 s (the rest are found again at the
    next start); the coordinator goes last and saves its snapshot.  Whatever
    outlives its grace is killed.
    """
    first = [c.process for c in children if c.process and c.role != "coordinator"]
    coordinator = [c.process for c in children if c.process and c.role == "coordinator"]
    _terminate(first, FRONTEND_GRACE)
    _terminate(coordinator, COORDINATOR_GRACE)
    log.info("all processes stopped")


def _terminate(processes: list[subprocess.Popen[bytes]], grace: float) -> None:
    for process in processes:
        process.terminate()
    deadline = time.monotonic() + grace
    for process in processes:
        try:
            process.wait(max(deadline - time.monotonic(), 0))
        except subprocess.TimeoutExpired:
            log.warning("pid %d did not stop in %.0fs; killing it", process.pid, grace)
            process.kill()
            process.wait()
