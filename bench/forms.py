"""The one builder of multipart/form-data bodies the benchmarks send or parse."""

from __future__ import annotations


def multipart_body(payload: bytes, boundary: str, field: str = "file") -> bytes:
    """A form with one file part (``field``) holding ``payload``, as browsers send it."""
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="blob.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + payload + f"\r\n--{boundary}--\r\n".encode()


def content_type(boundary: str) -> str:
    """The Content-Type header that goes with a body from :func:`multipart_body`."""
    return f"multipart/form-data; boundary={boundary}"
