"""inotify on the 256 fan-out directories: which object files arrive and leave.

A commit renames its file into a fan-out directory (``IN_MOVED_TO``); an
eviction, a delete or a corrupt file's drop unlinks one (``IN_DELETE``).  The
kernel queues events in order; when its queue overflows, ``read`` yields
``LOST``: walk the directories again.  ``objects/`` itself is watched too:
a fan-out directory removed and made again (the coordinator makes it again
at its next commit there) is a new directory, watched again at once and
reported as ``DIRECTORY``, so its descriptor is reopened and it is walked.
"""

from __future__ import annotations

from collections.abc import Iterator

from inotify_simple import INotify, flags

from packrat.store import Layout
from packrat.store.layout import FANOUT
from packrat.store.scan import OBJECT_NAME

ARRIVED, LEFT, LOST, DIRECTORY = "arrived", "left", "lost", "directory"
_FILES = flags.MOVED_TO | flags.DELETE | flags.ONLYDIR | flags.DONT_FOLLOW
_DIRECTORIES = flags.CREATE | flags.MOVED_TO | flags.ONLYDIR | flags.DONT_FOLLOW
_FANOUT = frozenset(FANOUT)


class Watcher:
    """One inotify instance watching ``objects/`` and every fan-out directory in it."""

    def __init__(self, layout: Layout) -> None:
        self.layout = layout
        self._inotify = INotify(nonblocking=True)
        self.fd = self._inotify.fileno()
        self._top = self._inotify.add_watch(layout.objects, _DIRECTORIES)
        self._names: dict[int, str] = {}  # watch descriptor -> fan-out directory
        for name in FANOUT:
            self._watch(name)

    def _watch(self, name: str) -> None:
        try:
            wd = self._inotify.add_watch(self.layout.objects / name, _FILES)
        except OSError:
            return  # not there now: its creation will be an event
        self._names[wd] = name

    def read(self) -> Iterator[tuple[str, str]]:
        """``(kind, name)`` per event: ``ARRIVED``/``LEFT`` with an object file's name,
        ``DIRECTORY`` with a fan-out directory's, ``LOST`` (events were lost)."""
        for event in self._inotify.read(timeout=0):
            if event.mask & flags.Q_OVERFLOW:
                yield LOST, ""
            elif event.wd == self._top:
                if event.mask & flags.ISDIR and event.name in _FANOUT:
                    self._watch(event.name)
                    yield DIRECTORY, event.name
            elif event.mask & flags.IGNORED:
                self._names.pop(event.wd, None)
            elif OBJECT_NAME.fullmatch(event.name):
                yield (ARRIVED if event.mask & flags.MOVED_TO else LEFT), event.name

    def close(self) -> None:
        self._inotify.close()
