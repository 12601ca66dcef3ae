"""The one path for objects: every request for ``/<key>`` and ``/exists/<key>``.

``GET``/``HEAD``/``PUT``/``POST``/``DELETE /<key>`` and ``GET /exists/<key>``,
hits, misses, ranges, 304, 416 and errors of every kind, are answered here
and nowhere else, straight from ``http1`` (no ``RequestHandler``).  The
checks, in the order they are made (every refusal is a JSON error from
``envelope``; ``http1`` has already refused what is not a well-formed
request, and its docstring lists those checks):

1. **Method**: ``/<key>`` answers ``GET HEAD PUT POST DELETE``,
   ``/exists/<key>`` ``GET``; any other is ``405 method_not_allowed`` with
   ``Allow``.
2. **The path's checks** (``ObjectPath.checks``), run as soon as the headers
   are in, before any byte of a body is read.  The first refuses a write a
   browser sent for another site's page (``crosssite``: ``403 cross_site``,
   before credentials are looked at, so no password prompt); the second is
   access control (``auth``): the read right for ``GET``/``HEAD``, the write
   right for the others; ``401 unauthorized`` with ``WWW-Authenticate``, or
   ``403 forbidden``.
3. **The key**: the path's tail percent-decoded as Tornado decodes path
   arguments; not UTF-8: ``400 bad_request``; against ``keys.validate_key``:
   ``400 invalid_key``.
4. **Reads** (``GET``/``HEAD``): first the path's read checks
   (``ObjectPath.read_checks``; one with something to say of the key may
   answer it as a miss, 404); then the object opened from the disk alone
   (``downloads``; for ``HEAD`` its metadata, and for a ``GET`` of a small
   object its bytes once checked, from ``store.MetadataCache``, which checks
   the file is the one it read with one ``lstat``): out of file
   descriptors: ``503 too_busy``; a file that is not a sound object of this
   key (a symlink, a FIFO, a bad trailer, another key): dropped through the
   coordinator, then a miss; a miss: the second tier if there is one
   (``ObjectPath.second_tier``), else ``404 not_found``. Then
   ``If-None-Match``/``If-Modified-Since`` (304), ``Range``/``If-Range``
   (206, or ``416 range_not_satisfiable``; ignored on ``HEAD``). The bytes
   are checked against the object's digest as they go: a small object before
   its answer is written (corrupt: dropped and answered as a miss), a large
   one segment by segment (corrupt: the transfer is cut and the object
   dropped); a reader that takes nothing for ``idle_timeout`` is cut off.
5. **Exists**: the read checks, then the object's metadata as for ``HEAD``
   (corrupt: dropped, absent; out of descriptors: 503); ``If-None-Match``
   against the answer's ETag gives 304.
6. **Uploads** (``PUT``/``POST``, ``uploads.BodyReceiver``): for a route
   that forbids replacing (Nx's records), ``409 already_stored`` when an
   object is stored (here, or in the second tier); the declared
   length against ``max_file_size`` (``413 too_large`` before the body), a
   slot among ``max_uploads`` (``503 too_busy``), a staging file (``507
   insufficient_storage``); as the body streams: its size (413), the
   multipart form (``400 malformed_multipart``/``missing_field``), the disk
   (507), a stalled body (cut after ``idle_timeout``); at the end: the
   ``X-Packrat-Sha256`` digest and the key's scheme (``buildcache``: 400
   ``checksum_mismatch``, ``invalid_action_result``), then the commit (the
   coordinator's errors with their own status; ``409 already_stored`` when
   it may not replace the key's object; a commit it did not confirm in time is ``503
   coordinator_unavailable`` when the staging file could still be withdrawn,
   so nothing was stored, else ``503 outcome_unknown``).  The staging file is
   removed before any error is answered.
7. **Delete**: through the coordinator (404 when absent, 503 when it is
   down).

Extension points (add a concern around this path, never a second path):
``ObjectPath.checks`` takes more checks of a request's headers;
``ObjectPath.read_checks`` look at a key before it is read (Bazel's ``ac/``
entries: ``buildcache``);
``ObjectPath.second_tier`` is asked on a local miss; other routes to objects
(a build tool's URL scheme) call ``ObjectPath.delegate`` with the key they
found.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import hashlib
import logging
import os
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import unquote_to_bytes

from tornado.escape import parse_qs_bytes

from packrat.core.errors import (
    AlreadyStored,
    BadRequest,
    CoordinatorUnavailable,
    ErrorCode,
    NotFound,
    PackratError,
    TooBusy,
)
from packrat.core.keys import validate_key
from packrat.frontend import envelope
from packrat.frontend.auth import READ, WRITE
from packrat.frontend.crosssite import CrossSite
from packrat.frontend.downloads import (
    WHOLE_FILE,
    drop_corrupt,
    plan,
    send_body,
    small_body,
)
from packrat.frontend.http1 import Delegate, Exchange, head_blocks
from packrat.frontend.uploads import BodyReceiver, answer_body
from packrat.store import CorruptObject, ObjectMeta, is_stored, open_to_read

if TYPE_CHECKING:
    from packrat.frontend.dependencies import Dependencies

log = logging.getLogger("packrat.frontend")

OBJECT_ROUTE = "/{key}"  # route names in metrics
EXISTS_ROUTE = "/exists/{key}"
OBJECT_METHODS = ("DELETE", "GET", "HEAD", "POST", "PUT")
EXISTS_METHODS = ("GET",)
RIGHTS = {"GET": READ, "HEAD": READ}  # every other method needs WRITE
EXISTS_BODY = {present: envelope.json_body({"present": present}) for present in (True, False)}
# A weak validator of the exists answer itself, as RequestHandler made it.
EXISTS_ETAG = {
    present: f'"{hashlib.sha1(body).hexdigest()}"' for present, body in EXISTS_BODY.items()
}
EXISTS_LINES = {
    present: f"Etag: {EXISTS_ETAG[present]}\r\nContent-Length: {len(body)}\r\n"
    for present, body in EXISTS_BODY.items()
}
# Their status line and headers, encoded once (http1.Exchange.respond_block).
EXISTS_HEADS = {
    present: head_blocks(200, lines, json_body=True) for present, lines in EXISTS_LINES.items()
}
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f]")  # what RequestHandler replaces in arguments

# A check of a request's headers: None to go on, an awaitable to wait for,
# or a PackratError raised to refuse.
Check = Callable[[Exchange], Awaitable[None] | None]
# A check of a key before it is read: None when the object may be served (at
# once, the usual case), why it cannot be (answered as a miss), or an
# awaitable of either.
ReadCheck = Callable[[str], str | Awaitable[str | None] | None]


class SecondTier(Protocol):
    """Where a local miss is looked up: an object store behind the cache
    (``objectstore.readthrough.ReadThrough``)."""

    async def head(self, key: str) -> ObjectMeta | None:
        """The metadata of ``key``'s object in the second tier, or None."""
        ...

    async def fetch(self, key: str) -> Any:
        """``key``'s object: None (absent or unreachable: a miss), ``LOCAL`` (it is on
        the disk now: read it there) or a fetch with ``meta`` and ``read(start, stop)``,
        an async iterator of its verified bytes (``FetchFailed`` when it cannot end)."""
        ...


class MethodNotAllowed(PackratError):
    code = ErrorCode.METHOD_NOT_ALLOWED

    def __init__(self, method: str, allowed: tuple[str, ...]) -> None:
        super().__init__(f"{method} is not allowed here; allowed: {', '.join(allowed)}")
        self.headers["Allow"] = ", ".join(allowed)


class ObjectPath:
    """One front end's object path: its checks, its second tier, its requests."""

    def __init__(self, frontend: Dependencies) -> None:
        self.frontend = frontend
        self.cross_site = CrossSite(frontend.settings.frontend_allowed_origins)
        self.checks: list[Check] = [self.cross_site, self.authorize]
        self.read_checks: list[ReadCheck] = []
        self.second_tier: SecondTier | None = None
        self.tasks: set[asyncio.Task[None]] = set()  # drops running in the background

    def delegate(
        self,
        exchange: Exchange,
        raw_key: str,
        exists: bool = False,
        stored: tuple[tuple[str, str], ...] = (),
        route: str | None = None,
        replace: bool = True,
    ) -> Delegate:
        """The delegate that answers ``exchange`` for ``raw_key`` (still percent-encoded).

        A build tool's route names itself (``route``, for the metrics), may
        give headers an upload keeps with its object (``stored``), and may
        forbid an upload to replace an object (``replace``: 409 instead).
        """
        method = exchange.request.method
        exchange.route = route or (EXISTS_ROUTE if exists else OBJECT_ROUTE)
        allowed = EXISTS_METHODS if exists else OBJECT_METHODS
        if method not in allowed:
            raise MethodNotAllowed(method, allowed)
        return ObjectRequest(self, exchange, raw_key, exists, stored, replace)

    def authorize(self, exchange: Exchange) -> Awaitable[None] | None:
        """Access control, the first check: the read right to read, the write right else."""
        request = exchange.request
        right = RIGHTS.get(request.method, WRITE)
        return self.frontend.auth.check(right, request.headers.get("authorization"))

    def check(self, exchange: Exchange) -> Awaitable[None] | None:
        """Run the checks in order; an awaitable if one of them must wait."""
        for position, check in enumerate(self.checks):
            waiting = check(exchange)
            if waiting is not None:
                return self._check_after(exchange, waiting, position + 1)
        return None

    async def _check_after(self, exchange: Exchange, waiting: Awaitable[None], rest: int) -> None:
        await waiting
        for check in self.checks[rest:]:
            more = check(exchange)
            if more is not None:
                await more

    def spawn(self, coroutine: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


class ObjectRequest(Delegate):
    """One request for an object or its existence."""

    __slots__ = (
        "exchange",
        "exists",
        "frontend",
        "key",
        "path",
        "raw_key",
        "receiver",
        "replace",
        "stored",
    )

    def __init__(
        self,
        path: ObjectPath,
        exchange: Exchange,
        raw_key: str,
        exists: bool,
        stored: tuple[tuple[str, str], ...] = (),
        replace: bool = True,
    ) -> None:
        self.path = path
        self.frontend = path.frontend
        self.exchange = exchange
        self.raw_key = raw_key
        self.exists = exists
        self.receiver: BodyReceiver | None = None
        self.key = ""
        self.stored = stored  # headers an upload keeps with its object
        self.replace = replace  # whether an upload may replace a stored object

    # -- the headers: checks, key, then the method

    def headers_received(self) -> Awaitable[None] | None:
        waiting = self.path.check(self.exchange)
        if waiting is not None:
            return self._after_checks(waiting)
        return self._answer()

    async def _after_checks(self, waiting: Awaitable[None]) -> None:
        await waiting
        more = self._answer()
        if more is not None:
            await more

    def _answer(self) -> Awaitable[None] | None:
        self.key = decode_key(self.raw_key)
        method = self.exchange.request.method
        if self.exists or method == "GET" or method == "HEAD":
            for check in self.path.read_checks:
                unusable = check(self.key)
                if unusable is not None:
                    return self._read_unless(unusable)
            return self._exists() if self.exists else self._read(method == "GET")
        if method == "DELETE":
            return self._delete()
        if not self.replace:
            return self._receive_unless_stored()
        self._receive()
        return None

    # -- reads

    def _read_unless(self, unusable: str | Awaitable[str | None]) -> Awaitable[None] | None:
        """A read that a read check had something to say of: a miss when it says why."""
        if not isinstance(unusable, str):
            return self._read_after(unusable)
        log.debug("answered %s as a miss: %s", self.exchange.request.path, unusable)
        if self.exists:
            self._present(False)
            return None
        self._count_miss()
        raise NotFound(unusable)

    async def _read_after(self, unusable: Awaitable[str | None]) -> None:
        reason = await unusable
        more = (
            self._read_unless(reason)
            if reason is not None
            else self._exists()
            if self.exists
            else self._read(self.exchange.request.method == "GET")
        )
        if more is not None:
            await more

    def _read(self, with_body: bool, second_tier: bool = True) -> Awaitable[None] | None:
        if not with_body:
            return self._head(second_tier)
        frontend = self.frontend
        key = self.key
        exchange = self.exchange
        try:
            kept = frontend.metadata.body(key)  # a small object's verified bytes: one lstat
            opened = open_to_read(frontend.layout, key, WHOLE_FILE) if kept is None else None
        except CorruptObject as e:
            return self._drop_then_miss(e)
        except OSError as e:
            raise _os_error(e) from None
        if kept is not None:
            meta, kept_body = kept
            frontend.coordinator.touch(key)
            frontend.metrics.hit()
            answer = plan(frontend, exchange.request.headers, meta, True)
            exchange.respond_block(
                answer.status, answer.head, kept_body[answer.start : answer.stop]
            )
            return None
        if opened is None:
            return self._miss(True, second_tier)
        fd, meta, info, data = opened
        frontend.coordinator.touch(key)
        frontend.metrics.hit()
        try:
            answer = plan(frontend, exchange.request.headers, meta, True)
            if not answer.body:
                exchange.respond_block(answer.status, answer.head, b"")
            elif data is not None:
                body = small_body(frontend, key, info, meta, data, answer)
                if body is None:  # corrupt: nothing was sent yet
                    inode = (info.st_dev, info.st_ino)
                    return self._drop_then_miss(CorruptObject("its digest does not match", inode))
                exchange.respond_block(answer.status, answer.head, body)
            else:
                exchange.start(answer.status, [envelope.common_lines(), *answer.headers])
                inode = (info.st_dev, info.st_ino)
                sending = send_body(exchange, frontend, fd, meta, inode, answer)
                fd = -1  # send_body closes it
                return sending
        finally:
            if fd >= 0:
                os.close(fd)
        return None

    def _head(self, second_tier: bool) -> Awaitable[None] | None:
        """``HEAD``: the metadata alone, from the front end's ``MetadataCache``."""
        frontend = self.frontend
        try:
            meta = frontend.metadata.read(self.key)
        except CorruptObject as e:
            return self._drop_then_miss(e, False)
        except OSError as e:
            raise _os_error(e) from None
        if meta is None:
            return self._miss(False, second_tier)
        frontend.coordinator.touch(self.key)
        frontend.metrics.hit()
        answer = plan(frontend, self.exchange.request.headers, meta, False)
        self.exchange.respond_block(answer.status, answer.head, b"")
        return None

    def _miss(self, with_body: bool = True, second_tier: bool = True) -> Awaitable[None] | None:
        tier = self.path.second_tier
        if tier is not None and second_tier:
            return self._from_second_tier(tier, with_body)
        self._count_miss()
        raise NotFound(f"no object under key {self.key!r}")

    def _count_miss(self) -> None:
        self.frontend.coordinator.miss()
        self.frontend.metrics.miss()

    async def _from_second_tier(self, tier: SecondTier, with_body: bool) -> None:
        """A local miss answered from the second tier (a miss all the same, in the counts).

        ``HEAD`` asks for the metadata only; ``GET`` fetches the object,
        which the tier stores locally as it streams it: the answer is planned
        from its metadata as for a local object (ranges, 304), and cut if the
        fetch fails before its last, verified byte.
        """
        from packrat.objectstore.readthrough import LOCAL, FetchFailed  # only then: boto3

        key = self.key
        exchange = self.exchange
        if not with_body:
            meta = await tier.head(key)
            if meta is None:
                self._count_miss()
                raise NotFound(f"no object under key {key!r}")
            self._count_miss()
            answer = plan(self.frontend, exchange.request.headers, meta, with_body=False)
            exchange.respond(answer.status, [*envelope.common_fields(), *answer.headers], b"")
            return
        fetched = await tier.fetch(key)
        if fetched is None:
            self._count_miss()
            raise NotFound(f"no object under key {key!r}")
        if fetched == LOCAL:  # on the disk now (fetched meanwhile by another front end)
            more = self._read(with_body, second_tier=False)
            if more is not None:
                await more
            return
        self._count_miss()
        answer = plan(self.frontend, exchange.request.headers, fetched.meta, with_body=True)
        exchange.start(answer.status, [*envelope.common_fields(), *answer.headers])
        if not answer.body:
            exchange.end()  # a 304: the fetch goes on and stores the object
            return
        idle = self.frontend.settings.frontend_idle_timeout
        try:
            async for chunk in fetched.read(answer.start, answer.stop):
                exchange.write(chunk)
                async with asyncio.timeout(idle):
                    await exchange.drain()
        except FetchFailed as e:
            log.error("cut the answer of %r fetched from the object store: %s", key, e)
            exchange.close()
            return
        except (ConnectionResetError, TimeoutError):
            exchange.close()
            return
        exchange.end()

    async def _drop_then_miss(self, error: CorruptObject, with_body: bool = True) -> None:
        """A corrupt object: dropped through the coordinator before the client hears of it."""
        log.error("the object of key %r is unreadable: %s", self.key, error)
        if error.inode is not None:
            await drop_corrupt(self.frontend, self.key, error.inode)
        if self.exists:
            self._present(False)
            return
        more = self._miss(with_body)
        if more is not None:
            await more

    # -- exists

    def _exists(self) -> Awaitable[None] | None:
        try:
            meta = self.frontend.metadata.read(self.key)
        except CorruptObject as e:
            return self._drop_then_miss(e)
        except OSError as e:
            raise _os_error(e) from None
        if meta is not None:
            self._present(True)
            return None
        if self.path.second_tier is not None:
            return self._exists_in_second_tier(self.path.second_tier)
        self._present(False)
        return None

    async def _exists_in_second_tier(self, tier: SecondTier) -> None:
        self._present(await tier.head(self.key) is not None)

    def _present(self, present: bool) -> None:
        etag = EXISTS_ETAG[present]
        match = self.exchange.request.headers.get("if-none-match")
        if match is not None and _etag_matches(match, etag):
            common = envelope.common_lines(json_body=True)
            self.exchange.respond(304, [common, ("Etag", etag)], b"")
        else:
            self.exchange.respond_block(200, EXISTS_HEADS[present], EXISTS_BODY[present])

    # -- delete

    async def _delete(self) -> None:
        frontend = self.frontend
        if frontend.uploader is not None:  # in the object store too
            from packrat.objectstore.frontend import delete  # only with [objectstore]

            await delete(frontend, self.key)
        else:
            await frontend.coordinator.delete(self.key)
        self._json({"success": True, "key": self.key})

    # -- uploads

    def _receive(self) -> None:
        self.receiver = BodyReceiver(
            self.frontend,
            self.exchange.request.headers,
            self.exchange,
            self.exchange.request.method == "POST",
            self.exchange.fail,
        )

    def _receive_unless_stored(self) -> Awaitable[None] | None:
        """An upload that may not replace an object: 409 before its body is read when
        one is stored, here or in the second tier (the commit checks again, at once)."""
        if is_stored(self.frontend.layout, self.key):
            raise AlreadyStored(f"an object is stored under key {self.key!r} already; kept it")
        tier = self.path.second_tier
        if tier is None:
            self._receive()
            return None
        return self._receive_unless_in(tier)

    async def _receive_unless_in(self, tier: SecondTier) -> None:
        if await tier.head(self.key) is not None:
            raise AlreadyStored(f"an object is stored under key {self.key!r} already; kept it")
        self._receive()

    def data_received(self, chunk: bytes) -> None:
        if self.receiver is not None:
            self.receiver.feed(chunk)

    def finish(self) -> Awaitable[None] | None:
        receiver = self.receiver
        if receiver is None or not receiver.complete():
            return None  # answered already
        if self.exchange.request.method == "POST":
            return receiver.finish_form(self.key, self.replace, self._committed)
        return receiver.finish_raw(
            self.key, self._filename(), self.stored, self.replace, self._committed
        )

    def _committed(self, result: dict[str, Any] | None, error: PackratError | None) -> None:
        """The commit's outcome (from the coordinator's reply, on the loop)."""
        if self.receiver is not None:
            self.receiver.end()  # the staging file goes before an error is answered; the slot
        if error is not None:
            self.exchange.fail(error)
        elif result is not None and not self.exchange.closed:  # closed: stored all the same
            body = answer_body(result)
            length = f"Content-Length: {len(body)}\r\n"
            self.exchange.respond(200, [envelope.common_lines(json_body=True), length], body)

    def _filename(self) -> str | None:
        query = self.exchange.request.query
        if not query:
            return None
        try:
            return query_argument(query, "filename")
        except UnicodeDecodeError:
            raise BadRequest("the query string is not UTF-8") from None

    def failed(self, error: PackratError) -> None:
        self.release()

    def on_connection_close(self) -> None:
        self.release()

    def release(self) -> None:
        if self.receiver is not None:
            self.receiver.end()

    def _json(self, payload: dict[str, object]) -> None:
        self.exchange.respond(200, *envelope.json_answer(payload))


@functools.lru_cache(maxsize=4096)
def decode_key(raw: str) -> str:
    """The key of a path's tail, decoded as Tornado decodes path arguments.

    Remembered: a cache is asked for the same keys again and again (a refused
    one raises, and is not remembered).

    >>> decode_key("a%2Bb/c")
    'a+b/c'
    """
    try:
        key = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the URL is not UTF-8 once percent-decoded") from None
    return validate_key(key)


def query_argument(query: str, name: str) -> str | None:
    """The last value of a query argument, as ``RequestHandler.get_query_argument`` reads it.

    >>> query_argument("filename=x&filename=%20last%01", "filename")
    'last'
    """
    values = parse_qs_bytes(query, keep_blank_values=True).get(name)
    if not values:
        return None
    return _CONTROL.sub(" ", values[-1].decode("utf-8")).strip()


def _os_error(error: OSError) -> PackratError:
    """Out of file descriptors is a 503 ``too_busy``: the accept loop pauses meanwhile
    (``server.accept_connections``), and a retry soon succeeds."""
    if error.errno in (errno.EMFILE, errno.ENFILE):
        return TooBusy("the server has no file descriptor free; retry shortly")
    log.error("opening an object failed: %s", error)
    return PackratError("the server failed to handle the request", log_message=str(error))


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    return any(candidate.strip().removeprefix("W/") == etag for candidate in header.split(","))


__all__ = ["CoordinatorUnavailable", "ObjectPath", "SecondTier"]
