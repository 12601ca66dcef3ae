"""Sending an object: its headers, then all of it verified, one range of it, or a 304.

Reads never wait for the coordinator: the object's path is a function of
the key and its metadata is in the file.  Reads are reported in batches; a
corrupt object (found on opening, or by its digest while it is sent) is
dropped through the coordinator before the client hears of it.

The object path (``objects``) opens the object (``store.open_to_read``), builds
the answer with ``plan`` and sends the bytes:

* an object of at most ``SMALL`` bytes is read whole, trailer included, in
  one ``pread``, checked, and written with the headers in one ``send``; its
  checked bytes are kept in memory (``store.MetadataCache``, ``[frontend]
  memory_cache``), so the next ``GET`` of the same file is one ``lstat``;
* a larger one goes out with ``os.sendfile`` once the headers are flushed,
  each segment checked through an ``mmap`` of the same pages just before it
  is sent; over TLS (the bytes must pass through the TLS layer) or with
  ``PACKRAT_NOSENDFILE`` set, it is read and written in ``CHUNK``-byte
  chunks instead.

A whole object is checked against its xxh3-128 (sha256 for objects stored
before xxh3 existed; the sha256 stays the ETag), and its last segment is held
back until the digest of everything matches: on a mismatch the connection
is cut, so the client sees a short transfer, never a clean 200 with wrong
bytes.  A range cannot be checked against the whole object's digest;
clients that need that fetch it all or compare ETags.  A client that takes
no data for ``idle_timeout`` seconds is cut off.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import mmap
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tornado.httputil import format_timestamp

from packrat.core.errors import PackratError, RangeNotSatisfiable
from packrat.frontend.headers import content_disposition, etag_in, parse_http_date, parse_range
from packrat.frontend.http1 import head_blocks
from packrat.store import Checker, ObjectMeta, key_digest, read_data
from packrat.store.format import MAX_METADATA, TAIL_SIZE

if TYPE_CHECKING:
    from packrat.frontend.dependencies import Dependencies
    from packrat.frontend.http1 import Exchange

log = logging.getLogger("packrat.frontend")

OBJECT_CSP = "default-src 'none'; sandbox"  # a stored file never runs as a page of ours
SMALL = 64 * 1024  # objects up to this size are read whole and sent with their headers
CHUNK = 256 * 1024  # bytes per write when sendfile cannot be used
SEGMENT = 1 << 20  # bytes checked, then handed to sendfile, at a time
# Read whole: a small object's file, its trailer included.
WHOLE_FILE = SMALL + TAIL_SIZE + 1024
# Set (to anything) to send every object in chunks, as over TLS.
SENDFILE = not os.environ.get("PACKRAT_NOSENDFILE")
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # map every page at once, not fault by fault
assert MAX_METADATA > 1024  # WHOLE_FILE covers most trailers, read_trailer checks them all


@dataclass(frozen=True, slots=True)
class Answer:
    """What a read of an object answers, before any byte is sent (shared: never changed)."""

    status: int  # 200, 206 or 304
    headers: tuple[str, ...]  # header lines, made once per object (and range)
    head: tuple[bytes, bytes]  # status line and all headers, encoded (http1.head_blocks)
    body: bool  # False for HEAD and 304
    start: int  # the bytes start:stop of the data are the body
    stop: int
    whole: bool  # the body is the whole object, to check against its digest


async def drop_corrupt(frontend: Dependencies, key: str, inode: tuple[int, int]) -> None:
    """Have the coordinator remove exactly the bad file (not a newer one in its place)."""
    try:
        await frontend.coordinator.drop(key_digest(key), inode, key)
    except PackratError as e:
        log.warning("could not drop the corrupt object of key %r: %s", key, e.message)


def cache_control(frontend: Dependencies) -> str:
    """Shared caches (a CDN) may keep objects only when anyone may read them."""
    return _cache_control(frontend.auth.public_reads, frontend.settings.frontend_cache_max_age)


@functools.lru_cache(maxsize=16)
def _cache_control(public: bool, max_age: int) -> str:
    scope = "public" if public else "private"
    return f"{scope}, max-age={max_age}" if max_age else f"{scope}, no-cache"


def not_modified(headers: Mapping[str, str], meta: ObjectMeta) -> bool:
    """``If-None-Match`` (weak comparison), else ``If-Modified-Since`` (RFC 9110 13.2.2).

    ``headers`` are the request's, by lower-case name (``http1.Request.headers``).
    """
    match = headers.get("if-none-match")
    if match is not None:
        return etag_in(match, f'"{meta.sha256}"', weak=True)
    since = headers.get("if-modified-since")
    if since is None:
        return False
    seconds = parse_http_date(since)
    return seconds is not None and int(meta.stored_at) <= seconds


def requested_range(headers: Mapping[str, str], meta: ObjectMeta) -> tuple[int, int] | None:
    """The single range to send, None for the whole object; 416 when unsatisfiable."""
    header = headers.get("range")
    if header is None:
        return None
    if_range = headers.get("if-range")
    if if_range is not None:
        if_range = if_range.strip()
        if if_range.startswith(('"', "W/")):
            if not etag_in(if_range, f'"{meta.sha256}"', weak=False):
                return None
        elif parse_http_date(if_range) != int(meta.stored_at):
            return None
    try:
        return parse_range(header, meta.size)
    except ValueError as e:
        raise RangeNotSatisfiable(str(e), meta.size) from None


disposition = functools.lru_cache(maxsize=4096)(content_disposition)  # per name, once


@functools.lru_cache(maxsize=4096)
def http_date(seconds: int) -> str:
    """An HTTP date (``Last-Modified``), remembered: objects are read again and again."""
    return format_timestamp(seconds)


def plan(
    frontend: Dependencies, headers: Mapping[str, str], meta: ObjectMeta, with_body: bool
) -> Answer:
    """The status, headers and bytes of the answer; ``RangeNotSatisfiable`` for a 416.

    The answers that depend on the object alone (200 and 304) are made once
    per object and kind, not per request (``_whole``, ``_not_modified``).
    """
    control = cache_control(frontend)
    if not_modified(headers, meta):
        return _not_modified(meta, control)
    span = requested_range(headers, meta) if with_body else None
    if span is None:
        return _whole(meta, control, with_body)
    first, last = span
    lines = (
        f"Content-Range: bytes {first}-{last}/{meta.size}\r\nContent-Length: {last - first + 1}\r\n"
    )
    headers = (_described(meta, control), lines)
    return Answer(206, headers, _head(206, headers), True, first, last + 1, False)


# The 200 answers made, by the identity of the metadata they answer for: the store
# hands out one ``ObjectMeta`` per trailer (``decode_metadata`` and ``MetadataCache``
# remember theirs), so a read finds its answer without hashing the metadata's nine
# fields (``lru_cache`` does, on every call).  Each entry keeps its metadata alive,
# so no other object can take its ``id`` while it is remembered; bounded, as below.
_wholes: dict[tuple[int, str, bool], tuple[ObjectMeta, Answer]] = {}
MAX_WHOLES = 4096


def _whole(meta: ObjectMeta, control: str, with_body: bool) -> Answer:
    key = (id(meta), control, with_body)
    kept = _wholes.get(key)
    if kept is not None and kept[0] is meta:
        return kept[1]
    lines = _described(meta, control) + f"Content-Length: {meta.size}\r\n"
    answer = Answer(200, (lines,), _head(200, (lines,)), with_body, 0, meta.size, True)
    if len(_wholes) >= MAX_WHOLES:
        _wholes.clear()
    _wholes[key] = (meta, answer)
    return answer


@functools.lru_cache(maxsize=4096)
def _not_modified(meta: ObjectMeta, control: str) -> Answer:
    lines = (_validators(meta, control),)
    return Answer(304, lines, _head(304, lines), False, 0, 0, False)


def _head(status: int, headers: tuple[str, ...]) -> tuple[bytes, bytes]:
    """An answer's status line and headers, encoded once with it (its ``Date`` goes
    between the two parts as it is sent: ``http1.Exchange.respond_block``)."""
    return head_blocks(status, "".join(headers))


@functools.lru_cache(maxsize=4096)
def _validators(meta: ObjectMeta, control: str) -> str:
    """``ETag``, ``Last-Modified``, ``Cache-Control``, ``Accept-Ranges``: every answer's;
    and the headers a build tool's route stored with the object (turbo's ``x-artifact-*``,
    printable ASCII: ``format.header_problem``)."""
    return (
        f'ETag: "{meta.sha256}"\r\n'
        f"Last-Modified: {http_date(int(meta.stored_at))}\r\n"
        f"Cache-Control: {control}\r\n"
        "Accept-Ranges: bytes\r\n"
    ) + "".join(f"{name}: {value}\r\n" for name, value in meta.headers)


@functools.lru_cache(maxsize=4096)
def _described(meta: ObjectMeta, control: str) -> str:
    """The validators, then what describes the bytes: type, name, and the sandbox."""
    return (
        _validators(meta, control)
        + f"Content-Type: {meta.content_type}\r\n"
        + f"Content-Disposition: {disposition(meta.filename)}\r\n"
        + f"Content-Security-Policy: {OBJECT_CSP}\r\n"
    )


def small_body(
    frontend: Dependencies,
    key: str,
    info: os.stat_result,
    meta: ObjectMeta,
    data: memoryview,
    answer: Answer,
) -> memoryview | None:
    """The body of a small object's answer from its data read whole; None if corrupt.

    A whole object is checked against its digest, and then kept in memory for the
    next reads (``MetadataCache.verified``); a range is not checked (as for any size).
    """
    if not answer.whole:
        return data[answer.start : answer.stop]
    return data if frontend.metadata.verified(key, info, meta, data) else None


async def send_body(
    exchange: Exchange,
    frontend: Dependencies,
    fd: int,
    meta: ObjectMeta,
    inode: tuple[int, int],
    answer: Answer,
) -> None:
    """Send the body of ``answer`` once its headers are written, then end the exchange;
    closes ``fd``.

    A transfer that cannot finish (the client left or stalled, the file is
    short, the object is corrupt) ends with the connection closed, so the
    client never takes a partial body for a whole one.
    """
    checker = Checker(meta) if answer.whole else None
    try:
        if SENDFILE and not exchange.connection.tls:
            await exchange.flushed()
            problem = await _sendfile(exchange, frontend, fd, answer.start, answer.stop, checker)
        else:
            problem = await _send_chunks(exchange, frontend, fd, answer.start, answer.stop, checker)
    except ConnectionResetError:
        problem = "gone"
    finally:
        os.close(fd)
    if problem is None:
        exchange.end()
    else:
        await _cut(exchange, frontend, meta, inode, problem)


async def _cut(
    exchange: Exchange,
    frontend: Dependencies,
    meta: ObjectMeta,
    inode: tuple[int, int],
    problem: str,
) -> None:
    """End a transfer that cannot finish; drop the object if it is corrupt.

    A client that left or stalled is recorded as such (499) when the
    connection closes; a corrupt or short file is recorded with the status
    sent and the problem.
    """
    if problem == "corrupt":
        log.error("object %r failed its digest check while being sent", meta.key)
        exchange.failure = PackratError("the object is corrupt", log_message="corrupt; cut")
        exchange.done(exchange.status)
        await drop_corrupt(frontend, meta.key, inode)  # before the client hears of it
        exchange.close()
        return
    if problem == "short":
        log.error("object %r: file shorter than its trailer says; cut the response", meta.key)
        exchange.failure = PackratError("the object is short", log_message="short file; cut")
        exchange.done(exchange.status)
    elif problem == "stalled":
        log.info("client stalled reading %r; closing", meta.key)
    exchange.close()


async def _send_chunks(
    exchange: Exchange,
    frontend: Dependencies,
    fd: int,
    start: int,
    stop: int,
    checker: Checker | None,
) -> str | None:
    """Read and write ``start:stop`` in chunks; the problem that stopped it, or None.

    Each chunk but the last waits until the client has taken enough of the
    ones before (the transport's buffer is below its high mark).
    """
    offset = start
    idle = frontend.settings.frontend_idle_timeout
    for chunk in read_data(fd, start, stop, CHUNK):
        end = offset + len(chunk)
        if checker is not None:
            checker.update(chunk)
            if end >= stop and not checker.matches():
                return "corrupt"
        exchange.write(chunk)
        offset = end
        if end < stop:
            try:
                async with asyncio.timeout(idle):
                    await exchange.drain()
            except TimeoutError:
                return "stalled"
    return None if offset == stop else "short"


async def _sendfile(
    exchange: Exchange,
    frontend: Dependencies,
    fd: int,
    start: int,
    stop: int,
    checker: Checker | None,
) -> str | None:
    """``os.sendfile`` of ``start:stop`` to the connection's socket; as ``_send_chunks``.

    The transport's buffer is empty (the headers went first).  It writes to
    a duplicate of the socket's descriptor, waited on with the event loop's
    writer callback: if the connection closes meanwhile (the client left),
    its descriptor number can be reused at once by a new connection, but
    the duplicate still names this socket, so no byte can go astray and no
    other connection's registration is touched.
    """
    transport = exchange.connection.transport
    assert transport is not None
    loop = asyncio.get_running_loop()
    idle = frontend.settings.frontend_idle_timeout
    offset = start
    checked = start if checker is not None else stop  # start:checked may go out

    def check_next() -> bool:
        """Check one more segment (a whole object's: they start on page
        boundaries); False when that was the last and the digest differs."""
        nonlocal checked
        assert checker is not None
        end = min(checked + SEGMENT, stop)
        _check_mapped(checker, fd, checked, end)
        if end == stop and not checker.matches():
            return False
        checked = end
        return True

    out = os.dup(transport.get_extra_info("socket").fileno())
    try:
        while offset < stop:
            if offset == checked and not check_next():
                exchange.wrote_around(offset - start)
                return "corrupt"
            if exchange.closed:
                return "gone"
            try:
                count = os.sendfile(out, fd, offset, checked - offset)
            except BlockingIOError:
                # While the client drains the socket, check what goes next.
                if checked < stop and checked - offset < SEGMENT and not check_next():
                    exchange.wrote_around(offset - start)
                    return "corrupt"
                if not await _writable(loop, out, idle):
                    exchange.wrote_around(offset - start)
                    return "stalled"
                continue
            except (BrokenPipeError, ConnectionResetError):
                exchange.wrote_around(offset - start)
                return "gone"
            if count == 0:  # the file ends before its trailer says
                exchange.wrote_around(offset - start)
                return "short"
            offset += count
    finally:
        os.close(out)
    exchange.wrote_around(offset - start)
    return None


def _check_mapped(checker: Checker, fd: int, start: int, stop: int) -> None:
    """Feed the file's bytes ``start:stop`` to ``checker`` through an ``mmap``: the very
    pages ``sendfile`` sends, with no copy (one segment at a time, so the pages
    mapped stay few whatever the object's size)."""
    mapped = mmap.mmap(
        fd, stop - start, flags=mmap.MAP_SHARED | _POPULATE, prot=mmap.PROT_READ, offset=start
    )
    try:
        with memoryview(mapped) as view:
            checker.update(view)
    finally:
        mapped.close()


async def _writable(loop: asyncio.AbstractEventLoop, fd: int, timeout: float) -> bool:
    """Wait until ``fd`` can take more bytes; False after ``timeout`` seconds."""
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        async with asyncio.timeout(timeout):
            await ready
    except TimeoutError:
        return False
    finally:
        loop.remove_writer(fd)
    return True
