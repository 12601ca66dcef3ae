"""Hostile clients: traversal in every encoding, slow clients, huge headers,
too many uploads at once, stalled uploads, running out of descriptors, malformed
lengths and framing, bodies after an error, huge ranges, control characters in
keys, and markup in what the status page shows.  The tests on the shared ``server`` run
with access control off and on."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import resource
import socket
import threading
import time
from pathlib import Path

import psutil
import pytest
import requests
from tornado.template import Loader

from packrat.frontend import page
from tests.support import rawhttp
from tests.support.rawhttp import exchange, header_lines, json_answer
from tests.support.waiting import wait_answering, wait_until

TEMPLATES = Path(__file__).parent.parent / "packrat" / "frontend" / "templates"
MiB = 1 << 20

TRAVERSALS = [
    "/..",
    "/../../etc/passwd",
    "/a/../../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2E%2E%2F%2E%2E%2Fsecret.txt",
    "/..%2f..%2fsecret.txt",
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
            status, data = rawhttp.request(server.port, method, target, body)
            assert status < 500, (method, target, status, data)
            assert b"TOP SECRET" not in data and b"root:" not in data, (method, target)
            if method in ("PUT", "POST"):
                assert status != 200, (method, target, data)
    after = _files_outside_objects(tmp_path)
    assert after == before
    assert secret.read_text() == "TOP SECRET"
    assert server.object_bytes() == 0
    assert "Traceback" not in server.log()


def test_a_double_encoded_dot_segment_is_a_key_of_percent_signs(make_server, tmp_path):
    """Decoded once, as every HTTP server does, ``%252e%252e`` is ``%2e%2e``: a valid
    key (keys may hold ``%``), stored under objects/ like any other."""
    server = make_server()
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    before = _files_outside_objects(tmp_path)
    status, _ = rawhttp.request(server.port, "PUT", "/%252e%252e/%252e%252esecret.txt", b"stored")
    assert status == 200
    assert server.get("%252e%252e/%252e%252esecret.txt").content == b"stored"
    assert secret.read_text() == "TOP SECRET"
    assert server.object_bytes() > 0 and _files_outside_objects(tmp_path) == before


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
    wait_until(lambda: server.staging_files() == [], 3)
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


def test_slow_reader_is_cut_off(make_server, stalled_read):
    server = make_server(frontend={"idle_timeout": 1}, cache={"max_size": "64M"})
    data = b"r" * (24 << 20)
    assert requests.put(server.url + "/big", data=data, timeout=30).status_code == 200
    received = stalled_read(server.port, "/big", 3)  # read nothing for a while
    assert received < len(data), "a stalled reader kept its connection"
    assert requests.get(server.url + "/exists/big", timeout=5).json() == {"present": True}


def test_max_uploads_gives_503_with_retry_after(make_server):
    server = make_server(frontend={"processes": 1, "max_uploads": 1})
    holder = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    holder.sendall(b"PUT /first HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nfive_")
    wait_until(server.staging_files)  # the first upload holds the only slot
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
    wait_until(server.staging_files)  # it holds the slot
    gone.close()
    third = server.url + "/third"
    wait_until(lambda: requests.put(third, data=b"x", timeout=10).status_code == 200, 5)


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


def test_status_page_escapes_and_has_a_strict_csp(server):
    evil = '<script>alert("x")</script>'
    stats = {
        "uptime_seconds": 5,
        "started_at": 1e9,
        "objects": 1,
        "bytes": 1,
        "max_size": 2,
        "policy": evil,
        "hits": 0,
        "misses": 0,
        "hit_ratio": None,
        "evictions": 0,
        "evicted_bytes": 0,
        "commits": 1,
        "processes": [{"role": "coordinator", "pid": 1, "started_at": 1e9}],
        "recent_uploads": [{"key": evil, "size": 1, "filename": evil, "stored_at": 1e9}],
        "history": {"interval_seconds": 60, "buckets": []},
    }
    args = page.status_args(stats, max_file_size=1024)
    html = Loader(str(TEMPLATES)).load("status.html").generate(**page.HELPERS, **args)
    assert b"<script>alert" not in html
    assert html.count(b"&lt;script&gt;") == 3  # the policy, the key, the name
    assert b'href="/%3Cscript%3Ealert(%22x%22)%3C/script%3E"' in html  # the key's link
    reply = server.http.get(server.url + "/", timeout=10)
    csp = reply.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "unsafe" not in csp and "script-src 'self';" in csp  # this origin's files only
    assert reply.headers["X-Frame-Options"] == "DENY"
    # No inline script, event handler or style attribute (the policy would block them).
    assert re.findall(r"<script\b[^>]*>(.*?)</script>", reply.text, re.S) == [""]
    assert not re.search(r"\s(on[a-z]+|style)\s*=", reply.text)
    for secret_word in ("endpoint", "ipc://", str(server.root)):
        assert secret_word not in reply.text


def test_stalled_uploads_lose_their_slots_after_idle_timeout(make_server):
    server = make_server(frontend={"processes": 1, "max_uploads": 4, "idle_timeout": 1})
    stalled = []
    for n in range(4):
        sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        sock.sendall(f"PUT /stall{n} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nx".encode())
        stalled.append(sock)
    wait_until(lambda: len(server.staging_files()) == 4)  # each holds a slot
    assert requests.put(server.url + "/blocked", data=b"x", timeout=10).status_code == 503

    def freed() -> bool:
        return requests.put(server.url + "/free", data=b"x", timeout=10).status_code == 200

    wait_until(freed, 5, 0.1, what="stalled uploads losing their slots")
    for sock in stalled:
        sock.settimeout(2)
        with contextlib.suppress(ConnectionResetError, TimeoutError):
            assert sock.recv(1024) == b""  # cut
        sock.close()
    assert server.staging_files() == []


def test_front_end_out_of_file_descriptors_pauses_accepting(make_server, tmp_path):
    """400 descriptors, 257 of them the cache's directories, and 200 idle connections:
    the accept loop must not spin or flood the log, a client already connected gets
    answers (503 while no descriptor is free to open an object), and service resumes
    once descriptors are free."""

    def few_descriptors() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (400, 400))

    server = make_server(frontend={"processes": 1}, preexec_fn=few_descriptors)
    assert server.upload("kept", b"still served").status_code == 200
    frontend = server.children("frontend")[0]
    kept = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    kept.request("GET", "/kept")
    assert kept.getresponse().read() == b"still served"
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(200)]
    try:
        wait_until(lambda: "not accepting" in server.log(), 5)
        cpu_before = sum(frontend.cpu_times()[:2])
        log_before = len(server.log())
        time.sleep(3)
        busy = (sum(frontend.cpu_times()[:2]) - cpu_before) / 3
        assert busy < 0.2, f"the front end used {busy:.0%} of a core while out of descriptors"
        assert len(server.log()) - log_before < 2000  # no traceback flood
        kept.request("GET", "/kept")
        response = kept.getresponse()
        assert response.status in (200, 503), response.status
        if response.status == 503:
            assert json.loads(response.read())["error"] == "too_busy"
            assert response.getheader("Retry-After") == "1"
        else:
            assert response.read() == b"still served"
    finally:
        for sock in idle:
            sock.close()
    # Accepting resumes once descriptors are free.
    wait_answering(server.url + "/kept", lambda reply: reply.content == b"still served", 10)


def test_open_file_limit_is_raised_to_the_hard_limit(make_server):
    def low_soft_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (300, 4096))

    server = make_server(frontend={"processes": 1}, preexec_fn=low_soft_limit)
    frontend = server.children("frontend")[0]
    assert frontend.rlimit(psutil.RLIMIT_NOFILE) == (4096, 4096)


@pytest.mark.parametrize(
    "length", ["\u00b2", "9" * 5000, "12a", "-1", "0x10", "1e3", "\u0663"], ids=repr
)
def test_malformed_content_length_is_a_json_400(server, length):
    request = f"PUT /cl HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\nabc".encode()
    request = request.replace(b"\r\n\r\n", b"\r\n" + header_lines(server.auth) + b"\r\n", 1)
    status, error = json_answer(exchange(server.port, request))
    assert status == 400 and error["error"] == "bad_request", error
    assert server.staging_files() == []


@pytest.mark.parametrize(
    "headers",
    [
        "Content-Length: 3\r\nTransfer-Encoding: chunked",
        "Content-Length: 3\r\nContent-Length: 4",
        "Transfer-Encoding: gzip",
    ],
)
def test_ambiguous_framing_is_a_json_400_and_the_connection_closes(server, headers):
    request = f"POST /f HTTP/1.1\r\nHost: x\r\n{headers}\r\n".encode()
    request += header_lines(server.auth) + b"\r\nabc"
    answer = exchange(server.port, request + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    status, error = json_answer(answer)
    assert status == 400 and error["success"] is False
    assert answer.count(b"HTTP/1.1") == 1  # nothing after: where a next request starts is unknown


def test_a_bad_chunk_size_is_a_json_400(server, wait_for):
    """Found while the body is read, before any answer began: the same JSON 400."""
    request = b"PUT /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    request += header_lines(server.auth) + b"\r\nzz\r\nabc\r\n"
    status, error = json_answer(exchange(server.port, request))
    assert status == 400 and error["error"] == "bad_request", error
    wait_for(lambda: server.staging_files() == [], timeout=5)


def test_a_boundary_longer_than_rfc_2046_allows_is_a_json_400(server):
    boundary = "b" * 300
    reply = server.http.post(
        server.url + "/long",
        data=f"--{boundary}\r\n".encode(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        timeout=10,
    )
    assert reply.status_code == 400
    assert reply.json()["error"] == "malformed_multipart"


def test_an_error_mid_body_is_answered_at_once_and_the_rest_not_read(make_server):
    """A malformed body followed by 20 MiB: the 400 comes first, and the server stops
    reading (the sender is refused long before the 20 MiB are through)."""
    server = make_server(cache={"max_size": "4M", "max_file_size": "1M"})
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(
        b"POST /bad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n\r\n"
        b"10\r\nnot-a-boundary!!\r\n"
    )
    block = b"%x\r\n%s\r\n" % (65536, b"z" * 65536)
    sent = 0
    answer = b""
    sock.settimeout(5)
    try:
        while sent < 20 * MiB:
            sock.sendall(block)
            sent += len(block)
            if not answer:
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    answer = sock.recv(65536)
                sock.settimeout(5)
    except (BrokenPipeError, ConnectionResetError, TimeoutError):
        pass
    with contextlib.suppress(OSError):
        sock.settimeout(2)
        answer += sock.recv(65536)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"malformed_multipart" in answer
    assert sent < 8 * MiB, f"the server read {sent} bytes after answering"
    assert server.staging_files() == []


@pytest.mark.parametrize(
    ("header", "status", "content_range"),
    [
        ("bytes=0-" + "9" * 5000, 206, "bytes 0-9/10"),
        ("bytes=-" + "9" * 5000, 206, "bytes 0-9/10"),
        ("bytes=" + "9" * 5000 + "-", 416, "bytes */10"),
    ],
    ids=["first-to-huge", "huge-suffix", "huge-start"],
)
def test_ranges_with_huge_numbers_follow_rfc_9110(server, header, status, content_range):
    assert server.upload("ranged", b"0123456789").status_code == 200
    reply = server.get("ranged", headers={"Range": header})
    assert reply.status_code == status, reply.text
    assert reply.headers.get("Content-Range") == content_range


@pytest.mark.parametrize("target", ["/a%0A", "/..%0A", "/exists%0A", "/a%0D", "/a%09b"])
def test_keys_with_control_characters_are_refused(server, target):
    reply = server.http.put(server.url + target, data=b"x", timeout=10)
    assert reply.status_code == 400 and reply.json()["error"] == "invalid_key"
    assert server.http.get(server.url + "/exists" + target, timeout=10).status_code == 400
