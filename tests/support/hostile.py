"""A server that lies, for the clients (``packrat.client`` and the ``packrat`` command)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable


class HostileServer:
    """An HTTP server on loopback that answers each request with the next answer queued.

    ``reply`` queues an answer exactly as given (only ``Connection: close``
    is added); ``reply_endless`` one whose body never ends.  Request heads
    are kept in ``requests``; each connection is closed after its answer.
    The thread stops by itself when the fixture ends.
    """

    def __init__(self) -> None:
        self.answers: list[Callable[[socket.socket], None]] = []
        self.requests: list[bytes] = []
        self.sent = 0  # body bytes an endless answer got out
        self.finished = 0  # connections done with: answered, or the client left
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @staticmethod
    def head(status: str, headers: dict[str, object]) -> bytes:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return f"HTTP/1.1 {status}\r\n{lines}Connection: close\r\n\r\n".encode()

    def reply(self, status: str, headers: dict[str, object], body: bytes = b"") -> None:
        self.answers.append(lambda conn: conn.sendall(self.head(status, headers) + body))

    def reply_endless(self, status: str, headers: dict[str, object], piece: bytes) -> None:
        """The head, then ``piece`` again and again until the client leaves (10 s at most)."""

        def send(conn: socket.socket) -> None:
            conn.sendall(self.head(status, headers))
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                conn.sendall(piece)
                self.sent += len(piece)

        self.answers.append(send)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            # OSError: the client went away, which is what some tests check.
            with conn, contextlib.suppress(OSError):
                conn.settimeout(10)
                self._answer(conn)
            self.finished += 1

    def _answer(self, conn: socket.socket) -> None:
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        self.requests.append(head)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return
            body += chunk
        if self.answers:
            self.answers.pop(0)(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)
        self._listener.close()
