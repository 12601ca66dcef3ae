"""A Python client for Packrat's HTTP API::

    from packrat.client import Client

    with Client("http://127.0.0.1:5050") as cache:
        cache.put("reports/q1.pdf", "q1.pdf")     # Stored(key=..., size=..., sha256=...)
        cache.get("reports/q1.pdf", "copy.pdf")

Uploads are ``PUT /<key>`` with the file object itself as the request body,
not a multipart form: ``requests`` then reads and sends the file a block at a
time (a ``files=`` form is built whole in memory first), the body needs no
boundary for either side to scan, and ``Content-Length`` is known up front,
so the server refuses a file that is too large before any byte is sent.

Integrity is checked end to end: the file's sha256 is computed before the
upload and sent as ``X-Packrat-Sha256`` (the server stores nothing on a
difference), and the server's answer must name the same digest; a download is
hashed while it is written and must match the ``ETag``, the quoted sha256 of
the stored bytes.  A 503 (coordinator restarting, ``max_uploads`` reached) is
retried after its ``Retry-After``, a bounded number of times.
"""

from __future__ import annotations

import contextlib
import email.message
import email.utils
import hashlib
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import requests

from packrat import __version__

log = logging.getLogger("packrat.client")

CHUNK = 64 * 1024
DIGEST_HEADER = "X-Packrat-Sha256"
# Characters a key may hold that need no percent-encoding in a URL path.
_KEY_SAFE = "/._~!$&'()*+,;=:@-"

Progress = Callable[[int, "int | None"], None]
"""Called as ``progress(bytes_so_far, total)`` while a transfer runs (total may be None)."""


class ClientError(Exception):
    """Anything the client raises about a request (local file errors stay ``OSError``)."""


class APIError(ClientError):
    """The server answered with an error: ``status``, the API's ``code`` and ``message``.

    ``code`` is the ``error`` of the JSON body (``too_large``, ``unauthorized``,
    ...; README lists them), or ``http_<status>`` when the answer was not
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
    """A connection to one Packrat server; not thread-safe (it holds a ``requests.Session``):
    use one per thread.

    :arg url: the server's base URL, e.g. ``http://127.0.0.1:5050``.
    :arg token: a bearer token when the server's ``[auth]`` is on.
    :arg retries: how many times a 503 is retried before ``Unavailable``.
    :arg max_wait: the most seconds one wait for ``Retry-After`` lasts.
    :arg timeout: seconds to connect, and for each read from the server.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        retries: int = 5,
        max_wait: float = 30.0,
        timeout: float = 60.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.retries = retries
        self.max_wait = max_wait
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = f"packrat-client/{__version__}"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self.session.close()

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
        server's choice (the key's last segment).  A file object that cannot
        seek (a pipe) is first copied to a temporary file, so that its digest
        can be sent ahead and the upload can be retried.
        """
        with _seekable(file_or_path) as (f, name):
            start = f.tell()
            digest, size = _hash(f)
            params = {"filename": filename or name} if filename or name else None
            headers = {DIGEST_HEADER: digest}
            if content_type:
                headers["Content-Type"] = content_type

            def body() -> _Body:
                f.seek(start)
                return _Body(f, size, progress)

            reply = self._send("PUT", _path(key), body=body, headers=headers, params=params)
        answer = reply.json()
        if answer.get("sha256") != digest or answer.get("size") != size:
            raise IntegrityError(
                f"the server stored {answer.get('size')} bytes with sha256 "
                f"{answer.get('sha256')}, but {size} bytes with sha256 {digest} were sent"
            )
        return Stored(
            key=answer["key"],
            size=size,
            sha256=digest,
            filename=answer["filename"],
            content_type=answer["content_type"],
            evicted=answer.get("evicted", 0),
        )

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
        corrupt download.  A file object may hold part of one when this raises.
        Raises ``NotFound`` (a ``KeyError``) when there is no such object.
        """
        reply = self._send("GET", _path(key), stream=True)
        with reply:
            stored = _describe(key, reply)
            if isinstance(dest, str | os.PathLike):
                with _replace_when_done(Path(dest)) as f:
                    self._receive(reply, f, stored, progress)
            else:
                self._receive(reply, dest, stored, progress)
        return stored

    def exists(self, key: str) -> bool:
        """Whether an object is stored under ``key``."""
        reply = self._send("GET", "/exists" + _path(key))
        return bool(reply.json()["present"])

    def delete(self, key: str) -> None:
        """Remove the object; raises ``NotFound`` when there is none."""
        self._send("DELETE", _path(key))

    def list_keys(self, prefix: str = "") -> Iterator[dict[str, Any]]:
        """Every object under ``prefix``, in key order, one page (``GET /api/keys``) at a
        time: dicts of ``key``, ``size``, ``sha256``, ``stored_at``, ``content_type``,
        ``filename``.  Needs the list right."""
        after = ""
        while True:
            page = self._send("GET", "/api/keys", params={"prefix": prefix, "after": after}).json()
            yield from page["keys"]
            if page["next"] is None:
                return
            after = page["next"]

    def purge(self, prefix: str) -> Iterator[list[str]]:
        """Remove every object under ``prefix``, a batch (``DELETE /api/keys``) at a time,
        yielding the keys of each batch.  Stopped at any point, running it again finishes
        the job.  Needs the write and list rights."""
        while True:
            batch = self._send("DELETE", "/api/keys", params={"prefix": prefix}).json()
            yield batch["keys"]
            if not batch["more"]:
                return

    def stat(self) -> dict[str, Any]:
        """The server's figures (``GET /api/stats``): objects, bytes, hits, hit_ratio, ..."""
        result: dict[str, Any] = self._send("GET", "/api/stats").json()
        return result

    # -- plumbing -------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        body: Callable[[], _Body] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One request, retried on 503; raises ``APIError`` for any error answer."""
        for attempt in range(self.retries + 1):
            try:
                reply = self.session.request(
                    method,
                    self.url + path,
                    data=body() if body else None,
                    headers=headers,
                    params=params,
                    stream=stream,
                    timeout=self.timeout,
                )
            except requests.RequestException as e:
                raise TransferError(f"{method} {self.url}{path}: {e}") from e
            if reply.status_code == 503 and attempt < self.retries:
                wait = min(_retry_after(reply), self.max_wait)
                log.info(
                    "%s %s: 503 %s, retrying in %.0f s (%d of %d)",
                    method,
                    path,
                    _error_code(reply),
                    wait,
                    attempt + 1,
                    self.retries,
                )
                reply.close()
                time.sleep(wait)
                continue
            if reply.status_code >= 400:
                raise _api_error(reply)
            return reply
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _receive(
        self, reply: requests.Response, out: IO[bytes], stored: Stored, progress: Progress | None
    ) -> None:
        """Copy the body into ``out``, hashing it; raise unless it is whole and matches."""
        hasher = hashlib.sha256()
        done = 0
        try:
            for chunk in reply.iter_content(CHUNK):
                hasher.update(chunk)
                out.write(chunk)
                done += len(chunk)
                if progress:
                    progress(done, stored.size)
        except requests.RequestException as e:
            raise TransferError(
                f"the download of {stored.key!r} was cut after {done} of {stored.size} bytes: {e}"
            ) from e
        if done != stored.size:
            raise TransferError(
                f"the download of {stored.key!r} ended after {done} of {stored.size} bytes"
            )
        if hasher.hexdigest() != stored.sha256:
            raise IntegrityError(
                f"the bytes received for {stored.key!r} have sha256 {hasher.hexdigest()}, "
                f"not {stored.sha256} (the ETag)"
            )


class _Body:
    """A request body that reads a file a block at a time and reports progress.

    ``__len__`` gives ``requests`` the ``Content-Length``; without it a file
    object wrapped this way would be sent chunked.
    """

    def __init__(self, f: IO[bytes], size: int, progress: Progress | None) -> None:
        self.f = f
        self.size = size
        self.progress = progress
        self.done = 0

    def __len__(self) -> int:
        return self.size

    def read(self, amount: int = -1) -> bytes:
        chunk = self.f.read(min(amount, self.size - self.done) if amount >= 0 else -1)
        self.done += len(chunk)
        if self.progress and chunk:
            self.progress(self.done, self.size)
        return chunk


def _path(key: str) -> str:
    """The URL path of ``key`` (percent-encoding anything a key may not hold)."""
    return "/" + quote(key, safe=_KEY_SAFE)


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
    """A seekable binary file for an upload, and the name to send with it."""
    if isinstance(file_or_path, str | os.PathLike):
        path = Path(file_or_path)
        with open(path, "rb") as f:
            yield f, path.name
        return
    name = getattr(file_or_path, "name", None)
    name = Path(name).name if isinstance(name, str) and not name.startswith("<") else None
    if _can_seek(file_or_path):
        yield file_or_path, name
        return
    with tempfile.TemporaryFile() as spool:
        shutil.copyfileobj(file_or_path, spool, CHUNK)
        spool.seek(0)
        yield spool, name


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


def _describe(key: str, reply: requests.Response) -> Stored:
    """The object's description from the headers of its ``GET``."""
    etag = reply.headers.get("ETag", "")
    sha256 = etag.strip('"')
    if not etag.startswith('"') or len(sha256) != 64:
        raise IntegrityError(f"the answer for {key!r} has no sha256 ETag to verify against")
    length = reply.headers.get("Content-Length", "")
    if not length.isdigit():
        raise TransferError(f"the answer for {key!r} has no Content-Length")
    return Stored(
        key=key,
        size=int(length),
        sha256=sha256,
        filename=_filename(reply.headers.get("Content-Disposition", "")) or key.rsplit("/", 1)[-1],
        content_type=reply.headers.get("Content-Type", "application/octet-stream"),
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


def _retry_after(reply: requests.Response) -> float:
    """Seconds to wait before retrying a 503 (Packrat sends whole seconds)."""
    value = reply.headers.get("Retry-After", "")
    return float(value) if value.isdigit() else 1.0


def _error_code(reply: requests.Response) -> str:
    try:
        return str(reply.json()["error"])
    except (ValueError, KeyError, TypeError):
        return f"http_{reply.status_code}"


def _api_error(reply: requests.Response) -> APIError:
    """The exception for an error answer, carrying the API's code and message."""
    try:
        body = reply.json()
        code, message = str(body["error"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = f"http_{reply.status_code}", reply.reason or "error"
    finally:
        reply.close()
    cls = _ERRORS_BY_CODE.get(code)
    if cls is None:
        cls = Unavailable if reply.status_code == 503 else APIError
    return cls(reply.status_code, code, message)
