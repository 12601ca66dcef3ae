"""The open-file limit: raised to the hard limit at start, as nginx and Go's runtime do.

A front end holds one descriptor per connection, and every process holds
the cache's 257 directories open (``store.layout``); the common soft limit
of 1024 would cap a front end at a few hundred clients for no reason.
"""

from __future__ import annotations

import logging
import resource

log = logging.getLogger("packrat")


def raise_open_file_limit() -> int:
    """Raise the soft limit on open files to the hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as e:
            log.warning("could not raise the open-file limit from %d: %s", soft, e)
    return soft
