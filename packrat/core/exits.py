"""The exit statuses of the ``packrat`` command: one table for every subcommand.

Scripts rely on the client commands' statuses (0-7, 130: docs/client.md
lists them); supervisord, systemd and ``packrat serve`` act on the server roles'
(``FATAL``).  The server-side situations take values from BSD's
``sysexits.h`` where one fits, so no status means two things.  Any uncaught
exception exits with Python's 1, which is why no server situation uses it.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """What the ``packrat`` command's exit status means, whichever subcommand ran."""

    OK = 0  # done; `exists`: the key is present; `fsck`: nothing corrupt remains
    NOT_FOUND = 1  # no object under the key (`exists`: absent; `get`, `rm`: 404)
    USAGE = 2  # bad arguments (argparse's status too)
    REFUSED = 3  # the server refused the request (its error code is printed)
    DENIED = 4  # 401 unauthorized or 403 forbidden: a missing, wrong or read-only token
    UNAVAILABLE = 5  # unreachable, cut off, timed out, not Packrat's answer, or 503 after retries
    INTEGRITY = 6  # bytes that do not match their sha256 (nothing is kept)
    LOCAL = 7  # a local file could not be read or written
    CORRUPT_LEFT = 65  # EX_DATAERR: `fsck` found corrupt objects it did not remove
    CANNOT_LISTEN = 71  # EX_OSERR: the HTTP address is taken or does not resolve
    BROKEN_ROOT = 73  # EX_CANTCREAT: the cache root's directories cannot be made or used
    IN_USE = 75  # EX_TEMPFAIL: the cache root is held by another instance
    CONFIG = 78  # EX_CONFIG: a bad configuration file
    INTERRUPTED = 130  # Ctrl-C


# A server role that exits with one of these makes ``packrat serve`` stop the
# group rather than restart it, and systemd not restart it: restarting cannot help.
FATAL = (ExitStatus.CONFIG, ExitStatus.CANNOT_LISTEN, ExitStatus.BROKEN_ROOT)


class CannotListen(Exception):
    """The HTTP address cannot be bound (in use, or the host does not resolve)."""
