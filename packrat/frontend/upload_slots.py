"""How many uploads one front end receives at once, and cutting the stalled ones.

``UploadSlots`` bounds the uploads one front end receives at once
(``[frontend] max_uploads``) and frees the slot of an upload whose body
made no progress for ``idle_timeout`` seconds: a client that sends a few
bytes and stalls cannot hold a slot for the whole ``body_timeout``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from tornado.ioloop import PeriodicCallback

from packrat.core.errors import TooBusy

log = logging.getLogger("packrat.frontend")


class Slot:
    """One upload's place among the process's uploads, and its progress."""

    __slots__ = ("cut_off", "last_progress", "receiving")

    def __init__(self, cut_off: Callable[[], None]) -> None:
        self.cut_off = cut_off  # removes the staging file, then closes the connection
        self.last_progress = time.monotonic()
        self.receiving = True  # the body is still arriving


class UploadSlots:
    """At most ``most`` uploads at once in this process (0: no limit); stalled ones are cut.

    ``report(n)`` hears of every change of the number of uploads (a gauge).
    """

    def __init__(
        self, most: int, idle_timeout: float, report: Callable[[int], None] | None = None
    ) -> None:
        self.most = most
        self.idle_timeout = idle_timeout
        self.report = report
        self._slots: set[Slot] = set()
        self._watchdog = PeriodicCallback(self._cut_stalled, min(idle_timeout / 4, 1.0) * 1000)

    def __len__(self) -> int:
        return len(self._slots)

    def take(self, cut_off: Callable[[], None]) -> Slot:
        """A slot, or ``TooBusy``; ``cut_off`` ends the upload if its body stalls."""
        if self.most and len(self._slots) >= self.most:
            raise TooBusy(f"this server is already receiving {self.most} uploads; retry shortly")
        slot = Slot(cut_off)
        self._slots.add(slot)
        if self.report is not None:
            self.report(len(self._slots))
        if not self._watchdog.is_running():
            self._watchdog.start()
        return slot

    def give_back(self, slot: Slot) -> None:
        if slot not in self._slots:
            return
        self._slots.remove(slot)
        if self.report is not None:
            self.report(len(self._slots))

    def _cut_stalled(self) -> None:
        """The watchdog's tick; it stops itself once no upload holds a slot (stopping and
        starting it with every small upload cost two timers an upload)."""
        if not self._slots:
            self._watchdog.stop()
            return
        now = time.monotonic()
        for slot in list(self._slots):
            if slot.receiving and now - slot.last_progress > self.idle_timeout:
                log.info("an upload sent nothing for %.0fs; closing it", self.idle_timeout)
                self.give_back(slot)
                slot.cut_off()
