"""One instance per cache root: an exclusive ``flock`` on ``state/lock``.

Two instances on one root would each sweep the other's staging files and
keep an index of their own over one ``objects/``, so the disk could hold
twice ``max_size``.  The lock file names its holder for the error message.
``packrat serve`` takes the lock and hands the open file to the coordinator
it starts (``PACKRAT_ROOT_LOCK_FD``): a lock held through an inherited
descriptor is the same lock, so the coordinator can take it again, while any
other process is refused.
"""

from __future__ import annotations

import fcntl
import os

from packrat.core.numbers import whole_number
from packrat.store.layout import Layout

INHERITED_FD = "PACKRAT_ROOT_LOCK_FD"


class RootLocked(Exception):
    """Another process holds the cache root."""


def lock_root(layout: Layout, role: str) -> int:
    """Take the root's lock for this process; return its fd (keep it open)."""
    path = layout.lock_path()
    inherited = _inherited_fd(path)
    fd = inherited if inherited is not None else os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise RootLocked(f"the cache root {layout.root} is in use by {holder}") from None
    if inherited is None:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} (packrat {role})\n".encode(), 0)
    os.set_inheritable(fd, False)
    return fd


def _inherited_fd(path: os.PathLike[str] | str) -> int | None:
    """The lock file's descriptor handed down by ``packrat serve``, if it is one."""
    text = os.environ.pop(INHERITED_FD, "")
    fd = whole_number(text)
    if fd is None:
        return None
    try:
        same = os.path.samestat(os.fstat(fd), os.stat(path))
    except OSError:
        return None
    return fd if same else None
