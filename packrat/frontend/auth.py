"""Access control: bearer tokens and HTTP Basic against an htpasswd file.

Off by default; ``[auth] enabled = true`` turns it on.  Three rights exist:
``read`` (``GET``/``HEAD`` of objects, ``/exists/``, the status page),
``write`` (``POST``, ``PUT``, ``DELETE``), which implies ``read``, and
``list``: seeing key names (``GET /api/keys``, WebDAV listings, the recent
uploads of the status page and ``/api/stats``), which implies ``read`` too.
Build-cache keys are often meant to be unguessable, so no credential lists
unless it is given the right (``list_tokens``, ``list_users``), not even
``anonymous_read``'s nobody; purging by prefix needs both ``write`` and
``list``.

* Bearer tokens (``Authorization: Bearer <token>``) come from
  ``read_tokens``, ``write_tokens`` and ``list_tokens`` (a token in several
  lists has each of their rights).  The offered token is compared with
  every configured one in constant time (``hmac.compare_digest``), all of
  them, so timing tells nothing about which or how much matched.  A token
  found valid is then remembered as Basic credentials are (below).  The
  usual header, ``Bearer <token>`` with one configured token as written, is
  answered first by one dictionary lookup of the whole header: tokens are
  configuration, in this process's memory in clear already, and the
  lookup's time depends on the offered header's hash under the
  interpreter's per-process random key, not on how much of a token it
  shares (a string comparison runs only when the full hashes are equal).
  Anything else (another spelling, a wrong token) takes the way above.
* HTTP Basic checks ``user:password`` against an htpasswd-style file, as
  bazel-remote does: bcrypt (``$2a$``/``$2b$``/``$2y$``, ``htpasswd -B``) or
  sha-crypt (``$5$``/``$6$``, ``mkpasswd -m sha-512``) hashes.  Hashing runs
  on a small thread pool so the event loop never waits on it (a bcrypt
  check costs 1.6 ms of CPU at ``htpasswd -B``'s default cost of 5, 51 ms at
  10, 200 ms at 12, measured here).  A verified ``Authorization`` value is
  remembered, keyed by a keyed BLAKE2b MAC of it under a per-process random
  key (never in clear), in a bounded LRU of ``MAX_REMEMBERED`` entries, so a
  password is never hashed again per request: a client that sends the same
  credentials on every request costs one hash, then one MAC and one
  dictionary lookup per request.  Only what was found valid is remembered
  (wrong credentials are checked each time, and cannot fill it).  Unknown
  users are checked against a dummy hash, so they take as long as known ones.

Changes take effect without a restart for the htpasswd file: it is looked
at (``os.stat``) at most once a second, re-read when its size, inode or
modification time changed, and the remembered credentials are forgotten at
that moment, so a removed user or a changed password stops working within a
second.  Tokens are configuration (``packrat.ini``): a changed token list
takes effect when the front ends restart (``packrat serve`` restarts them
all; the previous list is forgotten with the process).

``check`` answers at once when it can (no credentials needed, a token, a
remembered Basic credential), and returns an awaitable only when a password
must be hashed; the object path calls it as soon as the headers arrive,
before any body byte is read.

Missing or wrong credentials give 401 with ``WWW-Authenticate`` challenges
for the schemes that are configured; valid credentials without the needed
right give 403.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import os
import secrets
import time
from collections import OrderedDict
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packrat.core.errors import Forbidden, Unauthorized
from packrat.core.htpasswd import load_htpasswd, verify_password
from packrat.core.settings import Settings

log = logging.getLogger("packrat.frontend")

READ = "read"
WRITE = "write"
LIST = "list"
READ_ONLY = frozenset((READ,))
READ_WRITE = frozenset((READ, WRITE))
RELOAD_EVERY = 1.0  # seconds between two looks at the htpasswd file
REALM = "packrat"
MAX_REMEMBERED = 1024  # verified credentials (Basic and tokens) kept per front end
HASH_THREADS = 2


class Authenticator:
    """Decides whether a request's ``Authorization`` grants a right."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.auth_enabled
        self.anonymous_read = settings.auth_anonymous_read
        self._read_tokens = [t.encode() for t in settings.auth_read_tokens]
        self._write_tokens = [t.encode() for t in settings.auth_write_tokens]
        self._list_tokens = [t.encode() for t in settings.auth_list_tokens]
        self._htpasswd = Path(settings.auth_htpasswd) if settings.auth_htpasswd else None
        self._users: dict[str, str] = {}
        self._seen: tuple[int, int, int] | None = None  # the file's (inode, size, mtime)
        self._looked_at = 0.0
        if self._htpasswd is not None:
            self._users = load_htpasswd(self._htpasswd)
            self._seen = _identity(self._htpasswd)
            self._looked_at = time.monotonic()
        self._write_users = set(settings.auth_write_users)
        self._list_users = set(settings.auth_list_users)
        self._remembered: OrderedDict[bytes, frozenset[str]] = OrderedDict()
        self._bearer = {  # the usual header of each token -> its rights
            f"Bearer {token}": self._token_rights(token.encode())
            for token in (
                *settings.auth_read_tokens,
                *settings.auth_write_tokens,
                *settings.auth_list_tokens,
            )
        }
        self._mac = hashlib.blake2b(key=secrets.token_bytes(32), digest_size=16)
        self._executor: ThreadPoolExecutor | None = None
        challenges = []
        if self._read_tokens or self._write_tokens or self._list_tokens:
            challenges.append(f'Bearer realm="{REALM}"')
        if self._htpasswd is not None:
            challenges.append(f'Basic realm="{REALM}", charset="UTF-8"')
        self.challenges = tuple(challenges)

    @property
    def public_reads(self) -> bool:
        """Whether anyone may read (shared caches may then store objects)."""
        return not self.enabled or self.anonymous_read

    def check(self, right: str, authorization: str | None) -> Awaitable[None] | None:
        """Return None if ``authorization`` grants ``right``; raise 401 or 403 otherwise.

        An awaitable (doing the same) when a Basic password must be hashed.
        """
        if not self.enabled or (right == READ and self.anonymous_read):
            return None
        if not authorization:
            raise Unauthorized("credentials are required", self.challenges)
        rights = self._bearer.get(authorization)
        if rights is not None:
            if right in rights:
                return None
            return self._grant(right, rights)
        if self._htpasswd is not None:
            self._maybe_reload()  # a changed file: what was remembered is forgotten
        mac = self._mac.copy()  # keyed already: no key set-up per request
        mac.update(authorization.encode(errors="replace"))
        fingerprint = mac.digest()
        remembered = self._remembered
        rights = remembered.get(fingerprint)
        if rights is not None:
            remembered.move_to_end(fingerprint)
            if right in rights:  # the usual case, without a call
                return None
            return self._grant(right, rights)
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "bearer" and credentials:
            rights = self._token_rights(credentials.encode("utf-8", "replace"))
            if rights is not None:
                self._remember(fingerprint, rights)
            return self._grant(right, rights)
        if scheme == "basic" and credentials and self._htpasswd is not None:
            return self._check_basic(right, credentials, fingerprint)
        raise Unauthorized("the credentials are not valid", self.challenges)

    async def require(self, right: str, authorization: str | None) -> None:
        """``check``, awaited: for handlers."""
        waiting = self.check(right, authorization)
        if waiting is not None:
            await waiting

    async def allows(self, right: str, authorization: str | None) -> bool:
        """Whether ``authorization`` grants ``right`` (for what a page shows, not refuses)."""
        try:
            await self.require(right, authorization)
        except (Unauthorized, Forbidden):
            return False
        return True

    def _grant(self, right: str, rights: frozenset[str] | None) -> None:
        if rights is None:
            raise Unauthorized("the credentials are not valid", self.challenges)
        if right not in rights:
            what = "listing keys" if right == LIST else f"{right}s"
            raise Forbidden(f"these credentials do not allow {what}")

    def _token_rights(self, offered: bytes) -> frozenset[str] | None:
        rights: set[str] = set()
        for tokens, granted in (
            (self._read_tokens, READ_ONLY),
            (self._write_tokens, READ_WRITE),
            (self._list_tokens, frozenset((READ, LIST))),
        ):
            match = False
            for token in tokens:  # every comparison runs: no early exit
                match |= hmac.compare_digest(token, offered)
            if match:
                rights |= granted
        return frozenset(rights) or None

    async def _check_basic(self, right: str, credentials: str, fingerprint: bytes) -> None:
        rights = await self._basic_rights(credentials)
        if rights is not None:
            self._remember(fingerprint, rights)
        self._grant(right, rights)

    def _remember(self, fingerprint: bytes, rights: frozenset[str]) -> None:
        self._remembered[fingerprint] = rights
        while len(self._remembered) > MAX_REMEMBERED:
            self._remembered.popitem(last=False)

    async def _basic_rights(self, credentials: str) -> frozenset[str] | None:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        user, sep, password = decoded.partition(":")
        if not sep:
            return None
        users = self._users
        hashed = users.get(user)
        dummy = next(iter(users.values()), "")  # unknown users take as long as known ones
        if self._executor is None:
            self._executor = ThreadPoolExecutor(HASH_THREADS, "packrat-auth")
        ok = await asyncio.get_running_loop().run_in_executor(
            self._executor, verify_password, password, hashed or dummy
        )
        if not ok or hashed is None or self._users is not users:
            return None  # wrong, unknown, or checked against a file replaced meanwhile
        rights = {READ}
        if "*" in self._write_users or user in self._write_users:
            rights.add(WRITE)
        if "*" in self._list_users or user in self._list_users:
            rights.add(LIST)
        return frozenset(rights)

    def _maybe_reload(self) -> None:
        """Re-read the htpasswd file if it changed (looked at once a second at most)."""
        now = time.monotonic()
        if now - self._looked_at < RELOAD_EVERY or self._htpasswd is None:
            return
        self._looked_at = now
        try:
            seen = _identity(self._htpasswd)
        except OSError as e:
            log.error("cannot read %s: %s; keeping the users read before", self._htpasswd, e)
            return
        if seen == self._seen:
            return
        try:
            users = load_htpasswd(self._htpasswd)
        except (OSError, ValueError) as e:
            log.error("cannot reload %s: %s; keeping the users read before", self._htpasswd, e)
            return
        self._users = users
        self._seen = seen
        self._remembered.clear()
        log.info("reloaded %s: %d users", self._htpasswd, len(users))


def _identity(path: Path) -> tuple[int, int, int]:
    info = os.stat(path)
    return info.st_ino, info.st_size, info.st_mtime_ns
