"""The read side: objects (``GET``/``HEAD``, ranges, validators) and ``exists``.

Reads never wait for the coordinator: the object's path is a function of the
key and its metadata is in the file.  Only a corrupt object is reported.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os

from tornado.httputil import format_timestamp
from tornado.iostream import StreamClosedError
from tornado.web import HTTPError

from packrat.errors import NotFound, PackratError, RangeNotSatisfiable
from packrat.frontend.base import BaseHandler
from packrat.frontend.headers import content_disposition, etag_in, parse_http_date, parse_range
from packrat.storage import CorruptObject, ObjectMeta, open_object, read_data

log = logging.getLogger("packrat.frontend")

OBJECT_CSP = "default-src 'none'; sandbox"  # a stored file never runs as a page of ours


class ObjectReader(BaseHandler):
    """``GET``/``HEAD /<key>``: the object's headers and all of it, one range, or a 304."""

    async def get(self, raw_key: str) -> None:
        await self._send_object(raw_key, with_body=True)

    async def head(self, raw_key: str) -> None:
        await self._send_object(raw_key, with_body=False)

    async def _send_object(self, raw_key: str, with_body: bool) -> None:
        """The object's headers, then (for GET) all of it, one range of it, or a 304."""
        key = self.valid_key(raw_key)
        opened = await self._open(key)
        if opened is None:
            self.client.miss()
            raise NotFound(f"no object under key {key!r}")
        fd, meta = opened
        self.client.touch(key)
        try:
            etag = f'"{meta.sha256}"'
            self.set_header("ETag", etag)
            self.set_header("Last-Modified", format_timestamp(meta.stored_at))
            self.set_header("Cache-Control", self._cache_control())
            self.set_header("Accept-Ranges", "bytes")
            if self._not_modified(etag, meta):
                self.set_status(304)
                return
            self.set_header("Content-Type", meta.content_type)
            self.set_header("Content-Disposition", content_disposition(meta.filename))
            self.set_header("Content-Security-Policy", OBJECT_CSP)
            span = self._requested_range(etag, meta) if with_body else None
            if span is None:
                self.set_header("Content-Length", str(meta.size))
                if with_body:
                    await self._stream_verified(fd, meta)
                return
            first, last = span
            self.set_status(206)
            self.set_header("Content-Range", f"bytes {first}-{last}/{meta.size}")
            self.set_header("Content-Length", str(last - first + 1))
            await self._stream_range(fd, first, last + 1)
        finally:
            os.close(fd)

    def _cache_control(self) -> str:
        """Shared caches (a CDN) may keep objects only when anyone may read them."""
        scope = "public" if self.auth.public_reads else "private"
        max_age = self.settings_.frontend_cache_max_age
        return f"{scope}, max-age={max_age}" if max_age else f"{scope}, no-cache"

    def _not_modified(self, etag: str, meta: ObjectMeta) -> bool:
        """``If-None-Match`` (weak comparison), else ``If-Modified-Since`` (RFC 9110 13.2.2)."""
        headers = self.request.headers
        if "If-None-Match" in headers:
            return etag_in(headers["If-None-Match"], etag, weak=True)
        since = parse_http_date(headers.get("If-Modified-Since", ""))
        return since is not None and int(meta.stored_at) <= since

    def _requested_range(self, etag: str, meta: ObjectMeta) -> tuple[int, int] | None:
        """The single range to send, None for the whole object; 416 when unsatisfiable."""
        header = self.request.headers.get("Range")
        if header is None:
            return None
        if_range = self.request.headers.get("If-Range")
        if if_range is not None:
            if_range = if_range.strip()
            if if_range.startswith(('"', "W/")):
                if not etag_in(if_range, etag, weak=False):
                    return None
            elif parse_http_date(if_range) != int(meta.stored_at):
                return None
        try:
            return parse_range(header, meta.size)
        except ValueError as e:
            raise RangeNotSatisfiable(str(e), meta.size) from None

    async def _send_chunk(self, chunk: bytes, last: bool) -> bool:
        """Write and flush one chunk; False when the client is gone or stalls.

        A client that takes no data for ``idle_timeout`` seconds is cut off,
        so slow readers cannot pin a connection forever.  The last chunk is
        left to ``finish`` to flush (the socket buffer takes it): one timer
        and task less per request, about 3 % of a small GET.
        """
        self.write(chunk)
        if last:
            return True
        try:
            await asyncio.wait_for(self.flush(), self.settings_.frontend_idle_timeout)
        except StreamClosedError:
            return False
        except TimeoutError:
            log.info("client stalled reading %s; closing", self.request.path)
            self.request.connection.close()
            return False
        return True

    async def _stream_range(self, fd: int, start: int, stop: int) -> None:
        """Send bytes ``start:stop``.  A part cannot be checked against the whole
        object's digest; clients that need that fetch it all or compare ETags."""
        sent = 0
        for chunk in read_data(fd, start, stop):
            sent += len(chunk)
            if not await self._send_chunk(chunk, last=sent >= stop - start):
                return
        if sent != stop - start:
            log.error("object file shorter than its trailer says; cut the response")
            self.request.connection.close()

    async def _open(self, key: str) -> tuple[int, ObjectMeta] | None:
        try:
            return open_object(self.layout, key)
        except CorruptObject as e:
            log.error("object for key %r is unreadable: %s", key, e)
            await self._drop_corrupt(key, None)
            return None

    async def _stream_verified(self, fd: int, meta: ObjectMeta) -> None:
        """Send the data in chunks; hold the last one back until the digest matches.

        On a mismatch the connection is cut, so the client sees a short
        transfer rather than a clean 200 with wrong bytes.
        """
        digest = hashlib.sha256()
        offset = 0
        for chunk in read_data(fd, 0, meta.size):
            digest.update(chunk)
            offset += len(chunk)
            if offset >= meta.size and digest.hexdigest() != meta.sha256:
                break
            if not await self._send_chunk(chunk, last=offset >= meta.size):
                return
        if offset != meta.size or digest.hexdigest() != meta.sha256:
            log.error("object %r failed its sha256 check while being sent", meta.key)
            # Dropped before the client hears of it, so its retry gets a 404.
            await self._drop_corrupt(meta.key, meta.sha256)
            self.request.connection.close()
            raise HTTPError(500, "corrupt object %s", meta.key)

    async def _drop_corrupt(self, key: str, sha256: str | None) -> None:
        try:
            await self.client.request("delete", key=key, reason="corrupt", sha256=sha256)
        except PackratError as e:
            log.warning("could not drop corrupt object %r: %s", key, e.message)


class ExistsHandler(BaseHandler):
    """``GET /exists/<key>``: whether an object is stored, from the disk alone."""

    def get(self, raw_key: str) -> None:
        key = self.valid_key(raw_key)
        try:
            opened = open_object(self.layout, key)
        except CorruptObject:
            opened = None
        if opened is not None:
            os.close(opened[0])
        self.write_json({"present": opened is not None})
