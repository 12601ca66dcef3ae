"""Throughput of the two streaming multipart parsers Packrat could use.

Run: ``python bench/multipart.py`` (``make bench`` runs it).  Feeds the same
multipart body, in 64 KiB chunks as Tornado delivers them, to
streaming-form-data and python-multipart, discarding the file bytes, and
prints MiB/s for each (median of 5 runs).
"""

from __future__ import annotations

import os
import statistics
import time

from python_multipart.multipart import MultipartParser
from streaming_form_data import StreamingFormDataParser
from streaming_form_data.targets import NullTarget

BOUNDARY = "----packratbench7MA4YWxkTrZu0gW"
SIZE = 128 << 20
CHUNK = 64 << 10


def make_body(payload: bytes) -> bytes:
    head = (
        f"--{BOUNDARY}\r\n"
        'Content-Disposition: form-data; name="file"; filename="blob.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + payload + f"\r\n--{BOUNDARY}--\r\n".encode()


def chunks(body: bytes):
    view = memoryview(body)
    for start in range(0, len(body), CHUNK):
        yield bytes(view[start : start + CHUNK])


def run_streaming_form_data(body: bytes) -> None:
    parser = StreamingFormDataParser(
        headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    )
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
        body = make_body(payload)
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
