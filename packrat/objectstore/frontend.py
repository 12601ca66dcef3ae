"""The object store's part in the object path (``frontend.objects``): deletes and purges.

The read-through itself is ``readthrough.ReadThrough``, the object path's
second tier (``ObjectPath.second_tier``): on a local miss the path asks it
for a ``HEAD``'s or an ``exists``'s metadata (``head``) and for a ``GET``'s
object (``fetch``), and answers from what it gets as for a local object.
An ``exists`` miss asks ``head`` too.  A ``DELETE`` goes through ``delete``
below instead of the coordinator's, and a purge by prefix (``/api/keys``,
WebDAV) through ``purge``, which deletes each key as ``delete`` does.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from packrat.core.errors import NotFound
from packrat.core.keys import InvalidKey, validate_key

if TYPE_CHECKING:
    from packrat.frontend.dependencies import Dependencies as Frontend


async def delete(frontend: Frontend, key: str) -> None:
    """Delete ``key`` in the store (through the uploader, which orders it after the key's
    pending upload), then on the disk.  ``NotFound`` when neither had it;
    ``ObjectStoreUnavailable`` (503, nothing deleted) when the store cannot be reached."""
    assert frontend.uploader is not None
    in_store = await frontend.uploader.delete(key)
    try:
        await frontend.coordinator.delete(key)
    except NotFound:
        if not in_store:
            raise


PURGE_CONCURRENCY = 16  # deletes of one purge under way at once


async def purge(frontend: Frontend, prefix: str, limit: int) -> tuple[list[str], bool]:
    """One page of a purge by prefix: the first ``limit`` keys under ``prefix`` held on this
    disk or in the store (other nodes' uploads included), each deleted as ``delete`` does;
    those deleted, and whether more remain.  ``ObjectStoreUnavailable`` stops it (a retry
    goes on where it stopped)."""
    assert frontend.uploader is not None
    local, local_more = await frontend.coordinator.list_keys(prefix, "", limit)
    stored, stored_more = await frontend.uploader.list(prefix, limit)
    keys = sorted({*local, *stored})  # code-point order is S3's UTF-8 byte order
    more = local_more or stored_more or len(keys) > limit
    removed: list[str] = []
    for start in range(0, min(len(keys), limit), PURGE_CONCURRENCY):
        batch = keys[start : min(start + PURGE_CONCURRENCY, limit)]
        found = await asyncio.gather(*(_delete_any(frontend, key) for key in batch))
        removed += [key for key, was in zip(batch, found, strict=True) if was]
    return removed, more


async def _delete_any(frontend: Frontend, key: str) -> bool:
    """``delete``; whether ``key`` was anywhere.  A name in the bucket that is no Packrat
    key (another program's object under the prefix) is deleted in the store only."""
    assert frontend.uploader is not None
    try:
        validate_key(key)
    except InvalidKey:
        return await frontend.uploader.delete(key)
    try:
        await delete(frontend, key)
    except NotFound:
        return False
    return True
