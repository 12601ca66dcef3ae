"""htpasswd files: reading ``user:hash`` lines and checking a password against a hash.

Here rather than in the front end's ``auth`` because loading the settings
checks the file too (``[auth] htpasswd``), and settings are a leaf.  bcrypt
(``$2a$``/``$2b$``/``$2y$``, ``htpasswd -B``) and sha-crypt (``$5$``/``$6$``,
``mkpasswd -m sha-512``) hashes are accepted, as bazel-remote does.
"""

from __future__ import annotations

from pathlib import Path

import bcrypt
from passlib.hash import sha256_crypt, sha512_crypt

BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
SHA_CRYPT = {"$5$": sha256_crypt, "$6$": sha512_crypt}


def load_htpasswd(path: Path) -> dict[str, str]:
    """Read ``user:hash`` lines (``#`` comments and blank lines skipped).

    Raises ``ValueError`` naming the first bad line.
    """
    users: dict[str, str] = {}
    text = Path(path).read_text(encoding="utf-8")
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, hashed = line.partition(":")
        if not sep or not user or not hashed:
            raise ValueError(f"{path} line {number}: expected user:hash")
        if not (hashed.startswith(BCRYPT_PREFIXES) or hashed[:3] in SHA_CRYPT):
            raise ValueError(
                f"{path} line {number}: unsupported hash for user {user!r} "
                "(use bcrypt, htpasswd -B, or sha-crypt $5$/$6$)"
            )
        users[user] = hashed
    return users


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches the bcrypt or sha-crypt ``hashed``."""
    secret = password.encode("utf-8")
    try:
        if hashed.startswith(BCRYPT_PREFIXES):
            # bcrypt uses at most 72 bytes (htpasswd -B truncates too).
            return bcrypt.checkpw(secret[:72], hashed.encode("ascii"))
        scheme = SHA_CRYPT.get(hashed[:3])
        return scheme is not None and bool(scheme.verify(secret, hashed))
    except (ValueError, TypeError):
        return False
