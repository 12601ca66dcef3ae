"""A Python client for Packrat's HTTP API::

    from packrat.client import Client

    with Client("http://127.0.0.1:5050") as cache:
        cache.put("reports/q1.pdf", "q1.pdf")     # Stored(key=..., size=..., sha256=...)
        cache.get("reports/q1.pdf", "copy.pdf")

Uploads are ``PUT /<key>`` with the file itself as the request body, sent a
block at a time with its ``Content-Length``, so the server refuses a file
that is too large before reading it, and no multipart boundary has to be
scanned on either side.

Integrity is checked end to end: the file's sha256 is computed before the
upload and sent as ``X-Packrat-Sha256`` (the server stores nothing on a
difference), and the server's answer must name the same digest; a download is
hashed while it is written and must match the ``ETag``, the quoted sha256 of
the stored bytes.  A 503 (coordinator restarting, ``max_uploads`` reached) is
retried after its ``Retry-After``, a bounded number of times.

The client trusts the server no further than the API promises.  It speaks
HTTP/1.1 through the standard library's ``http.client`` (which starts in a
third of the time ``requests`` takes, and decodes nothing on its own): a
download is written as the raw bytes received, at most its
``Content-Length``, and refused before its first byte when the framing is
ambiguous (``Content-Length`` and ``Transfer-Encoding`` together), the length
is not plain digits, or the body is encoded (``Content-Encoding``); a JSON
answer is read up to ``MAX_ANSWER`` bytes and must have the API's shape.
Anything else is ``BadAnswer``.
"""

from __future__ import annotations

import base64
import contextlib
import email.message
import email.utils
import hashlib
import http.client
import json
import logging
import os
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlencode, urlsplit

from packrat import __version__
from packrat.core.keys import InvalidKey, key_path, validate_key
from packrat.core.numbers import whole_number

log = logging.getLogger("packrat.client")

CHUNK = 64 * 1024
DIGEST_HEADER = "X-Packrat-Sha256"
MAX_ANSWER = 1 << 20  # bytes: the most of a JSON answer read (Packrat's are a few KiB)
# A page of key names (GET, DELETE /api/keys): 1000 keys of up to 1 KiB, escaped, with details.
PAGE_ANSWER = 16 << 20
_ETAG = re.compile(r'"([0-9a-f]{64})"')

Progress = Callable[[int, "int | None"], None]
"""Called as ``progress(bytes_so_far, total)`` while a transfer runs (total may be None)."""


class ClientError(Exception):
    """Anything the client raises about a request (local file errors stay ``OSError``)."""


class APIError(ClientError):
    """The server answered with an error: ``status``, the API's ``code`` and ``message``.

    ``code`` is the ``error`` of the JSON body (``too_large``, ``unauthorized``,
    ...; docs/api.md lists them), or ``http_<status>`` when the answer was not
    Packrat's JSON (a proxy's error page).
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(status, code, message)
        self.status = status
        self.code = code
        self.message = message

    def __str__(self) -> str:
        return f"{self.code}: {self.message} (HTTP {self.status})"


class NotFound(APIError, KeyError):
    """No object under that key (404); also a ``KeyError``, as a dict would raise."""


class KeyRefused(APIError):
    """A key the server would refuse (400 ``invalid_key``), refused before anything is
    sent; the message is the server's (``packrat.core.keys``)."""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


class Unavailable(APIError):
    """503 still after the retries: the coordinator is down, or the server too busy."""


class IntegrityError(ClientError):
    """Bytes that do not match their sha256 (on the way up or down)."""


class ChecksumMismatch(APIError, IntegrityError):
    """The server received other bytes than the client hashed; it stored nothing."""


class TransferError(ClientError):
    """The connection failed, timed out or was cut before the exchange completed.

    A download the server finds corrupt while sending is cut short on purpose,
    so it ends here too.
    """


class BadAnswer(TransferError):
    """The server's answer is not what Packrat's API sends: malformed, ambiguous,
    encoded or too large.  Nothing of it is kept."""


_ERRORS_BY_CODE: dict[str, type[APIError]] = {
    "not_found": NotFound,
    "checksum_mismatch": ChecksumMismatch,
}


@dataclass(frozen=True)
class Stored:
    """An object's description: what ``put`` stored or ``get`` fetched."""

    key: str
    size: int
    sha256: str
    filename: str
    content_type: str
    evicted: int = 0  # objects the upload evicted (put only)


class Client:
    """A connection to one Packrat server; not thread-safe (it holds one HTTP
    connection, kept alive between requests): use one per thread.

    :arg url: the server's base URL, e.g. ``http://127.0.0.1:5050`` (``https://``
        verifies the server's certificate against the system's CAs, or
        ``$SSL_CERT_FILE``, unless ``ssl_context`` says otherwise).
    :arg token: a bearer token when the server's ``[auth]`` is on (or HTTP Basic:
        ``http://USER:PASSWORD@host:port``).
    :arg retries: how many times a 503 is retried before ``Unavailable``.
    :arg max_wait: the most seconds one wait for ``Retry-After`` lasts.
    :arg timeout: seconds to connect, and for each read from the server.
    :raises ValueError: when ``url`` is not an ``http://`` or ``https://`` URL, or
        ``token`` is not printable ASCII.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        retries: int = 5,
        max_wait: float = 30.0,
        timeout: float = 60.0,
        ssl_context: Any = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                f"not an http:// or https:// URL: {url!r}"
                + (f" (try http://{url})" if "://" not in url else "")
            )
        try:
            port = parts.port
        except ValueError:
            raise ValueError(f"the port of {url!r} is not a number from 0 to 65535") from None
        self.url = url.rstrip("/")
        self.retries = retries
        self.max_wait = max_wait
        self.timeout = timeout
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        self._ssl_context = ssl_context
        self._connection: http.client.HTTPConnection | None = None
        self._used = False  # whether the connection has carried a request already
        self.headers = {"User-Agent": f"packrat-client/{__version__}"}
        if token:
            if not (token.isascii() and token.isprintable()):
                raise ValueError("a token is printable ASCII (a header carries it)")
            self.headers["Authorization"] = f"Bearer {token}"
        elif parts.username is not None:
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            basic = base64.b64encode(credentials.encode("utf-8")).decode("ascii")
            self.headers["Authorization"] = f"Basic {basic}"
        # Credentials in the URL stay out of messages.
        self.url = self.url.replace(parts.netloc, parts.netloc.rpartition("@")[2], 1)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    # -- the API ------------------------------------------------------------

    def put(
        self,
        key: str,
        file_or_path: str | os.PathLike[str] | IO[bytes],
        *,
        filename: str | None = None,
        content_type: str | None = None,
        progress: Progress | None = None,
    ) -> Stored:
        """Upload a file (a path, or a binary file object from its current position).

        The name to download as is ``filename``, else the path's name, else the
        server's choice (the key's last segment).  What cannot seek (a pipe,
        ``/dev/stdin``, a terminal) is first copied to a temporary file, so
        that its digest can be sent ahead and the upload can be retried.
        """
        path = _path(key)  # a key the server would refuse: before reading the file
        with _seekable(file_or_path) as (f, name):
            start = f.tell()
            digest, size = _hash(f)
            name = filename or name
            path += "?" + urlencode({"filename": name}) if name else ""
            headers = {DIGEST_HEADER: digest}
            if content_type:
                headers["Content-Type"] = content_type

            def body() -> _Body:
                f.seek(start)
                return _Body(f, size, progress)

            with self._send("PUT", path, body=body, headers=headers) as reply:
                answer = _json_answer(reply)
        stored = _shaped(
            answer, {"key": str, "size": int, "sha256": str, "filename": str, "content_type": str}
        )
        evicted = answer.get("evicted", 0)
        if type(evicted) is not int:
            raise BadAnswer(f"the answer's 'evicted' is not a number: {evicted!r}")
        if stored["sha256"] != digest or stored["size"] != size:
            raise IntegrityError(
                f"the server stored {stored['size']} bytes with sha256 "
                f"{stored['sha256']}, but {size} bytes with sha256 {digest} were sent"
            )
        return Stored(evicted=evicted, **stored)

    def get(
        self,
        key: str,
        dest: str | os.PathLike[str] | IO[bytes],
        *,
        progress: Progress | None = None,
    ) -> Stored:
        """Download the object into ``dest`` (a path, or a binary file object).

        A path is written to a temporary file beside it and renamed into place
        only once every byte is verified, so it never holds a partial or
        corrupt download.  A file object may hold part of one when this raises
        (at most the answer's ``Content-Length``).  Raises ``NotFound`` (a
        ``KeyError``) when there is no such object.
        """
        with self._send("GET", _path(key)) as reply:
            stored = _describe(key, reply)
            if isinstance(dest, str | os.PathLike):
                with _replace_when_done(Path(dest)) as f:
                    self._receive(reply, f, stored, progress)
            else:
                self._receive(reply, dest, stored, progress)
        return stored

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        with self._send("GET", "/exists" + _path(key)) as reply:
            present: bool = _shaped(_json_answer(reply), {"present": bool})["present"]
        return present

    def delete(self, key: str) -> None:
        """Remove the object; raises ``NotFound`` when there is none."""
        with self._send("DELETE", _path(key)) as reply:
            _json_answer(reply)

    def list_keys(self, prefix: str = "") -> Iterator[dict[str, Any]]:
        """Every object under ``prefix``, in key order, one page (``GET /api/keys``) at a
        time: dicts of ``key``, ``size``, ``sha256``, ``stored_at``, ``content_type``,
        ``filename``.  Needs the list right."""
        after = ""
        while True:
            query = urlencode({"prefix": prefix, "after": after})
            with self._send("GET", f"/api/keys?{query}") as reply:
                page = _json_answer(reply, PAGE_ANSWER)
            _shaped(page, {"keys": list})
            for entry in page["keys"]:
                if not isinstance(entry, dict):
                    raise BadAnswer(f"the server's listing holds a non-object: {entry!r:.80}")
                _shaped(entry, {"key": str, "size": int, "stored_at": float})
                yield entry
            cursor = _json_cursor(page)
            if cursor is None:
                return
            if cursor <= after:  # a listing that goes back would never end
                raise BadAnswer(
                    f"the server's listing goes back: {cursor!r:.80} after {after!r:.80}"
                )
            after = cursor

    def purge(self, prefix: str) -> Iterator[list[str]]:
        """Remove every object under ``prefix``, a batch (``DELETE /api/keys``) at a time,
        yielding the keys of each batch.  Stopped at any point, running it again finishes
        the job.  Needs the write and list rights."""
        while True:
            query = urlencode({"prefix": prefix})
            with self._send("DELETE", f"/api/keys?{query}") as reply:
                batch = _shaped(_json_answer(reply, PAGE_ANSWER), {"keys": list, "more": bool})
            yield [str(key) for key in batch["keys"]]
            if not batch["more"]:
                return
            if not batch["keys"]:  # "more", yet nothing removed: it would never end
                raise BadAnswer("the server's purge removes nothing yet says more remain")

    def stat(self) -> dict[str, Any]:
        """The server's figures (``GET /api/stats``): objects, bytes, hits, hit_ratio, ..."""
        with self._send("GET", "/api/stats") as reply:
            return _json_answer(reply)

    # -- plumbing -------------------------------------------------------------

    @contextlib.contextmanager
    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Callable[[], _Body] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Iterator[http.client.HTTPResponse]:
        """One request, retried on 503; raises ``APIError`` for any error answer.

        Yields the answer with its body unread; the connection is kept for the
        next request only if the caller read the body to its end.
        """
        for attempt in range(self.retries + 1):
            reply = self._exchange(method, path, body, headers or {})
            if reply.status == 503 and attempt < self.retries:
                wait = min(_retry_after(reply.getheader("Retry-After")), self.max_wait)
                error = _api_error(reply)
                self._finish(reply)
                log.info(
                    "%s %s: 503 %s, retrying in %.0f s (%d of %d)",
                    method,
                    path,
                    error.code,
                    wait,
                    attempt + 1,
                    self.retries,
                )
                time.sleep(wait)
                continue
            try:
                if 300 <= reply.status < 400:
                    location = reply.getheader("Location", "")
                    raise APIError(
                        reply.status, f"http_{reply.status}", f"redirected to {location}"
                    )
                if reply.status >= 400:
                    raise _api_error(reply)
                if reply.status != 200:
                    raise BadAnswer(f"{method} {path} answered HTTP {reply.status}, not 200")
                yield reply
            finally:
                self._finish(reply)
            return
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _exchange(
        self, method: str, path: str, body: Callable[[], _Body] | None, headers: dict[str, str]
    ) -> http.client.HTTPResponse:
        """Send one request and read the answer's head; a connection kept alive
        that the server has closed meanwhile is replaced once."""
        for fresh in (False, True):
            reused = self._used and not fresh
            if fresh:
                self.close()
            connection = self._connect()
            self._used = True
            try:
                self._request(connection, method, path, body() if body else None, headers)
                reply = connection.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                self.close()
                if reused:
                    continue
                raise TransferError(self._failed(method, path, e)) from None
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise TransferError(self._failed(method, path, e)) from None
            _check_framing(reply, method, path)
            return reply
        raise AssertionError("unreachable: the fresh connection returns or raises")

    def _request(
        self,
        connection: http.client.HTTPConnection,
        method: str,
        path: str,
        body: _Body | None,
        headers: dict[str, str],
    ) -> None:
        connection.putrequest(method, self._prefix + path, skip_accept_encoding=True)
        for name, value in {**self.headers, "Accept-Encoding": "identity", **headers}.items():
            connection.putheader(name, value)
        if body is not None or method in ("PUT", "POST"):
            connection.putheader("Content-Length", str(len(body) if body else 0))
        connection.endheaders()
        if body is None:
            return
        try:
            while chunk := body.read(CHUNK):
                connection.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            # The server answered before the whole body (a 413 from the
            # Content-Length, say): its answer is read next.
            pass

    def _connect(self) -> http.client.HTTPConnection:
        if self._connection is None:
            if self._https:
                self._connection = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self.timeout, context=self._ssl_context
                )
            else:
                self._connection = http.client.HTTPConnection(
                    self._host, self._port, timeout=self.timeout
                )
            self._used = False
        return self._connection

    def _finish(self, reply: http.client.HTTPResponse) -> None:
        """Keep the connection only when the answer was read to its end."""
        if not reply.isclosed() or reply.will_close:
            self.close()

    def _failed(self, method: str, path: str, error: BaseException) -> str:
        """One line saying what went wrong with the server, without a library's internals."""
        where = f"{self._host}:{self._port}"
        if isinstance(error, socket.gaierror):
            return f"cannot resolve {self._host!r}: {error.strerror}"
        if isinstance(error, ConnectionRefusedError):
            return f"cannot connect to {where}: connection refused (is the server running?)"
        if isinstance(error, TimeoutError):
            return f"{method} {self.url}{path}: no answer from {where} within {self.timeout:g} s"
        if isinstance(error, http.client.RemoteDisconnected | ConnectionResetError):
            return f"{method} {self.url}{path}: {where} closed the connection without an answer"
        if isinstance(error, http.client.HTTPException):
            return f"{method} {self.url}{path}: {where} sent no valid HTTP answer ({error!r})"
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        return f"{method} {self.url}{path}: {where}: {reason}"

    def _receive(
        self,
        reply: http.client.HTTPResponse,
        out: IO[bytes],
        stored: Stored,
        progress: Progress | None,
    ) -> None:
        """Copy exactly ``stored.size`` raw bytes into ``out``, hashing them; raise
        unless they are all there and match."""
        hasher = hashlib.sha256()
        done = 0
        while done < stored.size:
            try:
                chunk = reply.read(min(CHUNK, stored.size - done))
            except (OSError, http.client.HTTPException) as e:
                self.close()
                raise TransferError(
                    f"the download of {stored.key!r} was cut after {done} of "
                    f"{stored.size} bytes: {e!r}"
                ) from None
            if not chunk:
                raise TransferError(
                    f"the download of {stored.key!r} ended after {done} of {stored.size} bytes"
                )
            hasher.update(chunk)
            out.write(chunk)
            done += len(chunk)
            if progress:
                progress(done, stored.size)
        if hasher.hexdigest() != stored.sha256:
            raise IntegrityError(
                f"the bytes received for {stored.key!r} have sha256 {hasher.hexdigest()}, "
                f"not {stored.sha256} (the ETag)"
            )


class _Body:
    """A request body read from a file a block at a time, reporting progress."""

    def __init__(self, f: IO[bytes], size: int, progress: Progress | None) -> None:
        self.f = f
        self.size = size
        self.progress = progress
        self.done = 0

    def __len__(self) -> int:
        return self.size

    def read(self, amount: int) -> bytes:
        chunk = self.f.read(min(amount, self.size - self.done))
        self.done += len(chunk)
        if self.progress and chunk:
            self.progress(self.done, self.size)
        return chunk


def _path(key: str) -> str:
    """The URL path of ``key``; a key the server would refuse is refused here, before
    any byte is sent, with the server's code and message (400 ``invalid_key``)."""
    try:
        return key_path(validate_key(key))
    except InvalidKey as e:
        raise KeyRefused(e.status, e.code.value, e.message) from None


def _hash(f: IO[bytes]) -> tuple[str, int]:
    """sha256 and size of the rest of ``f``, read a block at a time."""
    hasher = hashlib.sha256()
    size = 0
    while chunk := f.read(CHUNK):
        hasher.update(chunk)
        size += len(chunk)
    return hasher.hexdigest(), size


@contextlib.contextmanager
def _seekable(
    file_or_path: str | os.PathLike[str] | IO[bytes],
) -> Iterator[tuple[IO[bytes], str | None]]:
    """A seekable binary file for an upload, and the name to send with it.

    A path that is not a regular file (``/dev/stdin``, ``<(tar c dir)``, a
    FIFO) is read once into a temporary file, and sent without its name.
    """
    if isinstance(file_or_path, str | os.PathLike):
        path = Path(file_or_path)
        with open(path, "rb") as f:
            if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                yield f, path.name
                return
            with _spooled(f) as spool:
                yield spool, None
        return
    name = getattr(file_or_path, "name", None)
    name = Path(name).name if isinstance(name, str) and not name.startswith("<") else None
    if _can_seek(file_or_path):
        yield file_or_path, name
        return
    with _spooled(file_or_path) as spool:
        yield spool, name


@contextlib.contextmanager
def _spooled(f: IO[bytes]) -> Iterator[IO[bytes]]:
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(f, spool, CHUNK)
        spool.seek(0)
        yield spool


def _can_seek(f: IO[bytes]) -> bool:
    try:
        return f.seekable()
    except (AttributeError, OSError, ValueError):
        return False


@contextlib.contextmanager
def _replace_when_done(dest: Path) -> Iterator[IO[bytes]]:
    """A temporary file beside ``dest``, renamed onto it only if the block succeeds."""
    fd, temp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
        os.replace(temp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _check_framing(reply: http.client.HTTPResponse, method: str, path: str) -> None:
    """Refuse, before reading a byte of it, a body whose end or encoding is in doubt."""
    length = reply.getheader("Content-Length")
    problem = None
    if length is not None and reply.getheader("Transfer-Encoding") is not None:
        problem = "both Content-Length and Transfer-Encoding (ambiguous framing)"
    elif length is not None and whole_number(length) is None:
        problem = f"a Content-Length that is not 1 to 18 ASCII digits: {length[:40]!r}"
    elif reply.getheader("Content-Encoding", "identity").lower() != "identity":
        problem = f"an encoded body (Content-Encoding: {reply.getheader('Content-Encoding')})"
    if problem:
        reply.close()
        raise BadAnswer(f"{method} {path}: the server's answer has {problem}")


def _read_bounded(reply: http.client.HTTPResponse, limit: int = MAX_ANSWER) -> bytes:
    """The whole body of a JSON answer, refused beyond ``limit`` bytes."""
    try:
        data = reply.read(limit + 1)
    except (OSError, http.client.HTTPException) as e:
        raise TransferError(f"the answer was cut: {e!r}") from None
    if len(data) > limit:
        raise BadAnswer(f"the server's answer is larger than {limit} bytes")
    return data


def _json_answer(reply: http.client.HTTPResponse, limit: int = MAX_ANSWER) -> dict[str, Any]:
    """A successful answer's JSON object (at most ``limit`` bytes)."""
    data = _read_bounded(reply, limit)
    try:
        answer = json.loads(data)
    except ValueError:
        raise BadAnswer(
            f"the server's answer is not JSON: {data[:80]!r}" + ("..." if len(data) > 80 else "")
        ) from None
    if not isinstance(answer, dict):
        raise BadAnswer(f"the server's answer is not a JSON object: {data[:80]!r}")
    return answer


def _shaped(answer: dict[str, Any], shape: dict[str, type]) -> dict[str, Any]:
    """The fields of ``answer`` named in ``shape``, each of its type, or ``BadAnswer``."""
    for name, kind in shape.items():
        value = answer.get(name)
        # type() is not isinstance(): True is an int, and 1 no bool.
        if type(value) is not kind:
            raise BadAnswer(
                f"the server's answer has no {kind.__name__} {name!r}: {json.dumps(answer)[:200]}"
            )
    return {name: answer[name] for name in shape}


def _json_cursor(page: dict[str, Any]) -> str | None:
    """A page's ``next``: the cursor of the page after it, or None after the last."""
    cursor = page.get("next")
    if cursor is not None and (type(cursor) is not str or not cursor):
        raise BadAnswer(f"the server's answer has no usable 'next': {json.dumps(page)[:200]}")
    return cursor


def _describe(key: str, reply: http.client.HTTPResponse) -> Stored:
    """The object's description from the headers of its ``GET``."""
    match = _ETAG.fullmatch(reply.getheader("ETag", ""))
    if match is None:
        raise IntegrityError(f"the answer for {key!r} has no sha256 ETag to verify against")
    length = reply.getheader("Content-Length")
    if length is None:
        raise BadAnswer(f"the answer for {key!r} has no Content-Length")
    return Stored(
        key=key,
        size=int(length),  # checked by _check_framing
        sha256=match[1],
        filename=_filename(reply.getheader("Content-Disposition", "")) or key.rsplit("/", 1)[-1],
        content_type=reply.getheader("Content-Type", "application/octet-stream"),
    )


def _filename(disposition: str) -> str | None:
    """The name in a ``Content-Disposition``; RFC 6266's ``filename*`` wins over ``filename``."""
    message = email.message.Message()
    message["Content-Disposition"] = disposition
    params = message.get_params(header="Content-Disposition") or []
    names = [value for name, value in params if name == "filename"]
    # email decodes ``filename*=UTF-8''...`` into a (charset, language, text) tuple.
    chosen = next((name for name in names if isinstance(name, tuple)), None)
    if chosen is None and names:
        chosen = names[0]
    return email.utils.collapse_rfc2231_value(chosen) if chosen else None


def _retry_after(value: str | None) -> float:
    """Seconds to wait before retrying a 503: ``Retry-After``'s delay or date, else 1.

    >>> _retry_after("3"), _retry_after("²"), _retry_after("9" * 9000), _retry_after(None)
    (3.0, 1.0, 1.0, 1.0)
    """
    if value is None:
        return 1.0
    value = value.strip()
    seconds = whole_number(value, max_digits=9)
    if seconds is not None:
        return float(seconds)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return 1.0
    if when.tzinfo is None:
        return 1.0
    return max(when.timestamp() - time.time(), 0.0)


def _api_error(reply: http.client.HTTPResponse) -> APIError:
    """The exception for an error answer, carrying the API's code and message."""
    try:
        body = json.loads(_read_bounded(reply))
        code, message = body["error"], body["message"]
        if not isinstance(code, str) or not isinstance(message, str):
            raise TypeError(code, message)
    except (ValueError, KeyError, TypeError, ClientError):
        code, message = f"http_{reply.status}", reply.reason or "error"
    cls = _ERRORS_BY_CODE.get(code)
    if cls is None:
        cls = Unavailable if reply.status == 503 else APIError
    return cls(reply.status, code, message)
