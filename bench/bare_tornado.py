"""Tornado's HTTP/1 floor: ``HTTPServer`` with a bare ``HTTPMessageDelegate``, files under a root.

Run: ``python bench/bare_tornado.py --port PORT --root DIR`` (bench/http.py
starts it beside nginx and Packrat).  It does the same work per request as
``bench/bare_httptools.py`` (open, ``fstat``, one read, one write; uploads to
a new file renamed into place), through Tornado's ``HTTP1Connection`` instead
of httptools: the difference between the two is what Tornado's connection
layer costs, with no ``RequestHandler``, routing or access log on top.  Large
files go out in 256 KiB writes, each awaited.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, where
# bench/http.py would hide the standard library's ``http`` from Tornado; the
# repository root takes its place, for bench.floor.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tornado import httputil
from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError

from bench.floor import PRESENT, Files

SMALL = 64 << 10
CHUNK = 256 << 10
MAX_BODY = 256 << 20


class Server(httputil.HTTPServerConnectionDelegate):
    def __init__(self, files: Files) -> None:
        self.files = files

    def start_request(
        self, server_conn: object, request_conn: httputil.HTTPConnection
    ) -> httputil.HTTPMessageDelegate:
        return Exchange(self.files, request_conn)


class Exchange(httputil.HTTPMessageDelegate):
    """One request: ``headers_received``, the body to a file, the answer in ``finish``."""

    def __init__(self, files: Files, connection: httputil.HTTPConnection) -> None:
        self.files = files
        self.connection = connection
        self.method = ""
        self.target = ""
        self.upload: int | None = None
        self.upload_path = ""

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> None:
        assert isinstance(start_line, httputil.RequestStartLine)
        self.method, self.target = start_line.method, start_line.path
        if self.method in ("PUT", "POST"):
            key = self.files.key(self.target)
            if key is not None:
                self.upload, self.upload_path = self.files.create(key, id(self))

    def data_received(self, chunk: bytes) -> None:
        if self.upload is not None:
            os.write(self.upload, chunk)

    def finish(self) -> None:
        key = self.files.key(self.target)
        if key is None:
            self.answer(400, b"bad key\n")
        elif self.upload is not None:
            os.close(self.upload)
            self.upload = None
            self.files.publish(self.upload_path, key)
            self.answer(201, b"")
        elif self.target.startswith("/exists/"):
            self.answer(200, PRESENT[self.files.exists(key)], "application/json")
        else:
            self.read(key, with_body=self.method == "GET")

    def on_connection_close(self) -> None:
        if self.upload is not None:
            os.close(self.upload)
            self.upload = None

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
        self.sending = asyncio.ensure_future(self.send_file(fd, size))

    async def send_file(self, fd: int, size: int) -> None:
        try:
            await self.connection.write_headers(
                httputil.ResponseStartLine("HTTP/1.1", 200, "OK"),
                httputil.HTTPHeaders(
                    {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
                ),
            )
            offset = 0
            while offset < size:
                chunk = os.pread(fd, CHUNK, offset)
                offset += len(chunk)
                await self.connection.write(chunk)
            self.connection.finish()
        except StreamClosedError:
            pass
        finally:
            os.close(fd)

    def answer(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/octet-stream",
        length: int | None = None,
    ) -> None:
        headers = httputil.HTTPHeaders(
            {
                "Content-Type": content_type,
                "Content-Length": str(len(body) if length is None else length),
            }
        )
        self.connection.write_headers(
            httputil.ResponseStartLine("HTTP/1.1", status, "X"), headers, body
        )
        self.connection.finish()


async def serve(port: int, root: Path) -> None:
    server = HTTPServer(Server(Files(root)), max_body_size=MAX_BODY)
    server.listen(port, "127.0.0.1")
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    await stop.wait()
    server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", type=Path, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.root.resolve()))


if __name__ == "__main__":
    main()
