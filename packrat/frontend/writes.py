"""The write side: uploads (multipart ``POST``, raw ``PUT``) and ``DELETE``."""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from typing import Any

from tornado.web import HTTPError, stream_request_body

from packrat.errors import ChecksumMismatch, PackratError, TooBusy, TooLarge
from packrat.frontend.base import BaseHandler
from packrat.frontend.headers import clean_content_type, disposition_filename
from packrat.frontend.upload import MultipartForm, StagedFile, clean_filename

MULTIPART_SLACK = 64 * 1024  # room for boundaries and part headers around the file
DIGEST_HEADER = "X-Packrat-Sha256"
UNLIMITED_BODY = 1 << 62
# Request bodies that describe a form, never a stored file's own type.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def upload_too_large(limit: int) -> TooLarge:
    return TooLarge(f"the upload is larger than the limit of {limit} bytes")


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
            raise upload_too_large(limit)
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
                raise upload_too_large(self.staged.limit)
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
        if not self.body_received():
            return
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

    def body_received(self) -> bool:
        """Whether the body arrived whole; raises the error found while it streamed.

        False when that error was already answered (413 mid-stream).
        """
        if isinstance(self.error, TooLarge):
            return False  # answered in data_received
        if self.error is not None:
            raise self.error
        return True

    def upload_key_from_path(self) -> str | None:
        """The key named in the URL, validated; None for the form at ``/``."""
        return self.valid_key(self.path_args[0]) if self.path_args else None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        self._discard()  # before the client hears of the failure
        super().write_error(status_code, **kwargs)

    def on_connection_close(self) -> None:
        self._discard()
        self._release()
        super().on_connection_close()

    def on_finish(self) -> None:
        self._discard()
        self._release()
        super().on_finish()

    def _discard(self) -> None:
        if self.staged is not None:
            self.staged.discard()
            self.staged = None

    def _release(self) -> None:
        if self.holds_slot:
            self.holds_slot = False
            UploadHandler.active_uploads -= 1


class ObjectWriter(UploadHandler):
    """``PUT /<key>`` (the raw body is the file) and ``DELETE /<key>``."""

    async def put(self, raw_key: str) -> None:
        if not self.body_received():
            return
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
