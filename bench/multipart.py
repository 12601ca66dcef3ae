"""Throughput of the two streaming multipart parsers Packrat could use.

Run: ``python bench/multipart.py`` (``make bench`` runs it).  Feeds the same
multipart body, in 64 KiB chunks as Tornado delivers them, to
streaming-form-data and python-multipart, discarding the file bytes, and
prints MiB/s for each (median of 5 runs).
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

# Run as a script, this file's directory comes first on sys.path; the
# repository root takes its place so that bench/'s modules import as bench.<name>.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    del sys.path[0]
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from python_multipart.multipart import MultipartParser
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.targets import NullTarget

from bench.forms import content_type, multipart_body

BOUNDARY = "----packratbench7MA4YWxkTrZu0gW"
SIZE = 128 << 20
CHUNK = 64 << 10


def chunks(body: bytes):
    view = memoryview(body)
    for start in range(0, len(body), CHUNK):
        yield bytes(view[start : start + CHUNK])


def run_streaming_form_data(body: bytes) -> None:
    parser = StreamingFormDataParser(headers={"Content-Type": content_type(BOUNDARY)})
    parser.register("file", NullTarget())
    for chunk in chunks(body):
        parser.data_received(chunk)


def run_python_multipart(body: bytes) -> None:
    parser = MultipartParser(BOUNDARY.encode(), callbacks={"on_part_data": lambda d, s, e: None})
    for chunk in chunks(body):
        parser.write(chunk)
    parser.finalize()


def main() -> None:
    payloads = {
        "random bytes": os.urandom(SIZE),
        # Text with a line break and dashes every 64 bytes: the boundary
        # search has to look at every candidate.
        "text, CRLF-dense": (b"x" * 58 + b"\r\n--\r\n")[:64] * (SIZE // 64),
    }
    parsers = {
        "streaming-form-data": run_streaming_form_data,
        "python-multipart": run_python_multipart,
    }
    for label, payload in payloads.items():
        body = multipart_body(payload, BOUNDARY)
        for name, fn in parsers.items():
            times = []
            for _ in range(5):
                start = time.perf_counter()
                fn(body)
                times.append(time.perf_counter() - start)
            mib_s = SIZE / (1 << 20) / statistics.median(times)
            print(f"{label:18s} {name:22s} {mib_s:8.0f} MiB/s")


if __name__ == "__main__":
    main()
