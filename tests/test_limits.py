"""Size limits: max_file_size and max_size, checked early and mid-stream.

The tests on the shared ``server`` (max_file_size 1M) run with access control
off and on; the caches smaller than a file get servers of their own."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket

from tests.support.rawhttp import exchange, header_lines

MiB = 1 << 20
SERVER_SECTIONS = {"cache": {"max_size": "4M", "max_file_size": "1M"}}


def test_declared_too_large_is_413_before_the_body(server):
    # Declare 50 MiB but send no body: the answer must come from the headers alone.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 52428800\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\n"
            + header_lines(server.auth)
            + b"\r\n"
        )
        head = sock.recv(65536).decode()
    assert head.startswith("HTTP/1.1 413"), head
    payload = json.loads(head.split("\r\n\r\n", 1)[1])
    assert payload["success"] is False and payload["error"] == "too_large"
    assert server.staging_files() == []


def test_chunked_upload_over_limit_is_413_and_staging_removed(server):
    head = (
        b"POST /chunky HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: multipart/form-data; boundary=b\r\n" + header_lines(server.auth) + b"\r\n"
    )
    part = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
    block = b"z" * 65536
    answer = b""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        try:
            sock.sendall(head + b"%x\r\n%s\r\n" % (len(part), part))
            for _ in range(40):  # 2.5 MiB, more than max_file_size, no Content-Length
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed while we were still sending
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"error": "too_large"' in answer
    assert server.exists("chunky") is False
    assert server.staging_files() == []


def test_file_just_under_limit_is_accepted(server):
    data = b"a" * (1 << 20)
    reply = server.upload("exact", data)
    assert reply.status_code == 200, reply.text
    assert server.get("exact").content == data
    reply = server.upload("over", data + b"b")
    assert reply.status_code == 413
    assert reply.json()["error"] == "too_large"


def test_put_checksum_and_limits(server):
    """A ``PUT``'s body: its checksum, and its size against max_file_size however it is sent."""
    url, data = server.url, b"d" * 1000
    wrong = {"X-Packrat-Sha256": "0" * 64}
    reply = server.http.put(f"{url}/put/k", data=data, headers=wrong, timeout=10)
    assert reply.status_code == 400 and reply.json()["error"] == "checksum_mismatch"
    good = {"X-Packrat-Sha256": hashlib.sha256(data).hexdigest()}
    assert server.http.put(f"{url}/put/k", data=data, headers=good, timeout=10).status_code == 200
    reply = server.http.put(f"{url}/put/big", data=b"b" * (MiB + 1), timeout=10)
    assert reply.status_code == 413 and reply.json()["error"] == "too_large"
    assert server.http.put(f"{url}/put/exact", data=b"e" * MiB, timeout=10).status_code == 200
    # Declared too large: refused from the headers, before any body byte.
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"PUT /put/huge HTTP/1.1\r\nHost: x\r\nContent-Length: 10485760\r\n"
            + header_lines(server.auth)
            + b"\r\n"
        )
        head = sock.recv(65536).decode()
    assert head.startswith("HTTP/1.1 413"), head
    # Chunked, no Content-Length: refused mid-stream (a generator body is sent chunked).
    reply = server.http.put(f"{url}/put/chunky", data=iter([b"c" * 65536] * 20), timeout=10)
    assert reply.status_code == 413
    # PUT needs a key; / is the form's.
    assert server.http.put(url + "/", data=b"x", timeout=10).status_code == 405
    assert server.exists("put/big") is False and server.exists("put/chunky") is False
    assert server.staging_files() == []


def test_100_continue_only_for_a_body_that_is_wanted(server):
    credential = header_lines(server.auth)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            b"PUT /cont/ok HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\n"
            + credential
            + b"\r\n"
        )
        assert sock.recv(1024) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"hello")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    raw = exchange(
        server.port,
        b"PUT /cont/big HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
        b"Expect: 100-continue\r\n%s\r\n" % (2 << 20, credential),
    )
    assert raw.startswith(b"HTTP/1.1 413 "), raw  # refused before any byte: no 100
    assert server.get("cont/ok").content == b"hello"


def test_file_larger_than_cache_is_413(make_server):
    # max_file_size defaults to max_size: a file bigger than the cache is refused.
    server = make_server(cache={"max_size": "256K"})
    reply = server.upload("huge", b"h" * (300 * 1024))
    assert reply.status_code == 413
    assert reply.json() == {
        "success": False,
        "error": "too_large",
        "message": "the upload is larger than the limit of 256 KiB (262,144 bytes)",
    }
    assert server.staging_files() == []


def test_object_plus_metadata_larger_than_cache_is_413(make_server):
    # The data fits max_file_size but data + trailer does not fit the cache.
    server = make_server(cache={"max_size": "64K"})
    reply = server.upload("edge", b"e" * (64 * 1024))
    assert reply.status_code == 413
    assert reply.json()["error"] == "too_large"
    assert server.object_bytes() == 0
    assert server.staging_files() == []


def test_nothing_written_on_rejected_upload(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    headers = {"Content-Type": "text/plain", **server.auth}
    conn.request("POST", "/rejected", body=b"x" * 10, headers=headers)
    assert conn.getresponse().status == 400
    conn.close()
    assert server.exists("rejected") is False
    assert server.staging_files() == []
