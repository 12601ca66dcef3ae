"""Access control: bearer tokens and HTTP Basic against an htpasswd file.

Off by default; ``[auth] enabled = true`` turns it on.  Two rights exist:
``read`` (``GET``/``HEAD`` of objects, ``/exists/``, the status page) and
``write`` (``POST``, ``PUT``, ``DELETE``), which implies ``read``.

* Bearer tokens (``Authorization: Bearer <token>``) come from
  ``read_tokens`` and ``write_tokens``.  The offered token is compared with
  every configured one in constant time (``hmac.compare_digest``), all of
  them, so timing tells nothing about which or how much matched.
* HTTP Basic checks ``user:password`` against an htpasswd-style file, as
  bazel-remote does: bcrypt (``$2a$``/``$2b$``/``$2y$``, ``htpasswd -B``) or
  sha-crypt (``$5$``/``$6$``, ``mkpasswd -m sha-512``) hashes.  Hashing runs
  on a small thread pool so the event loop never waits on it; a verified
  password is remembered (as an HMAC under a per-process random key, never
  in clear) so a client that sends it on every request costs one hash.
  Unknown users are checked against a dummy hash, so they take as long as
  known ones.

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
import secrets
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor

from packrat.core.errors import Forbidden, Unauthorized
from packrat.core.htpasswd import load_htpasswd, verify_password
from packrat.core.settings import Settings

READ = "read"
WRITE = "write"
REALM = "packrat"
MAX_REMEMBERED = 1024  # verified Basic credentials kept per front end
HASH_THREADS = 2


class Authenticator:
    """Decides whether a request's ``Authorization`` grants a right."""

    def __init__(self, settings: Settings) -> None:
        self.enabled = settings.auth_enabled
        self.anonymous_read = settings.auth_anonymous_read
        self._read_tokens = [t.encode() for t in settings.auth_read_tokens]
        self._write_tokens = [t.encode() for t in settings.auth_write_tokens]
        self._users = load_htpasswd(settings.auth_htpasswd) if settings.auth_htpasswd else {}
        self._write_users = set(settings.auth_write_users)
        # Checked when the user is unknown, so that answer takes as long as a wrong password.
        self._dummy_hash = next(iter(self._users.values()), "")
        self._remembered: OrderedDict[bytes, None] = OrderedDict()
        self._key = secrets.token_bytes(32)
        self._executor: ThreadPoolExecutor | None = None
        challenges = []
        if self._read_tokens or self._write_tokens:
            challenges.append(f'Bearer realm="{REALM}"')
        if self._users:
            challenges.append(f'Basic realm="{REALM}", charset="UTF-8"')
        self.challenges = tuple(challenges)

    @property
    def public_reads(self) -> bool:
        """Whether anyone may read (shared caches may then store objects)."""
        return not self.enabled or self.anonymous_read

    async def require(self, right: str, authorization: str | None) -> None:
        """Return if ``authorization`` grants ``right``; raise 401 or 403 otherwise."""
        if not self.enabled or (right == READ and self.anonymous_read):
            return
        if not authorization:
            raise Unauthorized("credentials are required", self.challenges)
        rights = await self.rights(authorization)
        if rights is None:
            raise Unauthorized("the credentials are not valid", self.challenges)
        if right not in rights:
            raise Forbidden(f"these credentials do not allow {right}s")

    async def rights(self, authorization: str) -> frozenset[str] | None:
        """The rights ``authorization`` grants, or None if it proves nobody."""
        scheme, _, credentials = authorization.strip().partition(" ")
        scheme = scheme.lower()
        credentials = credentials.strip()
        if scheme == "bearer" and credentials:
            return self._token_rights(credentials.encode("utf-8", "replace"))
        if scheme == "basic" and credentials and self._users:
            return await self._basic_rights(credentials)
        return None

    def _token_rights(self, offered: bytes) -> frozenset[str] | None:
        write = read = False
        for token in self._write_tokens:  # every comparison runs: no early exit
            write |= hmac.compare_digest(token, offered)
        for token in self._read_tokens:
            read |= hmac.compare_digest(token, offered)
        if write:
            return frozenset((READ, WRITE))
        return frozenset((READ,)) if read else None

    async def _basic_rights(self, credentials: str) -> frozenset[str] | None:
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        user, sep, password = decoded.partition(":")
        if not sep:
            return None
        hashed = self._users.get(user)
        fingerprint = hmac.new(
            self._key, f"{user}\0{password}\0{hashed}".encode(), hashlib.sha256
        ).digest()
        if fingerprint in self._remembered:
            self._remembered.move_to_end(fingerprint)
            ok = True
        else:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(HASH_THREADS, "packrat-auth")
            ok = await asyncio.get_running_loop().run_in_executor(
                self._executor, verify_password, password, hashed or self._dummy_hash
            )
            ok = ok and hashed is not None
            if ok:
                self._remembered[fingerprint] = None
                while len(self._remembered) > MAX_REMEMBERED:
                    self._remembered.popitem(last=False)
        if not ok:
            return None
        if "*" in self._write_users or user in self._write_users:
            return frozenset((READ, WRITE))
        return frozenset((READ,))
