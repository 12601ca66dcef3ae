"""What the access log and the metrics cost per request, in the front end's own code.

Run: ``python bench/observability.py``.  It times ``RequestLog.record`` (the
per-request hook: the metrics' increments, the traffic count for the
coordinator, and the access line) 10,000 times per case, with the metrics
shared through a temporary directory as in a real front end and stderr
sent to a file, as under supervisord or systemd.  Cases: metrics only
(``[log] access = off``), text lines, JSON lines.  It prints the median of
five runs per case in microseconds per request; compare with a whole GET of
a 4 KiB object, about 300 microseconds of one front end's CPU here (its CPU
time over a ``wrk`` run).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, where
# bench/http.py would hide the standard library's ``http``.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

from packrat.core import logs, metrics_directory
from packrat.core.settings import Settings

REQUESTS = 10_000
RUNS = 5


class Traffic:
    """The coordinator client's part of the hook (counts only)."""

    def traffic(self, received: int, sent: int) -> None:
        pass


class Dependencies:
    def __init__(self, counters) -> None:
        self.metrics = counters
        self.coordinator = Traffic()
        self.number = 0


def time_case(request_log) -> float:
    """Microseconds per request: the median of ``RUNS`` runs of ``REQUESTS`` calls."""
    runs = []
    for _ in range(RUNS):
        started = time.perf_counter()
        for n in range(REQUESTS):
            request_log.record(
                "/{key}",
                "127.0.0.1",
                "GET",
                f"/builds/{n % 100}.tar.gz",
                "curl/8.5.0",
                200,
                4096,
                0,
                0.0008,
            )
        runs.append((time.perf_counter() - started) / REQUESTS * 1e6)
        logs.flush_logs()
    return statistics.median(runs)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="packrat-obs-") as temp:
        work = Path(temp)
        metrics_directory.use_directory(work / "metrics")
        # Imported after the directory is set, as in a front end.
        from packrat.frontend.accesslog import RequestLog
        from packrat.frontend.metrics import FrontendMetrics

        request_log = RequestLog(Dependencies(FrontendMetrics()))
        log_file = open(work / "stderr.log", "w")  # noqa: SIM115 (closed below)
        saved = os.dup(2)
        os.dup2(log_file.fileno(), 2)
        try:
            results = {}
            for name, settings in (
                ("metrics only (access = off)", Settings(log_access=False)),
                ("metrics + text access line", Settings()),
                ("metrics + JSON access line", replace(Settings(), log_format="json")),
            ):
                logs.configure("frontend 0", settings, buffered=True)
                results[name] = time_case(request_log)
        finally:
            logs.flush_logs()
            os.dup2(saved, 2)
            os.close(saved)
            log_file.close()
        lines = len((work / "stderr.log").read_text().splitlines())
    print(f"{REQUESTS:,} requests x {RUNS} runs, median; stderr to a file ({lines:,} lines)")
    for name, micros in results.items():
        print(f"  {name:30s} {micros:6.1f} us/request", file=sys.stdout)


if __name__ == "__main__":
    main()
