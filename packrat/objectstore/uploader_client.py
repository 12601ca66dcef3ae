"""The front end's client of the uploader: deletes, lists and status, each with a deadline."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import zmq
import zmq.asyncio

from packrat.core.errors import ObjectStoreUnavailable
from packrat.objectstore import messages

UNREACHABLE = "the object store's uploader is not reachable; nothing was deleted, retry shortly"


class UploaderClient:
    """Requests to the uploader over a DEALER socket (``immediate``: fails fast when down)."""

    def __init__(self, endpoint: str, timeout: float) -> None:
        self.timeout = timeout
        self._context = zmq.asyncio.Context()
        self._socket = self._context.socket(zmq.DEALER)
        self._socket.linger = 0
        self._socket.immediate = True
        self._socket.reconnect_ivl = 100
        self._socket.reconnect_ivl_max = 1000
        self._socket.connect(endpoint)
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader: asyncio.Task[None] | None = None

    async def delete(self, key: str) -> bool:
        """Delete ``key`` in the store; whether it was there.  ``ObjectStoreUnavailable``."""
        reply = await self._answer({"op": "delete", "key": key})
        return bool(reply.get("found"))

    async def list(self, prefix: str, limit: int) -> tuple[list[str], bool]:
        """The first ``limit`` keys under ``prefix`` in the store, and whether more follow."""
        reply = await self._answer({"op": "list", "prefix": prefix, "limit": limit})
        return reply["keys"], reply["more"]

    async def _answer(self, fields: dict[str, Any]) -> dict[str, Any]:
        """The uploader's reply; ``ObjectStoreUnavailable`` when it did not succeed."""
        reply = await self._request(fields, self.timeout)
        if not reply.get("ok"):
            raise ObjectStoreUnavailable(
                "the object store could not be reached; nothing more was deleted, retry shortly",
                log_message=str(reply.get("message", "")),
            )
        return reply

    async def status(self, timeout: float) -> dict[str, Any] | None:
        """The uploader's figures; None when it does not answer in ``timeout`` seconds."""
        try:
            reply = await self._request({"op": "status"}, timeout)
        except ObjectStoreUnavailable:
            return None
        return reply.get("status") if reply.get("ok") else None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
        self._socket.close()
        self._context.term()

    async def _request(self, fields: dict[str, Any], timeout: float) -> dict[str, Any]:
        if self._reader is None:
            self._reader = asyncio.ensure_future(self._read_replies())
        request_id = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            async with asyncio.timeout(timeout):
                while True:
                    try:
                        await self._socket.send(
                            messages.encode({"id": request_id, **fields}), zmq.NOBLOCK
                        )
                        break
                    except zmq.Again:  # not connected (yet)
                        await asyncio.sleep(0.02)
                return await future
        except TimeoutError:
            raise ObjectStoreUnavailable(UNREACHABLE) from None
        finally:
            self._pending.pop(request_id, None)

    async def _read_replies(self) -> None:
        while True:
            frame = await self._socket.recv()
            try:
                reply = messages.decode(frame)
            except messages.BadMessage:
                continue
            future = self._pending.get(reply["id"])
            if future is not None and not future.done():
                future.set_result(reply)
