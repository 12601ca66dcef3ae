"""Key names by prefix, from the coordinator's index: ``GET`` and ``DELETE /api/keys``.

``GET /api/keys?prefix=P&after=C&limit=N[&delimiter=/]``
    one page of the keys starting with ``P`` after the cursor ``C``, at most
    ``N`` (default and most: ``MAX_PAGE``), with each object's size, sha256,
    time, type and name read from its file; ``delimiter=/`` rolls the keys
    below the next ``/`` up into ``collections``.  ``next`` is the cursor of
    the next page, or null after the last.  Needs the ``list`` right.
``DELETE /api/keys?prefix=P[&limit=N]``
    removes a batch of at most ``N`` keys under ``P`` and names them; ``more``
    says whether any remain.  A purge is this request repeated until ``more``
    is false: each batch is short (the coordinator serves others between
    them), and a purge interrupted at any point is finished by running it
    again.  Needs the ``write`` and ``list`` rights.

Pages, never one unbounded answer: the coordinator names at most
``MAX_PAGE`` keys per request, whatever the prefix holds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from packrat.coordinator.protocol import MAX_PAGE
from packrat.core.errors import BadRequest, MissingField
from packrat.core.keys import validate_prefix
from packrat.core.numbers import whole_number
from packrat.frontend.auth import LIST, WRITE
from packrat.frontend.base import BaseHandler
from packrat.frontend.dependencies import Dependencies
from packrat.store import CorruptObject, ObjectMeta, open_key


def read_meta(frontend: Dependencies, key: str) -> ObjectMeta | None:
    """The metadata of ``key``'s object, from its trailer; None if it is gone or unreadable
    (a listing shows what can be read; a read of the object finds and drops a corrupt one)."""
    try:
        opened = open_key(frontend.layout, key)
    except (OSError, CorruptObject):
        return None
    if opened is None:
        return None
    os.close(opened[0])
    return opened[1]


async def list_page(
    frontend: Dependencies, prefix: str, after: str, limit: int, collections: bool
) -> tuple[list[ObjectMeta | str], str | None]:
    """A page under ``prefix``: each key's metadata, or a collection's name (ending in
    ``/``), in order; and the cursor of the next page (None after the last).

    A key evicted since the coordinator named it is left out.
    """
    page, more = await frontend.coordinator.list_keys(prefix, after, limit, collections)
    entries: list[ObjectMeta | str] = []
    for entry in page:
        if entry.endswith("/"):
            entries.append(entry)
        elif (meta := read_meta(frontend, entry)) is not None:
            entries.append(meta)
    return entries, page[-1] if more and page else None


async def purge_page(
    frontend: Dependencies, prefix: str, limit: int = MAX_PAGE
) -> tuple[Sequence[str], bool]:
    """Remove a page of keys under ``prefix``: those removed, and whether more remain.

    The index knows only this cache's disk; with an object store behind it, the
    keys held only in the store are deleted too (else they would be read
    through again), each after its upload under way.
    """
    if frontend.uploader is not None:
        from packrat.objectstore.frontend import purge  # only with [objectstore]

        return await purge(frontend, prefix, limit)
    return await frontend.coordinator.purge(prefix, limit)


def describe(meta: ObjectMeta) -> dict[str, Any]:
    return {
        "key": meta.key,
        "size": meta.size,
        "sha256": meta.sha256,
        "stored_at": meta.stored_at,
        "content_type": meta.content_type,
        "filename": meta.filename,
    }


class KeysHandler(BaseHandler):
    """``/api/keys``: list a page of keys under a prefix, or purge a batch of them."""

    route = "/api/keys"
    RIGHTS = {"GET": LIST, "DELETE": WRITE}

    async def prepare(self) -> None:
        await self.authorize()
        if self.request.method == "DELETE":
            await self.frontend.auth.require(LIST, self.request.headers.get("Authorization"))

    async def get(self) -> None:
        prefix = validate_prefix(self.get_query_argument("prefix", ""))
        delimiter = self.get_query_argument("delimiter", "")
        if delimiter not in ("", "/"):
            raise BadRequest("delimiter must be '/' (or absent)")
        after = self.get_query_argument("after", "")
        entries, cursor = await list_page(
            self.frontend, prefix, after, self._limit(), collections=bool(delimiter)
        )
        self.write_json(
            {
                "prefix": prefix,
                "keys": [describe(e) for e in entries if isinstance(e, ObjectMeta)],
                "collections": [e for e in entries if isinstance(e, str)],
                "next": cursor,
            }
        )

    async def delete(self) -> None:
        prefix = self.get_query_argument("prefix", None)
        if prefix is None:
            raise MissingField("a purge names its prefix: ?prefix=... (empty: every key)")
        validate_prefix(prefix)
        removed, more = await purge_page(self.frontend, prefix, self._limit())
        self.write_json(
            {
                "success": True,
                "prefix": prefix,
                "deleted": len(removed),
                "keys": list(removed),
                "more": more,
            }
        )

    def _limit(self) -> int:
        limit = whole_number(self.get_query_argument("limit", str(MAX_PAGE)))
        if limit is None or not 1 <= limit <= MAX_PAGE:
            raise BadRequest(f"limit must be a whole number from 1 to {MAX_PAGE}")
        return limit
