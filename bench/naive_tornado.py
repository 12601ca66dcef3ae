"""The naive file server Packrat replaces: one Tornado process, files under a root.

Run: ``python bench/naive_tornado.py --port PORT --root DIR`` (bench/http.py
starts it beside nginx and Packrat).  It is the obvious first version, kept as
a yardstick for CPU per request, not as an example:

* ``GET /<key>`` streams the file in 64 KiB chunks, awaiting ``flush()``
  after each, as ``StaticFileHandler`` does; ``HEAD /<key>`` stats it.
* ``POST /<key>`` takes a multipart form (field ``file``) the non-streaming
  way: Tornado buffers the whole body and parses it into
  ``self.request.files``, then the file is written out.
* ``PUT /<key>`` writes the buffered body.
* ``GET /exists/<key>`` answers ``{"present": true|false}`` after a stat.

Tornado's access log is on (INFO, to stderr), as ``enable_pretty_logging``
leaves it in a typical small server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path, where
# bench/http.py would hide the standard library's ``http`` from Tornado.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]

from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError
from tornado.log import enable_pretty_logging
from tornado.web import Application, HTTPError, RequestHandler

CHUNK = 64 << 10
MAX_BODY = 256 << 20  # whole uploads are held in memory: 64 MiB ones must fit


class FileHandler(RequestHandler):
    def initialize(self, root: Path) -> None:
        self.root = root

    def path_of(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise HTTPError(400)
        return path

    async def get(self, key: str) -> None:
        try:
            f = open(self.path_of(key), "rb")  # noqa: SIM115 (closed below)
        except (FileNotFoundError, IsADirectoryError):
            raise HTTPError(404) from None
        with f:
            self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Length", os.fstat(f.fileno()).st_size)
            while chunk := f.read(CHUNK):
                self.write(chunk)
                try:
                    await self.flush()
                except StreamClosedError:
                    return

    def head(self, key: str) -> None:
        try:
            size = self.path_of(key).stat().st_size
        except FileNotFoundError:
            raise HTTPError(404) from None
        self.set_header("Content-Type", "application/octet-stream")
        self.set_header("Content-Length", size)

    def post(self, key: str) -> None:
        files = self.request.files.get("file")
        if not files:
            raise HTTPError(400, "no file field")
        self.store(key, files[0]["body"])

    def put(self, key: str) -> None:
        self.store(key, self.request.body)

    def store(self, key: str, data: bytes) -> None:
        path = self.path_of(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        self.set_status(201)


class ExistsHandler(FileHandler):
    def get(self, key: str) -> None:
        self.write({"present": self.path_of(key).is_file()})


async def serve(port: int, root: Path) -> None:
    app = Application(
        [
            (r"/exists/(.+)", ExistsHandler, {"root": root}),
            (r"/(.+)", FileHandler, {"root": root}),
        ]
    )
    server = HTTPServer(app, max_body_size=MAX_BODY, max_buffer_size=MAX_BODY)
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
    enable_pretty_logging()
    asyncio.run(serve(args.port, args.root.resolve()))


if __name__ == "__main__":
    main()
