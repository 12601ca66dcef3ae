"""Hostile clients: traversal in every encoding, slow clients, huge headers,
too many uploads at once, and markup in what the status page shows."""

from __future__ import annotations

import http.client
import socket
import threading
import time
from pathlib import Path

import requests
from tornado.template import Loader

TEMPLATES = Path(__file__).parent.parent / "packrat" / "frontend" / "templates"

TRAVERSALS = [
    "/..",
    "/../../etc/passwd",
    "/a/../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E%2F%2E%2E%2Fsecret.txt",
    "/..%2f..%2fsecret.txt",
    "/%252e%252e/%252e%252esecret.txt",
    "/..%5c..%5csecret.txt",
    "/..\\..\\secret.txt",
    "/a%00b",
    "/%00",
    "/secret.txt%00.png",
    "/%c0%ae%c0%ae/secret.txt",
    "/%ff%fe",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/static/..%2f..%2f..%2fsecret.txt",
    "/static/../../secret.txt",
    "/exists/..%2f..%2fsecret.txt",
    "/exists/../secret.txt",
    "/api/../secret.txt",
    "/a/./b",
    "/a//b",
    "/trailing/",
    "/" + "a" * 2000,
]


def _raw(port: int, method: str, target: str, body: bytes | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest(method, target, skip_accept_encoding=True)
    if body is not None:
        conn.putheader("Content-Length", str(len(body)))
    conn.endheaders(body)
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def _files_outside_objects(root) -> set:
    """What a request could create outside objects/ (logs and metrics files are ours)."""
    return {
        p
        for p in root.rglob("*")
        if not {"objects", "metrics"} & set(p.parts) and p.suffix != ".log"
    }


def test_traversal_in_any_encoding_never_escapes_or_fails(make_server, tmp_path):
    server = make_server()
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    before = _files_outside_objects(tmp_path)
    boundary = (
        b'--X\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\nx\r\n--X--\r\n'
    )
    for target in TRAVERSALS:
        for method in ("GET", "HEAD", "PUT", "DELETE", "POST"):
            body = boundary if method == "POST" else (b"pwned" if method == "PUT" else None)
            status, data = _raw(server.port, method, target, body)
            assert status < 500, (method, target, status, data)
            assert b"TOP SECRET" not in data and b"root:" not in data, (method, target)
            if method in ("PUT", "POST"):
                assert status != 200, (method, target, data)
    after = _files_outside_objects(tmp_path)
    assert after == before
    assert secret.read_text() == "TOP SECRET"
    assert server.object_bytes() == 0
    assert "Traceback" not in server.log()


def test_slowloris_headers_are_cut_off(make_server):
    server = make_server(frontend={"idle_timeout": 1})
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        closed = False
        for i in range(40):  # a header line every 0.2 s, never the blank line
            try:
                sock.sendall(b"X-Slow-%d: y\r\n" % i)
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            time.sleep(0.2)
            sock.setblocking(False)
            try:
                if sock.recv(1024) == b"":
                    closed = True
                    break
            except BlockingIOError:
                pass
            except ConnectionResetError:
                closed = True
                break
            finally:
                sock.setblocking(True)
    assert closed, "the server kept a never-ending request open"
    assert time.monotonic() - start < 4
    assert requests.get(server.url + "/", timeout=5).status_code == 200


def test_slow_body_is_cut_off_and_staging_removed(make_server):
    server = make_server(frontend={"body_timeout": 1})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"PUT /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + b"s" * 10)
        start = time.monotonic()
        try:
            data = sock.recv(1024)
        except ConnectionResetError:
            data = b""
        assert data == b"" or data.startswith(b"HTTP/1.1 4"), data
        assert time.monotonic() - start < 5
    deadline = time.monotonic() + 3
    while server.staging_files() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.staging_files() == []
    assert server.exists("slow") is False


def test_oversized_headers_are_refused(make_server):
    server = make_server(frontend={"max_header_size": "4K"})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        try:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 8192 + b"\r\n\r\n")
            answer = sock.recv(1024)
        except (BrokenPipeError, ConnectionResetError):
            answer = b""
    assert answer == b"" or answer.startswith(b"HTTP/1.1 4"), answer
    reply = requests.get(server.url + "/", headers={"X-Fine": "b" * 1000}, timeout=5)
    assert reply.status_code == 200


def test_slow_reader_is_cut_off(make_server):
    server = make_server(frontend={"idle_timeout": 1}, cache={"max_size": "64M"})
    data = b"r" * (24 << 20)
    assert requests.put(server.url + "/big", data=data, timeout=30).status_code == 200
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(3)  # read nothing for a while
        sock.settimeout(10)
        received = 0
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
        except ConnectionResetError:
            pass
    assert received < len(data), "a stalled reader kept its connection"
    assert requests.get(server.url + "/exists/big", timeout=5).json() == {"present": True}


def test_max_uploads_gives_503_with_retry_after(make_server):
    server = make_server(frontend={"processes": 1, "max_uploads": 1})
    holder = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    holder.sendall(b"PUT /first HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nfive_")
    time.sleep(0.3)  # the first upload holds the only slot
    reply = requests.put(server.url + "/second", data=b"x", timeout=10)
    assert reply.status_code == 503
    assert reply.headers["Retry-After"] == "1"
    assert reply.json()["error"] == "too_busy"
    assert server.get("first").status_code == 404  # reads are not limited
    holder.sendall(b"bytes")
    assert holder.recv(1024).startswith(b"HTTP/1.1 200")
    holder.close()
    assert requests.put(server.url + "/second", data=b"x", timeout=10).status_code == 200
    # A client that vanishes mid-upload gives its slot back.
    gone = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    gone.sendall(b"PUT /gone HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    time.sleep(0.2)
    gone.close()
    deadline = time.monotonic() + 5
    while True:
        status = requests.put(server.url + "/third", data=b"x", timeout=10).status_code
        if status == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert status == 200


def test_concurrent_uploads_within_the_limit_all_succeed(make_server):
    server = make_server(frontend={"processes": 1, "max_uploads": 8})
    results: list[int] = []

    def upload(i: int) -> None:
        reply = requests.put(f"{server.url}/c/{i}", data=b"x" * 100_000, timeout=20)
        results.append(reply.status_code)

    threads = [threading.Thread(target=upload, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 8


def test_status_page_escapes_and_has_a_strict_csp(packrat_server):
    evil = '<script>alert("x")</script>'
    stats = {
        "objects": evil,
        "bytes": 1,
        "max_size": 2,
        "hits": evil,
        "misses": 0,
        "evictions": 0,
        "policy": evil,
    }
    html = Loader(str(TEMPLATES)).load("status.html").generate(stats=stats, max_file_size=evil)
    assert b"<script>" not in html
    assert b"&lt;script&gt;" in html
    page = requests.get(packrat_server.url + "/", timeout=10)
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe" not in csp and "script-src" not in csp
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "<script" not in page.text
    for secret_word in ("endpoint", "ipc://", str(packrat_server.root)):
        assert secret_word not in page.text
