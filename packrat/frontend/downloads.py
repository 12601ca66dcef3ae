"""Sending an object: its headers, then all of it verified, one range of it, or a 304.

Reads never wait for the coordinator: the object's path is a function of
the key and its metadata is in the file.  Reads are reported in batches; a
corrupt object (found on opening, or by its digest while it is sent) is
dropped through the coordinator before the client hears of it.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os

from tornado.httputil import HTTPHeaders, format_timestamp
from tornado.iostream import StreamClosedError
from tornado.web import RequestHandler

from packrat.errors import NotFound, PackratError, RangeNotSatisfiable, TooBusy
from packrat.frontend.context import Frontend
from packrat.frontend.headers import content_disposition, etag_in, parse_http_date, parse_range
from packrat.store import CorruptObject, ObjectMeta, key_digest, open_object, read_data

log = logging.getLogger("packrat.frontend")

OBJECT_CSP = "default-src 'none'; sandbox"  # a stored file never runs as a page of ours


async def send_object(
    handler: RequestHandler, frontend: Frontend, key: str, with_body: bool
) -> None:
    """Answer ``GET``/``HEAD`` of ``key`` through ``handler``."""
    opened = await open_or_drop(frontend, key)
    if opened is None:
        frontend.coordinator.miss()
        frontend.metrics.misses.inc()
        raise NotFound(f"no object under key {key!r}")
    fd, meta, inode = opened
    frontend.coordinator.touch(key)
    frontend.metrics.hits.inc()
    try:
        headers = handler.request.headers
        etag = f'"{meta.sha256}"'
        handler.set_header("ETag", etag)
        handler.set_header("Last-Modified", format_timestamp(meta.stored_at))
        handler.set_header("Cache-Control", cache_control(frontend))
        handler.set_header("Accept-Ranges", "bytes")
        if not_modified(headers, etag, meta):
            handler.set_status(304)
            return
        handler.set_header("Content-Type", meta.content_type)
        handler.set_header("Content-Disposition", content_disposition(meta.filename))
        handler.set_header("Content-Security-Policy", OBJECT_CSP)
        span = requested_range(headers, etag, meta) if with_body else None
        if span is None:
            handler.set_header("Content-Length", str(meta.size))
            if with_body:
                await _stream_verified(handler, frontend, fd, meta, inode)
            return
        first, last = span
        handler.set_status(206)
        handler.set_header("Content-Range", f"bytes {first}-{last}/{meta.size}")
        handler.set_header("Content-Length", str(last - first + 1))
        await _stream_range(handler, frontend, fd, first, last + 1)
    finally:
        os.close(fd)


async def object_exists(frontend: Frontend, key: str) -> bool:
    """Whether a readable object is stored under ``key``, from the disk alone."""
    opened = await open_or_drop(frontend, key)
    if opened is None:
        return False
    os.close(opened[0])
    return True


async def open_or_drop(
    frontend: Frontend, key: str
) -> tuple[int, ObjectMeta, tuple[int, int]] | None:
    """Open ``key``'s object: ``(fd, meta, inode)``; None when absent or corrupt (then dropped).

    Out of file descriptors is a 503 ``too_busy``: the accept loop pauses
    meanwhile (``server.accept_connections``), and a retry soon succeeds.
    """
    try:
        opened = open_object(frontend.layout, key)
    except OSError as e:
        if e.errno in (errno.EMFILE, errno.ENFILE):
            raise TooBusy("the server has no file descriptor free; retry shortly") from None
        raise
    except CorruptObject as e:
        log.error("the object of key %r is unreadable: %s", key, e)
        if e.inode is not None:
            await drop_corrupt(frontend, key, e.inode)
        return None
    if opened is None:
        return None
    fd, meta, info = opened
    return fd, meta, (info.st_dev, info.st_ino)


async def drop_corrupt(frontend: Frontend, key: str, inode: tuple[int, int]) -> None:
    """Have the coordinator remove exactly the bad file (not a newer one in its place)."""
    try:
        await frontend.coordinator.drop(key_digest(key), inode, key)
    except PackratError as e:
        log.warning("could not drop the corrupt object of key %r: %s", key, e.message)


def cache_control(frontend: Frontend) -> str:
    """Shared caches (a CDN) may keep objects only when anyone may read them."""
    scope = "public" if frontend.auth.public_reads else "private"
    max_age = frontend.settings.frontend_cache_max_age
    return f"{scope}, max-age={max_age}" if max_age else f"{scope}, no-cache"


def not_modified(headers: HTTPHeaders, etag: str, meta: ObjectMeta) -> bool:
    """``If-None-Match`` (weak comparison), else ``If-Modified-Since`` (RFC 9110 13.2.2)."""
    if "If-None-Match" in headers:
        return etag_in(headers["If-None-Match"], etag, weak=True)
    since = parse_http_date(headers.get("If-Modified-Since", ""))
    return since is not None and int(meta.stored_at) <= since


def requested_range(headers: HTTPHeaders, etag: str, meta: ObjectMeta) -> tuple[int, int] | None:
    """The single range to send, None for the whole object; 416 when unsatisfiable."""
    header = headers.get("Range")
    if header is None:
        return None
    if_range = headers.get("If-Range")
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


async def _send_chunk(
    handler: RequestHandler, frontend: Frontend, chunk: bytes, last: bool
) -> bool:
    """Write and flush one chunk; False when the client is gone or stalls.

    A client that takes no data for ``idle_timeout`` seconds is cut off, so
    slow readers cannot pin a connection forever.  The last chunk is left to
    ``finish`` to flush (the socket buffer takes it): one timer and task less
    per request, about 3 % of a small GET.
    """
    handler.write(chunk)
    if last:
        return True
    try:
        await asyncio.wait_for(handler.flush(), frontend.settings.frontend_idle_timeout)
    except StreamClosedError:
        return False
    except TimeoutError:
        log.info("client stalled reading %s; closing", handler.request.path)
        handler.request.connection.close()
        return False
    return True


async def _stream_range(
    handler: RequestHandler, frontend: Frontend, fd: int, start: int, stop: int
) -> None:
    """Send bytes ``start:stop``.  A part cannot be checked against the whole
    object's digest; clients that need that fetch it all or compare ETags."""
    sent = 0
    for chunk in read_data(fd, start, stop):
        sent += len(chunk)
        if not await _send_chunk(handler, frontend, chunk, last=sent >= stop - start):
            return
    if sent != stop - start:
        log.error("object file shorter than its trailer says; cut the response")
        handler.request.connection.close()


async def _stream_verified(
    handler: RequestHandler,
    frontend: Frontend,
    fd: int,
    meta: ObjectMeta,
    inode: tuple[int, int],
) -> None:
    """Send the data in chunks; hold the last one back until the digest matches.

    On a mismatch the connection is cut, so the client sees a short transfer
    rather than a clean 200 with wrong bytes, and the object is dropped
    before that, so a retry gets a 404.
    """
    digest = hashlib.sha256()
    offset = 0
    for chunk in read_data(fd, 0, meta.size):
        digest.update(chunk)
        offset += len(chunk)
        if offset >= meta.size and digest.hexdigest() != meta.sha256:
            break
        if not await _send_chunk(handler, frontend, chunk, last=offset >= meta.size):
            return
    if offset != meta.size or digest.hexdigest() != meta.sha256:
        log.error("object %r failed its sha256 check while being sent", meta.key)
        await drop_corrupt(frontend, meta.key, inode)
        handler.request.connection.close()
