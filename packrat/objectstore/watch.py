"""inotify on the 256 fan-out directories: which object files arrive and leave.

A commit renames its file into a fan-out directory (``IN_MOVED_TO``); an
eviction, a delete or a corrupt file's drop unlinks one (``IN_DELETE``).  The
kernel queues events in order; when its queue overflows, or a watched
directory is replaced, ``read`` yields ``(None, True)``: walk the directories
again.
"""

from __future__ import annotations

from collections.abc import Iterator

from inotify_simple import INotify, flags

from packrat.store import Layout
from packrat.store.layout import FANOUT
from packrat.store.scan import OBJECT_NAME

_WATCHED = flags.MOVED_TO | flags.DELETE | flags.ONLYDIR | flags.DONT_FOLLOW
_LOST = flags.Q_OVERFLOW | flags.IGNORED


class Watcher:
    """One inotify instance watching every fan-out directory of ``layout``."""

    def __init__(self, layout: Layout) -> None:
        self._inotify = INotify(nonblocking=True)
        self.fd = self._inotify.fileno()
        for name in FANOUT:
            self._inotify.add_watch(layout.objects / name, _WATCHED)

    def read(self) -> Iterator[tuple[str | None, bool]]:
        """``(object file name, arrived)`` per event; ``(None, True)``: events were lost."""
        for event in self._inotify.read(timeout=0):
            if event.mask & _LOST:
                yield None, True
            elif OBJECT_NAME.fullmatch(event.name):
                yield event.name, bool(event.mask & flags.MOVED_TO)

    def close(self) -> None:
        self._inotify.close()
