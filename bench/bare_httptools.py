"""The floor under Packrat's HTTP: a bare asyncio server on httptools, files under a root.

Run: ``python bench/bare_httptools.py --port PORT --root DIR`` (bench/http.py
starts it beside nginx and Packrat).  It does what any Python server on this
parser and event loop must do for each request and nothing more: no access
log, no checks beyond the parser's, no keys, no coordinator.  What Packrat
costs above it is Packrat's own work.

* ``GET /<key>``: open (relative to the root's descriptor, ``bench/floor.py``),
  ``fstat``, one ``pread`` of a file up to 64 KiB and one write of headers
  and body; a larger file goes by ``loop.sendfile``.
* ``HEAD /<key>``: open, ``fstat``, close, the headers.
* ``GET /exists/<key>``: a ``stat``, ``{"present": true|false}``.
* ``PUT``/``POST /<key>``: the body, as it arrives, to a new file beside the
  target, renamed over it at the end (a ``POST`` body is stored as sent:
  nothing parses the form).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, where
# bench/http.py would hide the standard library's ``http``; the repository
# root takes its place, for bench.floor.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httptools

from bench.floor import PRESENT, Files

SMALL = 64 << 10


class Connection(asyncio.Protocol):
    """One client connection; requests answered in order, one at a time."""

    def __init__(self, files: Files) -> None:
        self.files = files
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.upload: int | None = None  # fd of the file being written
        self.upload_path = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.answer(400, b"bad request\n", close=True)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upload is not None:
            os.close(self.upload)
            self.upload = None

    def on_message_begin(self) -> None:
        self.url = b""

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_headers_complete(self) -> None:
        method = self.parser.get_method()
        if method in (b"PUT", b"POST"):
            key = self.key()
            if key is not None:
                self.upload, self.upload_path = self.files.create(key, id(self))

    def on_body(self, body: bytes) -> None:
        if self.upload is not None:
            os.write(self.upload, body)

    def on_message_complete(self) -> None:
        method = self.parser.get_method()
        key = self.key()
        if key is None:
            self.answer(400, b"bad key\n")
        elif method in (b"PUT", b"POST"):
            assert self.upload is not None
            os.close(self.upload)
            self.upload = None
            self.files.publish(self.upload_path, key)
            self.answer(201, b"")
        elif self.url.startswith(b"/exists/"):
            self.answer(200, PRESENT[self.files.exists(key)], b"application/json")
        else:
            self.read(key, with_body=method == b"GET")

    def key(self) -> str | None:
        return self.files.key(self.url.decode())

    def read(self, key: str, with_body: bool) -> None:
        try:
            fd = self.files.open(key)
        except OSError:
            self.answer(404, b"not found\n")
            return
        size = os.fstat(fd).st_size
        if not with_body or size <= SMALL:
            body = os.pread(fd, size, 0) if with_body else b""
            os.close(fd)
            self.answer(200, body, length=size)
            return
        self.answer(200, None, length=size)
        self.sending = asyncio.ensure_future(self.send_file(fd, size))

    async def send_file(self, fd: int, size: int) -> None:
        assert self.transport is not None
        self.transport.pause_reading()  # a next request waits for this answer
        try:
            with os.fdopen(fd, "rb") as f:
                await asyncio.get_running_loop().sendfile(self.transport, f, 0, size)
        except (ConnectionError, RuntimeError):
            self.transport.close()
            return
        self.transport.resume_reading()

    def answer(
        self,
        status: int,
        body: bytes | None,
        content_type: bytes = b"application/octet-stream",
        length: int | None = None,
        close: bool = False,
    ) -> None:
        assert self.transport is not None
        close = close or not self.parser.should_keep_alive()
        size = len(body) if length is None and body is not None else length or 0
        head = b"HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n" % (
            status,
            content_type,
            size,
            b"Connection: close\r\n" if close else b"",
        )
        self.transport.write(head + body if body else head)
        if close:
            self.transport.close()


async def serve(port: int, root: Path) -> None:
    loop = asyncio.get_running_loop()
    files = Files(root)
    server = await loop.create_server(lambda: Connection(files), "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.root.resolve()))


if __name__ == "__main__":
    main()
