"""Nx's self-hosted remote cache, served around the object path.

Nx (20.8 and later) sends ``GET``/``PUT <server>/v1/cache/<hash>`` with a
bearer token (``NX_SELF_HOSTED_REMOTE_CACHE_SERVER``,
``NX_SELF_HOSTED_REMOTE_CACHE_ACCESS_TOKEN``); with the server URL's path,
the key is ``<prefix>/v1/cache/<hash>``.  Its OpenAPI specification asks of
such a record's route what the object path does not do by itself:

* errors in ``text/plain`` (the message Nx shows its user): Nx prints
  "Unauthorized: <message>" for a 401 only when its ``Content-Type`` is
  exactly ``text/plain``, and "Misconfigured remote cache endpoint" else;
* 403 for a credential that may not write (a read-only token), which Nx
  takes as "not stored" and goes on: the object path's access control;
* 409 for "Cannot override an existing record", which the specification
  makes optional and Nx also takes as "not stored".  Packrat answers it: a
  record is never replaced (``ObjectPath.delegate(replace=False)``, checked
  before the body is read and again, atomically, at the commit).  Nx's hash
  covers every input of a task, so a second upload under it can only be
  the same outputs again, or different ones from a machine that should not
  be trusted: a team sharing a cache expects what its first build stored
  to stay, and no later writer to swap it.  (Who may store first is the
  credentials' matter: CVE-2025-36852 is that race in bucket caches; give
  untrusted builds, pull requests, a read-only token.)  A record is
  replaced by removing it first (``DELETE``, ``packrat rm``, write right).

A path is such a record when its last three segments are ``v1``, ``cache``
and a hash (letters, digits, ``_-``); any other path is a key as any other.
"""

from __future__ import annotations

import re

from packrat.core.errors import PackratError
from packrat.frontend import envelope
from packrat.frontend.http1 import Delegate, Exchange
from packrat.frontend.objects import ObjectPath

MARK = "/v1/cache/"  # what the router looks for
ROUTE = "/{prefix}/v1/cache/{hash}"  # the route's name in metrics
_RECORD = re.compile(r"/(?:.+/)?v1/cache/[A-Za-z0-9_-]{1,128}")
PLAIN = "text/plain"  # exactly: Nx compares the whole Content-Type


def error_answer(error: PackratError) -> tuple[int, list[tuple[str, str]], bytes]:
    """``envelope.error_answer`` as Nx reads it: the same status and headers, the
    message in ``text/plain``."""
    body = error.message.encode() + b"\n"
    fields = envelope.common_fields() + envelope.error_fields(error)
    fields += [("Content-Type", PLAIN), envelope.NO_STORE, ("Content-Length", str(len(body)))]
    return error.status, fields, body


class Nx:
    """Routes Nx's records (see the module's doc)."""

    def __init__(self, objects: ObjectPath) -> None:
        self.objects = objects

    def route(self, exchange: Exchange) -> Delegate | None:
        """The object path's delegate for an Nx record, or None for a path that is not one."""
        path = exchange.request.path
        if not _RECORD.fullmatch(path):
            return None
        exchange.error_answer = error_answer
        return self.objects.delegate(exchange, path[1:], route=ROUTE, replace=False)
