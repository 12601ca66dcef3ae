"""Requests sent exactly as written, and answers read byte for byte.

For what a well-behaved client (``requests``) would not send or would hide:
malformed or ambiguous requests, pipelining, stalled readers, cut transfers.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time


def header_lines(headers: dict[str, str]) -> bytes:
    """``headers`` as request header lines (a server's ``auth``: none when auth is off)."""
    return b"".join(f"{name}: {value}\r\n".encode() for name, value in headers.items())


def exchange(port: int, request: bytes, timeout: float = 10) -> bytes:
    """Send ``request`` raw, read every byte until the server closes (or ``timeout``)."""
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


def answers(raw: bytes) -> list[tuple[int, bytes]]:
    """The statuses and bodies of the answers in ``raw``, in order (Content-Length framed)."""
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        match = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
        length = int(match.group(1)) if match and status not in (100, 304) else 0
        found.append((status, rest[:length]))
        raw = rest[length:]
    return found


def json_answer(raw: bytes) -> tuple[int, dict]:
    """The status and JSON body of the one answer in ``raw``."""
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body.decode())


def request(
    port: int,
    method: str,
    target: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    cut_ok: bool = False,
) -> tuple[int, bytes]:
    """One request with ``target`` exactly as written (no client-side normalisation),
    only ``Host`` and, with a body, ``Content-Length`` added; its status and body.

    ``cut_ok``: a transfer the server cuts is an answer too, with the bytes that
    arrived (status 0: no answer at all); otherwise it fails the test.
    """
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        try:
            response = conn.getresponse()
        except http.client.RemoteDisconnected:
            if not cut_ok:
                raise
            return 0, b""
        try:
            data = response.read()
        except http.client.IncompleteRead as e:
            if not cut_ok:
                raise
            data = e.partial
        return response.status, data
    finally:
        conn.close()


def read_after_stalling(port: int, path: str, stall: float, headers: dict | None = None) -> int:
    """GET ``path`` with a small receive buffer, read nothing for ``stall`` seconds,
    then read until the server closes; return the bytes it sent, headers included."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: x\r\n".encode() + header_lines(headers or {}) + b"\r\n"
        )
        time.sleep(stall)  # the stall under test, not a wait for anything
        sock.settimeout(10)
        received = 0
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
    return received
