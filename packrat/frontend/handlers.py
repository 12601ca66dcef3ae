"""HTTP handlers: the public API.

``GET /``              status page with an upload form
``POST /``             the form's upload (fields ``key`` and ``file``)
``GET /<key>``         the object, as an attachment with its uploaded name
``POST /<key>``        upload (multipart/form-data, field ``file``)
``GET /exists/<key>``  ``{"present": true|false}``

Reads never wait for the coordinator: the object's path is a function of the
key and its metadata is in the file.  Writes stream to ``staging/`` and then
ask the coordinator to commit.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import os
from typing import Any

from tornado.iostream import StreamClosedError
from tornado.web import HTTPError, RequestHandler, stream_request_body

from packrat.config import Settings
from packrat.errors import (
    ChecksumMismatch,
    CoordinatorUnavailable,
    InvalidKeyError,
    NotFound,
    PackratError,
    TooLarge,
)
from packrat.frontend.client import CoordinatorClient
from packrat.frontend.headers import content_disposition
from packrat.frontend.upload import MultipartForm, StagedFile
from packrat.keys import InvalidKey, validate_key
from packrat.storage import CorruptObject, Layout, ObjectMeta, open_object

log = logging.getLogger("packrat.frontend")

READ_CHUNK = 64 * 1024
MULTIPART_SLACK = 64 * 1024  # room for boundaries and part headers around the file
DIGEST_HEADER = "X-Packrat-Sha256"
UNLIMITED_BODY = 1 << 62
SMALL_BODY = 64 * 1024  # the most any request that is not an upload may carry


class BaseHandler(RequestHandler):
    """Shared dependencies and the one JSON error renderer."""

    def initialize(self, settings: Settings, layout: Layout, client: CoordinatorClient) -> None:
        self.settings_ = settings
        self.layout = layout
        self.client = client

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
    """Streams a multipart upload to staging and commits it.

    Limits are checked in ``prepare`` (before any body byte is read); an error
    found while the body streams is answered at once and the rest of the body
    is discarded; the staging file is removed on every path that does not
    commit it.
    """

    staged: StagedFile | None = None
    form: MultipartForm | None = None
    error: PackratError | None = None  # found while the body streamed
    received = 0  # body bytes so far
    body_limit = 0

    def prepare(self) -> None:
        if self.request.method != "POST":
            return
        self.upload_key_from_path()  # a bad key in the URL is refused before the body
        limit = self.settings_.max_file_size
        declared = self.request.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
            raise TooLarge(f"the upload is larger than the limit of {limit} bytes")
        # Tornado checks its own limit before handing us a chunk, even a huge
        # one; lift it for uploads and count here, so a too-large chunked
        # body still gets a JSON 413.
        self.request.connection.set_max_body_size(UNLIMITED_BODY)
        self.body_limit = limit + MULTIPART_SLACK
        self.staged = StagedFile(self.layout, limit)
        self.form = MultipartForm(self.request.headers.get("Content-Type", ""), self.staged.write)

    def data_received(self, chunk: bytes) -> None:
        if self.error is not None or self.form is None:
            return
        self.received += len(chunk)
        try:
            if self.received > self.body_limit:
                raise TooLarge(f"the upload is larger than the limit of {self.staged.limit} bytes")
            self.form.feed(chunk)
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
        if expected and expected.strip().lower() != self.staged.hexdigest():
            raise ChecksumMismatch(
                "the upload's sha256 does not match the expected digest; nothing was stored"
            )
        filename = self.form.filename or key.rsplit("/", 1)[-1]
        content_type = (
            self.form.content_type
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

    def on_finish(self) -> None:
        self._discard()

    def _discard(self) -> None:
        if self.staged is not None:
            self.staged.discard()
            self.staged = None


class StatusHandler(UploadHandler):
    """``GET /``: counters and the upload form; ``POST /``: the form's upload."""

    async def get(self) -> None:
        try:
            stats: dict[str, Any] | None = await self.client.request("stats")
        except CoordinatorUnavailable:
            stats = None
        self.set_header(
            "Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'"
        )
        self.render("status.html", stats=stats, max_file_size=self.settings_.max_file_size)


class ObjectHandler(UploadHandler):
    """``GET /<key>`` streams the object; ``POST /<key>`` uploads it."""

    async def get(self, raw_key: str) -> None:
        key = self.valid_key(raw_key)
        opened = await self._open(key)
        if opened is None:
            self.client.miss()
            raise NotFound(f"no object under key {key!r}")
        fd, meta = opened
        self.client.touch(key)
        try:
            self.set_header("Content-Type", meta.content_type)
            self.set_header("Content-Disposition", content_disposition(meta.filename))
            self.set_header("Content-Length", str(meta.size))
            self.set_header("ETag", f'"{meta.sha256}"')
            await self._stream_verified(fd, meta)
        finally:
            os.close(fd)

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
            self.write(chunk)
            try:
                await self.flush()
            except StreamClosedError:
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
