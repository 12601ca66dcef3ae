"""Receiving an upload: the body streamed into ``staging/``, then committed.

``Upload`` is the part of a request handler that receives a file: the
handler creates it once the headers are in (limits and the key already
checked), feeds it each body chunk, and asks it to commit at the end.  A
multipart ``POST`` body goes through ``MultipartForm`` and only the ``file``
part reaches the staging file; a ``PUT`` body is the file.  The staging file
is removed on every path that does not commit it.

``BodyReceiver`` receives one for the object path; ``UploadReceiver`` adapts it
to the status page's form handler; each upload holds one of the process's
``upload_slots``.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import mimetypes
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quote
from typing import TYPE_CHECKING, Any, Protocol

from tornado.web import RequestHandler

from packrat.coordinator.connection import AsyncCoordinatorClient, checked
from packrat.coordinator.protocol import Commit, Reply
from packrat.core.errors import (
    AlreadyStored,
    ChecksumMismatch,
    CoordinatorUnavailable,
    InsufficientStorage,
    OutcomeUnknown,
    PackratError,
    TooLarge,
)
from packrat.core.keys import validate_key
from packrat.frontend.buildcache import check_upload
from packrat.frontend.headers import clean_content_type, disposition_filename
from packrat.frontend.multipart import MultipartForm, clean_filename
from packrat.frontend.page import human_bytes
from packrat.store import Layout, NoSpace, ObjectMeta, StagedFile

if TYPE_CHECKING:
    from packrat.frontend.dependencies import Dependencies

log = logging.getLogger("packrat.frontend")

MULTIPART_SLACK = 64 * 1024  # room for boundaries and part headers around the file
UNLIMITED_BODY = 1 << 62
DIGEST_HEADER = "x-packrat-sha256"  # X-Packrat-Sha256, looked up by its lower-case name
# Request bodies that describe a form, never a stored file's own type.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_CONTENT_LENGTH = re.compile(r"[0-9]{1,18}")  # ASCII digits, and no int() of 5,000 of them


@functools.lru_cache(maxsize=4096)
def guess_type(filename: str) -> str | None:
    """The type ``mimetypes`` guesses from a file name, remembered per name."""
    return mimetypes.guess_type(filename)[0]


@dataclass(frozen=True)
class SizeLimit:
    """The one size rule of an upload, checked as early as each number is known.

    The file may have at most ``file`` bytes (``[cache] max_file_size``);
    the request body at most ``body``: the file plus, for a multipart form,
    ``MULTIPART_SLACK`` for boundaries, part headers and small fields.  A
    declared ``Content-Length`` is checked before a byte is read, the body as
    it arrives, the file before each write.

    >>> limit = SizeLimit.of(1000, multipart=True)
    >>> limit.check(body=1000 + MULTIPART_SLACK), limit.check(file=1000)
    (None, None)
    >>> limit.check(file=1001)
    Traceback (most recent call last):
    packrat.core.errors.TooLarge: the upload is larger than the limit of 1000 B (1,000 bytes)
    """

    file: int
    body: int

    @classmethod
    def of(cls, max_file_size: int, multipart: bool) -> SizeLimit:
        return cls(max_file_size, max_file_size + (MULTIPART_SLACK if multipart else 0))

    def check(self, *, file: int = 0, body: int = 0) -> None:
        """Raise the 413 when the file or the body is over its bound."""
        if file > self.file or body > self.body:
            raise TooLarge(
                f"the upload is larger than the limit of {human_bytes(self.file)} "
                f"({self.file:,} bytes)"
            )


def declared_length(value: str | None) -> int | None:
    """A request's ``Content-Length`` as a number; None when absent or not plain digits.

    A length too long to be true counts as huge, not as malformed: it is
    answered 413 before Tornado refuses the framing.

    >>> declared_length("1024"), declared_length("\\u00b2"), declared_length(None)
    (1024, None, None)
    >>> declared_length("9" * 5000) > 10**18
    True
    """
    if value is None:
        return None
    value = value.strip()
    if _CONTENT_LENGTH.fullmatch(value):
        return int(value)
    if value.isascii() and value.isdigit():
        return 1 << 62
    return None


# Hears an upload's outcome once: the JSON answer, or the error to answer.
Committed = Callable[[dict[str, Any] | None, PackratError | None], None]


def answer_body(result: Mapping[str, Any]) -> bytes:
    """``envelope.json_body`` of ``Upload``'s answer, made without ``json.dumps``'s
    encoder (a tenth of a small upload's Python calls).

    >>> result = {"success": True, "key": "a/\\u00e9\\\\", "size": 3, "sha256": "ab",
    ...           "filename": 'x"y', "content_type": "text/plain", "evicted": 0}
    >>> from packrat.frontend.envelope import json_body
    >>> answer_body(result) == json_body(result)
    True
    """
    return (
        f'{{"success": true, "key": {_quote(result["key"])}, "size": {result["size"]:d}, '
        f'"sha256": {_quote(result["sha256"])}, "filename": {_quote(result["filename"])}, '
        f'"content_type": {_quote(result["content_type"])}, '
        f'"evicted": {result["evicted"]:d}}}\n'
    ).encode()


class Upload:
    """One upload's body on its way to a staging file, then its commit: ``verify`` the
    digest the client expects, ``seal`` the file (with headers to send back on
    reads) into the ``Commit`` that publishes it (``replace`` False: only if
    the key has no object, ``AlreadyStored`` else, nothing stored), and
    ``settle`` the coordinator's answer into the client's."""

    __slots__ = ("form", "limit", "received", "sealed", "staged")

    def __init__(self, layout: Layout, limit: SizeLimit, content_type: str | None) -> None:
        """``content_type`` is the request's for a multipart ``POST``, None for a raw body."""
        self.limit = limit
        self.received = 0
        self.form = (
            MultipartForm(content_type, self._write_file) if content_type is not None else None
        )
        # once sealed: the file and its metadata (kept if the file is discarded meanwhile)
        self.sealed: tuple[StagedFile, ObjectMeta] | None = None
        try:
            self.staged: StagedFile | None = StagedFile(layout)
        except NoSpace as e:
            raise _disk_full(e) from None

    def feed(self, chunk: bytes) -> None:
        """Take one body chunk; raises the ``PackratError`` that ends the upload."""
        self.received += len(chunk)
        if self.received > self.limit.body:
            self.limit.check(body=self.received)
        if self.form is not None:
            self.form.feed(chunk)
        else:
            self._write_file(chunk)

    def verify(self, expected_sha256: str | None) -> StagedFile:
        """The staged file, once its sha256 is the one the client expects (if it said)."""
        staged = self.staged
        assert staged is not None
        if expected_sha256 and expected_sha256.strip().lower() != staged.hexdigest():
            raise ChecksumMismatch(
                "the upload's sha256 does not match the expected digest; nothing was stored"
            )
        return staged

    def seal(
        self,
        coordinator: AsyncCoordinatorClient,
        key: str,
        filename: str | None,
        content_type: str | None,
        headers: tuple[tuple[str, str], ...] = (),
        replace: bool = True,
    ) -> Commit:
        """Append the trailer and close the staged file; the ``Commit`` that publishes it."""
        staged = self.staged
        assert staged is not None
        filename = clean_filename(filename or "") or key.rsplit("/", 1)[-1]
        content_type = (
            (content_type and clean_content_type(content_type))
            or guess_type(filename)
            or "application/octet-stream"
        )
        try:
            meta, file_size = staged.seal(key, filename, content_type, headers=headers)
        except NoSpace as e:
            raise _disk_full(e) from None
        self.sealed = staged, meta
        return coordinator.requests.commit(
            key, staged.name, file_size, meta.size, meta.filename, not replace
        )

    def settle(self, commit: Commit, outcome: Reply | CoordinatorUnavailable) -> dict[str, Any]:
        """The JSON answer once the coordinator answered ``commit`` (or did not in time),
        or the ``PackratError`` to answer (the client may have left meanwhile, and its
        staging file been discarded)."""
        assert self.sealed is not None
        staged, meta = self.sealed
        key = commit.key
        if isinstance(outcome, CoordinatorUnavailable):
            self.staged = None
            if staged.withdraw():
                raise outcome  # the coordinator can no longer claim it: nothing is stored
            # claimed: the coordinator owns it now
            raise OutcomeUnknown(
                "the cache coordinator took the upload but did not confirm it in time; it may"
                f" or may not be stored: check GET /exists/{key} or upload it again"
            )
        if outcome.error is not None:
            checked(outcome)  # raises its PackratError
        if outcome.present:  # not claimed: the key's object stays, this one goes
            raise AlreadyStored(f"an object is stored under key {key!r} already; kept it")
        self.staged = None  # published by the coordinator
        return {
            "success": True,
            "key": key,
            "size": meta.size,
            "sha256": meta.sha256,
            "filename": meta.filename,
            "content_type": meta.content_type,
            "evicted": outcome.evicted,
        }

    def discard(self) -> None:
        """Remove the staging file (unless committed); idempotent."""
        if self.staged is not None:
            self.staged.discard()
            self.staged = None

    def _write_file(self, data: bytes) -> None:
        staged = self.staged
        if staged is None:
            return
        if staged.size + len(data) > self.limit.file:
            self.limit.check(file=staged.size + len(data))
        try:
            staged.write(data)
        except NoSpace as e:
            raise _disk_full(e) from None


def _disk_full(error: NoSpace) -> InsufficientStorage:
    return InsufficientStorage(
        "the cache's disk is full; the upload was not stored", log_message=str(error)
    )


class BodyConnection(Protocol):
    """What an upload needs of its request's connection (``http1.Exchange``, or the
    ``HTTPConnection`` of a Tornado handler)."""

    def set_max_body_size(self, max_body_size: int) -> None: ...

    def close(self) -> None: ...


class BodyReceiver:
    """The receiving side of one upload: limits before the body, chunks, errors, cleanup.

    Created once the headers are in (the key and access already checked),
    fed each body chunk, ended however the request ends.  An error found
    while the body streams is handed to ``fail`` (which answers it) at once
    and ends the request: the connection is then closed instead of reading
    the rest.  ``objects.ObjectRequest`` uses it for ``PUT``/``POST /<key>``
    through ``finish_raw``/``finish_form``, which seal and send the commit at
    once (a key with a scheme to check first awaits its check) and hand the
    outcome to a callback when the coordinator answers: no task, no
    coroutine an upload.  ``UploadReceiver`` adapts it to the status page's
    form (``commit_form``, awaited).
    """

    def __init__(
        self,
        frontend: Dependencies,
        headers: Mapping[str, str],
        connection: BodyConnection,
        multipart: bool,
        fail: Callable[[PackratError], None],
    ) -> None:
        self.frontend = frontend
        self.headers = headers
        self.fail = fail
        self.error: PackratError | None = None
        limit = _size_limit(frontend.settings.max_file_size, multipart)
        limit.check(body=declared_length(headers.get("content-length")) or 0)
        self.connection = connection
        self.slot = frontend.uploads.take(self._cut_off)
        try:
            content_type = headers.get("content-type", "") if multipart else None
            self.upload = Upload(frontend.layout, limit, content_type)
        except BaseException:
            frontend.uploads.give_back(self.slot)
            raise
        # The connection's own limit is for requests that are not uploads;
        # lift it and count here (one size rule: SizeLimit).
        connection.set_max_body_size(UNLIMITED_BODY)

    def feed(self, chunk: bytes) -> None:
        if self.error is not None:
            return
        self.slot.last_progress = time.monotonic()
        try:
            self.upload.feed(chunk)
        except PackratError as error:
            self.error = error
            self.upload.discard()
            self.fail(error)

    def complete(self) -> bool:
        """Whether the whole body arrived; False when an error was already answered."""
        self.slot.receiving = False
        return self.error is None

    def finish_form(
        self, key: str | None, replace: bool, committed: Committed
    ) -> Awaitable[None] | None:
        """Commit a multipart upload; ``key`` None: the form's ``key`` field names it.

        Raises the ``PackratError`` found before the commit is sent; the
        commit's outcome goes to ``committed``.  Returns the check to await
        when the key's scheme has one (``buildcache``), else None.
        """
        form = self.upload.form
        assert form is not None
        form.close()
        if key is None:
            key = validate_key(form.fields.get("key", ""))
        expected = self.headers.get(DIGEST_HEADER) or form.fields.get("sha256")
        return self._finish(key, form.filename, form.content_type, expected, (), replace, committed)

    def finish_raw(
        self,
        key: str,
        filename: str | None,
        stored: tuple[tuple[str, str], ...],
        replace: bool,
        committed: Committed,
    ) -> Awaitable[None] | None:
        """Commit a ``PUT`` as ``finish_form`` does: name from ``filename`` (the query) or
        ``Content-Disposition``; ``stored``: headers kept with the object,
        ``replace``: whether it may replace one (a build tool's route says)."""
        headers = self.headers
        if not filename:
            disposition = headers.get("content-disposition")
            filename = disposition_filename(disposition) if disposition else None
        content_type = headers.get("content-type", "")
        if content_type and content_type.split(";", 1)[0].strip().lower() in FORM_TYPES:
            content_type = ""  # curl --data-binary's default, not the file's type
        expected = headers.get(DIGEST_HEADER)
        return self._finish(key, filename, content_type, expected, stored, replace, committed)

    async def commit_form(self, key: str | None, replace: bool = True) -> dict[str, Any]:
        """``finish_form``, awaited: the JSON answer, or the error raised."""
        outcome: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        waiting = self.finish_form(key, replace, functools.partial(_resolve, outcome))
        if waiting is not None:
            await waiting
        return await outcome

    def _finish(
        self,
        key: str,
        filename: str | None,
        content_type: str | None,
        expected: str | None,
        stored: tuple[tuple[str, str], ...],
        replace: bool,
        committed: Committed,
    ) -> Awaitable[None] | None:
        staged = self.upload.verify(expected)
        waiting = check_upload(self.frontend, key, staged)
        if waiting is not None:
            send = functools.partial(
                self._send, key, filename, content_type, stored, replace, committed
            )
            return _then(waiting, send)
        self._send(key, filename, content_type, stored, replace, committed)
        return None

    def _send(
        self,
        key: str,
        filename: str | None,
        content_type: str | None,
        stored: tuple[tuple[str, str], ...],
        replace: bool,
        committed: Committed,
    ) -> None:
        coordinator = self.frontend.coordinator
        commit = self.upload.seal(coordinator, key, filename, content_type, stored, replace)
        coordinator.send_request(commit, functools.partial(self._settle, commit, committed))

    def _settle(
        self, commit: Commit, committed: Committed, outcome: Reply | CoordinatorUnavailable
    ) -> None:
        """The coordinator's answer (or its silence): the upload's outcome to ``committed``."""
        try:
            result = self.upload.settle(commit, outcome)
        except PackratError as error:
            committed(None, error)
        except Exception:
            log.exception("committing %r failed", commit.key)
            committed(None, PackratError("the server failed to handle the request"))
        else:
            committed(result, None)

    def _cut_off(self) -> None:
        """A stalled body: its staging file goes before the client hears of it."""
        self.upload.discard()
        self.connection.close()

    def end(self) -> None:
        """Remove the staging file unless committed and free the slot; idempotent."""
        self.upload.discard()
        self.frontend.uploads.give_back(self.slot)


async def _then(waiting: Awaitable[None], then: Callable[[], None]) -> None:
    await waiting
    then()


def _resolve(
    outcome: asyncio.Future[dict[str, Any]],
    result: dict[str, Any] | None,
    error: PackratError | None,
) -> None:
    if outcome.done():  # cancelled meanwhile
        return
    if error is not None:
        outcome.set_exception(error)
    else:
        outcome.set_result(result or {})


@functools.lru_cache(maxsize=16)
def _size_limit(max_file_size: int, multipart: bool) -> SizeLimit:
    return SizeLimit.of(max_file_size, multipart)


class UploadReceiver(BodyReceiver):
    """A handler's side of one upload: created in ``prepare``, fed from
    ``data_received``, ended from ``on_finish``/``on_connection_close``."""

    def __init__(self, handler: RequestHandler, frontend: Dependencies, multipart: bool) -> None:
        self.handler = handler
        request = handler.request
        super().__init__(frontend, request.headers, request.connection, multipart, self._answer)

    def _answer(self, error: PackratError) -> None:
        self.handler.send_error(error.status, exc_info=(type(error), error, None))
