"""HTTP handlers: the public API.

``GET /``              status page with an upload form
``POST /``             the form's upload (fields ``key`` and ``file``)
``GET|HEAD /<key>``    the object, as an attachment with its uploaded name
                       (ranges, validators and conditional requests: RFC 9110)
``POST /<key>``        upload (multipart/form-data, field ``file``)
``PUT /<key>``         upload (the raw body)
``DELETE /<key>``      remove the object
``GET /exists/<key>``  ``{"present": true|false}``
``GET /api/openapi.json``  the OpenAPI 3 description of all of this

Reads never wait for the coordinator: the object's path is a function of the
key and its metadata is in the file.  Writes stream to ``staging/`` and then
ask the coordinator to commit.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import mimetypes
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tornado.httputil import format_timestamp
from tornado.iostream import StreamClosedError
from tornado.web import HTTPError, RequestHandler, StaticFileHandler, stream_request_body

from packrat.config import Settings
from packrat.errors import (
    ChecksumMismatch,
    CoordinatorUnavailable,
    InvalidKeyError,
    NotFound,
    PackratError,
    RangeNotSatisfiable,
    TooBusy,
    TooLarge,
    Unauthorized,
)
from packrat.frontend.auth import READ, WRITE, Authenticator
from packrat.frontend.client import CoordinatorClient
from packrat.frontend.headers import (
    clean_content_type,
    content_disposition,
    disposition_filename,
    etag_in,
    parse_http_date,
    parse_range,
)
from packrat.frontend.upload import MultipartForm, StagedFile, clean_filename
from packrat.keys import InvalidKey, validate_key
from packrat.storage import CorruptObject, Layout, ObjectMeta, open_object

log = logging.getLogger("packrat.frontend")

READ_CHUNK = 64 * 1024
MULTIPART_SLACK = 64 * 1024  # room for boundaries and part headers around the file
DIGEST_HEADER = "X-Packrat-Sha256"
UNLIMITED_BODY = 1 << 62
SMALL_BODY = 64 * 1024  # the most any request that is not an upload may carry
OPENAPI_PATH = Path(__file__).parent / "openapi.json"
STATUS_CSP = (
    "default-src 'none'; style-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
OBJECT_CSP = "default-src 'none'; sandbox"  # a stored file never runs as a page of ours
# Request bodies that describe a form, never a stored file's own type.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def security_headers(handler: RequestHandler) -> None:
    """Headers every response carries, error or not."""
    handler.set_header("X-Content-Type-Options", "nosniff")
    handler.set_header("Cache-Control", "no-store")


class BaseHandler(RequestHandler):
    """Shared dependencies, access control and the one JSON error renderer."""

    # The right each method needs when ``[auth]`` is on.
    RIGHTS = {"GET": READ, "HEAD": READ, "POST": WRITE, "PUT": WRITE, "DELETE": WRITE}

    def initialize(
        self,
        settings: Settings,
        layout: Layout,
        client: CoordinatorClient,
        auth: Authenticator,
    ) -> None:
        self.settings_ = settings
        self.layout = layout
        self.client = client
        self.auth = auth

    def set_default_headers(self) -> None:
        security_headers(self)

    async def prepare(self) -> None:
        await self.authorize()

    async def authorize(self) -> None:
        """401/403 unless the request's credentials allow its method."""
        right = self.RIGHTS.get(self.request.method or "", WRITE)
        await self.auth.require(right, self.request.headers.get("Authorization"))

    def write_json(self, payload: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps(payload))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, PackratError):
            code, message = error.code, error.message
            for name, value in error.headers.items():
                self.set_header(name, value)
            if isinstance(error, Unauthorized):
                for challenge in error.challenges:
                    self.add_header("WWW-Authenticate", challenge)
        elif status_code >= 500:
            code, message = "internal_error", "the server failed to handle the request"
        else:
            code = self._reason.lower().replace(" ", "_")
            message = f"{self._reason} ({status_code})"
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.finish(json.dumps({"success": False, "error": code, "message": message}))

    def valid_key(self, raw: str) -> str:
        try:
            return validate_key(raw)
        except InvalidKey as e:
            raise InvalidKeyError(f"invalid key: {e}") from None


@stream_request_body
class UploadHandler(BaseHandler):
    """Streams an upload (multipart POST or raw PUT) to staging and commits it.

    Access, the key and the size limit are checked in ``prepare`` (before any
    body byte is read); an error found while the body streams is answered at
    once and the rest of the body is discarded; the staging file is removed
    on every path that does not commit it.  A front end runs at most
    ``[frontend] max_uploads`` uploads at once and answers 503 beyond that.
    """

    active_uploads = 0  # in this process, across handlers
    staged: StagedFile | None = None
    form: MultipartForm | None = None
    sink: Callable[[bytes], None] | None = None  # where body bytes go
    error: PackratError | None = None  # found while the body streamed
    received = 0  # body bytes so far
    body_limit = 0
    holds_slot = False

    async def prepare(self) -> None:
        await self.authorize()
        method = self.request.method
        if method not in ("POST", "PUT"):
            return
        if method == "PUT" and not self.path_args:
            raise HTTPError(405)  # PUT needs a key in the URL
        self.upload_key_from_path()  # a bad key in the URL is refused before the body
        limit = self.settings_.max_file_size
        slack = MULTIPART_SLACK if method == "POST" else 0
        declared = self.request.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit + slack:
            raise TooLarge(f"the upload is larger than the limit of {limit} bytes")
        most = self.settings_.frontend_max_uploads
        if most and UploadHandler.active_uploads >= most:
            raise TooBusy(f"this server is already receiving {most} uploads; retry shortly")
        UploadHandler.active_uploads += 1
        self.holds_slot = True
        # Tornado checks its own limit before handing us a chunk, even a huge
        # one; lift it for uploads and count here, so a too-large chunked
        # body still gets a JSON 413.
        self.request.connection.set_max_body_size(UNLIMITED_BODY)
        self.body_limit = limit + slack
        self.staged = StagedFile(self.layout, limit)
        if method == "POST":
            content_type = self.request.headers.get("Content-Type", "")
            self.form = MultipartForm(content_type, self.staged.write)
            self.sink = self.form.feed
        else:
            self.sink = self.staged.write

    def data_received(self, chunk: bytes) -> None:
        if self.error is not None or self.sink is None or self.staged is None:
            return
        self.received += len(chunk)
        try:
            if self.received > self.body_limit:
                raise TooLarge(f"the upload is larger than the limit of {self.staged.limit} bytes")
            self.sink(chunk)
        except TooLarge as error:
            # No point reading on: answer now; Tornado closes the connection.
            self.error = error
            self._discard()
            self.send_error(error.status, exc_info=(type(error), error, None))
        except PackratError as error:
            # Read the (bounded) rest of the body so the client sees the answer.
            self.error = error
            self._discard()

    async def post(self, *args: str) -> None:
        if isinstance(self.error, TooLarge):
            return  # answered in data_received
        if self.error is not None:
            raise self.error
        assert self.form is not None and self.staged is not None
        self.form.close()
        key = self.upload_key_from_path() or self.valid_key(self.form.fields.get("key", ""))
        expected = self.request.headers.get(DIGEST_HEADER) or self.form.fields.get("sha256")
        await self.commit(key, self.form.filename, self.form.content_type, expected)

    async def commit(
        self, key: str, filename: str | None, content_type: str | None, expected: str | None
    ) -> None:
        """Check the digest, seal the staged file and have the coordinator publish it."""
        assert self.staged is not None
        if expected and expected.strip().lower() != self.staged.hexdigest():
            raise ChecksumMismatch(
                "the upload's sha256 does not match the expected digest; nothing was stored"
            )
        filename = clean_filename(filename or "") or key.rsplit("/", 1)[-1]
        content_type = (
            clean_content_type(content_type)
            or mimetypes.guess_type(filename)[0]
            or "application/octet-stream"
        )
        meta, total = self.staged.seal(key, filename, content_type)
        reply = await self.client.request("commit", key=key, staging=self.staged.name, size=total)
        self.staged = None  # renamed into place by the coordinator
        self.write_json(
            {
                "success": True,
                "key": key,
                "size": meta.size,
                "sha256": meta.sha256,
                "filename": meta.filename,
                "content_type": meta.content_type,
                "evicted": reply.get("evicted", 0),
            }
        )

    def upload_key_from_path(self) -> str | None:
        """The key named in the URL, validated; None for the form at ``/``."""
        return self.valid_key(self.path_args[0]) if self.path_args else None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self._discard()  # before the client hears of the failure
        super().write_error(status_code, **kwargs)

    def on_connection_close(self) -> None:
        self._discard()
        self._release()

    def on_finish(self) -> None:
        self._discard()
        self._release()

    def _discard(self) -> None:
        if self.staged is not None:
            self.staged.discard()
            self.staged = None

    def _release(self) -> None:
        if self.holds_slot:
            self.holds_slot = False
            UploadHandler.active_uploads -= 1


class StatusHandler(UploadHandler):
    """``GET /``: counters and the upload form; ``POST /``: the form's upload."""

    async def get(self) -> None:
        try:
            stats: dict[str, Any] | None = await self.client.request("stats")
        except CoordinatorUnavailable:
            stats = None
        self.set_header("Content-Security-Policy", STATUS_CSP)
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "no-referrer")
        self.render("status.html", stats=stats, max_file_size=self.settings_.max_file_size)


class ObjectHandler(UploadHandler):
    """``GET``/``HEAD /<key>`` send the object; ``POST``/``PUT`` upload it; ``DELETE``."""

    async def get(self, raw_key: str) -> None:
        await self._send_object(raw_key, with_body=True)

    async def head(self, raw_key: str) -> None:
        await self._send_object(raw_key, with_body=False)

    async def put(self, raw_key: str) -> None:
        if isinstance(self.error, TooLarge):
            return  # answered in data_received
        if self.error is not None:
            raise self.error
        key = self.valid_key(raw_key)
        filename = self.get_query_argument("filename", None) or disposition_filename(
            self.request.headers.get("Content-Disposition", "")
        )
        content_type = self.request.headers.get("Content-Type", "")
        if content_type.split(";", 1)[0].strip().lower() in FORM_TYPES:
            content_type = ""  # curl --data-binary's default, not the file's type
        expected = self.request.headers.get(DIGEST_HEADER)
        await self.commit(key, filename, content_type, expected)

    async def delete(self, raw_key: str) -> None:
        key = self.valid_key(raw_key)
        await self.client.request("delete", key=key, reason="client")
        self.write_json({"success": True, "key": key})

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

    async def _send_chunk(self, chunk: bytes) -> bool:
        """Write and flush one chunk; False when the client is gone or stalls.

        A client that takes no data for ``idle_timeout`` seconds is cut off,
        so slow readers cannot pin a connection forever.
        """
        self.write(chunk)
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
        offset = start
        while offset < stop:
            chunk = os.pread(fd, min(READ_CHUNK, stop - offset), offset)
            if not chunk:
                log.error("object file shorter than its trailer says; cut the response")
                self.request.connection.close()
                return
            offset += len(chunk)
            if not await self._send_chunk(chunk):
                return

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
        while offset < meta.size:
            chunk = os.pread(fd, min(READ_CHUNK, meta.size - offset), offset)
            if not chunk:
                break
            digest.update(chunk)
            offset += len(chunk)
            if offset >= meta.size and digest.hexdigest() != meta.sha256:
                break
            if not await self._send_chunk(chunk):
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


class OpenAPIHandler(BaseHandler):
    """``GET /api/openapi.json``: the API's description (no credentials needed)."""

    document = OPENAPI_PATH.read_bytes()

    async def prepare(self) -> None:
        pass  # public, like the rest of the documentation

    def get(self) -> None:
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-cache")
        self.finish(self.document)


class NotFoundHandler(BaseHandler):
    """Anything no route matches (``OPTIONS *``, absolute-form targets): JSON 404."""

    async def prepare(self) -> None:
        raise NotFound("no such resource")


class StaticHandler(StaticFileHandler):
    """The status page's stylesheet, with the headers every response carries."""

    def set_default_headers(self) -> None:
        security_headers(self)
        self.set_header("Cache-Control", "public, max-age=3600")
