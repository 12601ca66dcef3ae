"""The read-through and deletes on today's object path (``frontend.downloads``, ``ObjectHandler``).

The logic is in ``readthrough`` and ``uploader_client``; this module only
answers with it through a Tornado ``RequestHandler``: a ``GET`` or ``HEAD``
of a key the disk does not have (``answer_miss``), ``exists`` of one
(``exists_in_store``), and a ``DELETE`` (``delete``).  Another object path
does the same with its own way of writing an answer:

* ``GET`` miss: ``fetched = await readthrough.fetch(key)``; None is a 404,
  ``LOCAL`` means read the disk again (a hit), a ``Fetch`` has ``meta``
  (an ``ObjectMeta``: plan the status and headers from it as for a local
  object, ranges and conditional requests included), then send
  ``async for chunk in fetched.read(start, stop)``, and on ``FetchFailed``
  close the connection (the last byte only comes once the object is
  verified).  Count it as a miss.
* ``HEAD`` and ``exists`` miss: ``await readthrough.head(key)``: the meta, or None.
* ``DELETE``: ``delete(frontend, key)`` below, instead of the coordinator's delete.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tornado.iostream import StreamClosedError
from tornado.web import RequestHandler

from packrat.core.errors import NotFound
from packrat.objectstore.readthrough import LOCAL, Fetch, FetchFailed

if TYPE_CHECKING:
    from packrat.frontend.dependencies import Dependencies as Frontend

log = logging.getLogger("packrat.objectstore")

ANSWERED = "answered"
Plan = Callable[..., Any]  # (frontend, request headers, meta, with_body) -> downloads.Answer


async def answer_miss(
    handler: RequestHandler, frontend: Frontend, key: str, with_body: bool, plan: Plan
) -> str | None:
    """Answer a local miss from the store: ``ANSWERED``, ``LOCAL`` (read the disk again),
    or None (not in the store, or the store is unavailable: a 404).

    ``plan`` is the object path's (``downloads.plan``): the status and headers of
    an answer, as for a local object.
    """
    readthrough = frontend.readthrough
    assert readthrough is not None
    if not with_body:
        meta = await readthrough.head(key)
        if meta is None:
            return None
        answer = plan(frontend, handler.request.headers, meta, with_body=False)
        _set_answer(handler, answer.status, answer.headers)
        return ANSWERED
    fetched = await readthrough.fetch(key)
    if fetched is None or fetched == LOCAL:
        return fetched
    assert isinstance(fetched, Fetch)
    answer = plan(frontend, handler.request.headers, fetched.meta, with_body=True)
    _set_answer(handler, answer.status, answer.headers)
    if not answer.body:
        return ANSWERED  # a 304: the fetch goes on and stages the object
    idle = frontend.settings.frontend_idle_timeout
    try:
        await handler.flush()
        async for chunk in fetched.read(answer.start, answer.stop):
            handler.write(chunk)
            handler.bytes_sent += len(chunk)  # type: ignore[attr-defined]
            async with asyncio.timeout(idle):
                await handler.flush()
    except FetchFailed as e:
        log.error("cut the answer of %r fetched from the store: %s", key, e)
        handler.request.connection.close()  # type: ignore[union-attr]
    except (StreamClosedError, TimeoutError):
        handler.request.connection.close()  # type: ignore[union-attr]
    return ANSWERED


async def exists_in_store(frontend: Frontend, key: str) -> bool:
    assert frontend.readthrough is not None
    return await frontend.readthrough.head(key) is not None


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


def _set_answer(handler: RequestHandler, status: int, headers: list[tuple[str, str]]) -> None:
    handler.set_status(status)
    for name, value in headers:
        handler.set_header(name, value)
