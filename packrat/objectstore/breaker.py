"""A circuit breaker: after a few failures in a row, stop asking the store for a while.

A store that is down or hangs would otherwise cost every miss a timeout;
with the breaker open, misses answer 404 at once and the uploader waits.
After ``reset_after`` seconds one request is let through as a probe: its
success closes the breaker, its failure opens it again for twice as long
(up to ``max_reset_after``).  Thread-safe: store requests run on threads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class Breaker:
    """Counts consecutive failures; ``allow`` says whether a request may go."""

    def __init__(
        self,
        failures: int = 3,
        reset_after: float = 2.0,
        max_reset_after: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.threshold = failures
        self.first_reset = reset_after
        self.max_reset = max_reset_after
        self.clock = clock
        self.state = CLOSED
        self.failures = 0  # consecutive, while closed
        self.reset_after = reset_after
        self.reopen_at = 0.0
        self.opened = 0  # times it opened (a counter for metrics and tests)
        self._lock = threading.Lock()

    @property
    def is_closed(self) -> bool:
        return self.state == CLOSED

    def allow(self) -> bool:
        """Whether a request may go now (when open, one probe once the wait is over)."""
        with self._lock:
            if self.state == CLOSED:
                return True
            if self.state == OPEN and self.clock() >= self.reopen_at:
                self.state = HALF_OPEN
                return True
            return False

    def success(self) -> None:
        with self._lock:
            self.state = CLOSED
            self.failures = 0
            self.reset_after = self.first_reset

    def failure(self) -> None:
        with self._lock:
            if self.state == HALF_OPEN:
                self.reset_after = min(self.reset_after * 2, self.max_reset)
                self._open()
            elif self.state == CLOSED:
                self.failures += 1
                if self.failures >= self.threshold:
                    self._open()

    def seconds_until_probe(self) -> float:
        with self._lock:
            if self.state != OPEN:
                return 0.0
            return max(self.reopen_at - self.clock(), 0.0)

    def _open(self) -> None:
        self.state = OPEN
        self.failures = 0
        self.reopen_at = self.clock() + self.reset_after
        self.opened += 1
