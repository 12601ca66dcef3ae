"""Bazel's key scheme on the object path: what an upload under ``cas/`` must hold.

``check_upload`` runs on every upload once its body is staged, before it is
sealed and committed (``uploads.Upload.commit``), whichever route brought it
(``PUT``/``POST /<key>``, the status page's form):

* a key under a ``cas`` segment, however spelled (``buildtools.cas``), is
  content-addressed: the body must hash to the digest it names, by sha256
  (computed as the body streamed in, so free) or else by BLAKE3 (Bazel's
  ``--digest_function=blake3``: the staged body is read back on a thread and
  hashed, a cost only such uploads pay); otherwise 400 ``checksum_mismatch``
  and nothing is stored, so no build can be served a poisoned output.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import blake3

from packrat.buildtools.cas import body_matches, content_address
from packrat.core.errors import ChecksumMismatch
from packrat.store import StagedFile

if TYPE_CHECKING:
    from packrat.frontend.dependencies import Dependencies


async def check_upload(frontend: Dependencies, key: str, staged: StagedFile) -> None:
    """Refuse a staged body that its key's scheme does not allow (see the module's doc)."""
    address = content_address(key)
    if address is None:
        return
    sha256 = staged.hexdigest()
    if address == sha256:
        return
    if not body_matches(address, sha256, await asyncio.to_thread(_blake3, staged)):
        raise ChecksumMismatch(
            f"a key under cas/ names its content: this upload's sha256 is {sha256}, and its "
            "BLAKE3 differs too; nothing was stored"
        )


def _blake3(staged: StagedFile) -> str:
    hasher = blake3.blake3()
    for chunk in staged.data():
        hasher.update(chunk)
    return hasher.hexdigest()
