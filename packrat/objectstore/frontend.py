"""The object store's part in the object path (``frontend.objects``): deletes.

The read-through itself is ``readthrough.ReadThrough``, the object path's
second tier (``ObjectPath.second_tier``): on a local miss the path asks it
for a ``HEAD``'s or an ``exists``'s metadata (``head``) and for a ``GET``'s
object (``fetch``), and answers from what it gets as for a local object.
An ``exists`` miss asks ``head`` too.  A ``DELETE`` goes through ``delete``
below instead of the coordinator's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from packrat.core.errors import NotFound

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
