"""``packrat serve``: start the coordinator and the front ends, keep them running.

Each role runs as its own ``python -m packrat <role>`` process, exactly what
supervisord runs in ``deploy/``, so both ways of running exercise the same
code.  A child that dies is restarted after a backoff that doubles on each
quick failure.  SIGTERM/SIGINT stop the front ends (which finish the requests
under way), then the coordinator, each with SIGTERM and SIGKILL after a grace
period, before this process exits; children also get SIGTERM from the kernel
if this process dies without cleaning up (``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from packrat.config import Settings
from packrat.coordinator.recovery import sweep_staging
from packrat.storage import Layout

log = logging.getLogger("packrat.supervisor")

# Seconds each kind of child gets to exit after SIGTERM; together under 10.
FRONTEND_GRACE = 6.5  # front ends finish requests under way for up to 5 s
COORDINATOR_GRACE = 3.0
BACKOFF_FIRST = 0.5  # seconds before the first restart
BACKOFF_MAX = 10.0
HEALTHY_AFTER = 30.0  # a child that ran this long resets its backoff
CONFIG_ERROR = 2  # children exit with this on a bad configuration: never restarted
_PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    """One supervised process and its restart bookkeeping."""

    name: str
    argv: list[str]
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    failures: int = 0
    start_at: float = field(default=0.0)

    def start(self) -> None:
        # A session of its own: a terminal's Ctrl-C reaches only the
        # supervisor, which then stops the children in order.
        self.process = subprocess.Popen(
            self.argv, preexec_fn=_die_with_parent, start_new_session=True
        )
        self.started_at = time.monotonic()
        log.info("started %s (pid %d)", self.name, self.process.pid)

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


def children_for(settings: Settings, config_path: Path | None) -> list[Child]:
    base = [sys.executable, "-m", "packrat"]
    # None: no file was found, and the children find none either (built-in defaults).
    config = ["--config", str(config_path.resolve())] if config_path else []
    children = [Child("coordinator", [*base, "coordinator", *config])]
    for number in range(settings.processes):
        children.append(
            Child(f"frontend {number}", [*base, "frontend", "--number", str(number), *config])
        )
    return children


def serve(settings: Settings, config_path: Path | None) -> int:
    """Run the process group until signalled; return the exit status."""
    layout = Layout(settings.cache_root)
    layout.create()
    removed = sweep_staging(layout, settings.coordinator_stale_staging, everything=True)
    if removed:
        log.info("removed %d leftover staging files", removed)
    stopping = False

    def request_stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    children = children_for(settings, config_path)
    for child in children:
        child.start()
    status = 0
    while not stopping:
        now = time.monotonic()
        for child in children:
            pid = child.process.pid if child.process else None
            exit_status = child.reap()
            if exit_status is not None:
                remove_staging_of(layout, pid)
                if exit_status == CONFIG_ERROR:
                    log.error("%s exited on a configuration error; stopping", child.name)
                    stopping, status = True, CONFIG_ERROR
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
        time.sleep(0.1)
    stop_all(children)
    return status


def remove_staging_of(layout: Layout, pid: int | None) -> None:
    """Remove the staging files of a child that died (uploads it can never finish)."""
    for path in layout.staging.glob(f"{pid}-*.part"):
        path.unlink(missing_ok=True)
        log.info("removed %s left by pid %d", path.name, pid)


def stop_all(children: list[Child]) -> None:
    """Stop the front ends, then the coordinator, each within a grace period.

    Front ends first: they finish the requests under way (uploads included,
    which still need the coordinator to commit), then exit; the coordinator
    goes last and saves its snapshot.  Whatever outlives its grace is killed.
    """
    frontends = [c.process for c in children if c.process and c.name != "coordinator"]
    coordinator = [c.process for c in children if c.process and c.name == "coordinator"]
    _terminate(frontends, FRONTEND_GRACE)
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
