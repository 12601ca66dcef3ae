"""packrat.client against real servers: round trips, integrity, retries, errors.

A stand-in HTTP server that lies (wrong ETag, short body) checks the client's
own verification, which a real Packrat never gives cause to fail.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import logging
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from packrat import __version__
from packrat.client import (
    APIError,
    BadAnswer,
    ChecksumMismatch,
    Client,
    IntegrityError,
    KeyRefused,
    NotFound,
    TransferError,
    Unavailable,
)
from tests.support.cli import packrat
from tests.support.waiting import wait_until

READER = "r" * 16 + "-read-token"
WRITER = "w" * 16 + "-write-token"


def only_object_file(server) -> Path:
    """The one object file of a server that stores one object."""
    (path,) = [p for p in (server.cache / "objects").rglob("*") if p.is_file()]
    return path


def test_round_trip_of_paths_and_file_objects(packrat_server, tmp_path):
    source = tmp_path / "résumé.pdf"
    data = os.urandom(3 * 1024 * 1024 + 17)
    source.write_bytes(data)
    with Client(packrat_server.url) as cache:
        stored = cache.put("docs/cv", source)
        assert stored.key == "docs/cv"
        assert stored.size == len(data)
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        assert stored.filename == "résumé.pdf"
        assert stored.content_type == "application/pdf"

        dest = tmp_path / "copy.pdf"
        fetched = cache.get("docs/cv", dest)
        assert dest.read_bytes() == data
        assert fetched == stored.__class__(
            "docs/cv", len(data), stored.sha256, "résumé.pdf", "application/pdf"
        )
        assert not list(tmp_path.glob(".copy.pdf.*"))  # the temporary file is gone

        # A file object, from its current position; the name is the caller's.
        f = io.BytesIO(b"skip me|" + b"the rest")
        f.seek(8)
        stored = cache.put("docs/rest", f, filename="rest.txt", content_type="text/plain")
        assert (stored.size, stored.filename, stored.content_type) == (8, "rest.txt", "text/plain")
        out = io.BytesIO()
        cache.get("docs/rest", out)
        assert out.getvalue() == b"the rest"

        assert cache.put("empty", io.BytesIO()).size == 0
        out = io.BytesIO()
        assert cache.get("empty", out).size == 0 and out.getvalue() == b""


def test_a_pipe_is_spooled_so_it_is_verified_and_retryable(packrat_server):
    data = os.urandom(1_000_000)
    read_end, write_end = os.pipe()

    def feed() -> None:
        with os.fdopen(write_end, "wb") as w:
            w.write(data)

    writer = threading.Thread(target=feed)
    writer.start()
    with os.fdopen(read_end, "rb") as pipe, Client(packrat_server.url) as cache:
        stored = cache.put("from/pipe", pipe)
    writer.join()
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert packrat_server.get("from/pipe").content == data


def test_keys_are_sent_as_the_server_reads_them(packrat_server, tmp_path):
    keys = ["a/b:c@d/e=f;g,h+i/$&'()*!~x", "Q1 report.pdf", "rapports/été/q1", "100%/a?b#c"]
    with Client(packrat_server.url) as cache:
        for key in keys:
            cache.put(key, io.BytesIO(key.encode()))
            assert cache.exists(key)
            out = io.BytesIO()
            assert cache.get(key, out).key == key and out.getvalue() == key.encode()
        # A key the server would refuse is refused before anything is sent.
        with pytest.raises(KeyRefused) as refused:
            cache.put("bad key/with\ttab", io.BytesIO(b"x"))
    assert refused.value.status == 400 and refused.value.code == "invalid_key"
    assert str(refused.value) == (
        "invalid_key: invalid key 'bad key/with\\ttab': U+0009 at character 13"
        " is a control character"
    )
    assert packrat_server.coordinator_stats()["objects"] == len(keys)


def test_exists_delete_and_not_found(packrat_server):
    with Client(packrat_server.url) as cache:
        assert not cache.exists("gone")
        cache.put("gone", io.BytesIO(b"soon"))
        assert cache.exists("gone")
        cache.delete("gone")
        assert not cache.exists("gone")
        with pytest.raises(NotFound) as missing:
            cache.delete("gone")
        assert missing.value.code == "not_found" and missing.value.status == 404
        with pytest.raises(KeyError):  # as a dict would
            cache.get("gone", io.BytesIO())


def test_stat(packrat_server, wait_for):
    with Client(packrat_server.url) as cache:
        cache.put("s/1", io.BytesIO(b"12345"))
        cache.get("s/1", io.BytesIO())
        with pytest.raises(NotFound):
            cache.get("s/none", io.BytesIO())

        def settled() -> dict:
            stats = cache.stat()  # reads reach the coordinator in batches
            return stats if stats["hits"] == 1 and stats["misses"] == 1 else {}

        stats = wait_for(settled)
    assert stats["objects"] == 1 and stats["commits"] == 1
    assert stats["hit_ratio"] == 0.5
    assert stats["version"] == __version__
    assert stats["max_size"] == 64 << 20 and stats["policy"] == "s3gdsf"


def test_errors_carry_the_api_code(make_server, tmp_path):
    server = make_server(cache={"max_file_size": "1M"})
    big = tmp_path / "big"
    big.write_bytes(os.urandom(3 << 20))
    # Refused from Content-Length, before the body is sent.
    with Client(server.url) as cache, pytest.raises(APIError) as too_large:
        cache.put("big", big)
    assert (too_large.value.status, too_large.value.code) == (413, "too_large")
    assert not server.exists("big")


def test_tokens(make_server):
    auth = {"enabled": "true", "read_tokens": READER, "write_tokens": WRITER}
    server = make_server(wait=False, auth=auth)
    server.wait_answering("/exists/probe", headers={"Authorization": f"Bearer {READER}"})
    with Client(server.url) as anonymous, pytest.raises(APIError) as denied:
        anonymous.exists("k")
    assert (denied.value.status, denied.value.code) == (401, "unauthorized")
    with Client(server.url, READER) as reader, pytest.raises(APIError) as forbidden:
        reader.put("k", io.BytesIO(b"x"))
    assert (forbidden.value.status, forbidden.value.code) == (403, "forbidden")
    with Client(server.url, WRITER) as writer:
        writer.put("k", io.BytesIO(b"x"))
        assert writer.stat()["objects"] == 1
    with Client(server.url, READER) as reader:
        assert reader.exists("k")


def test_a_corrupt_object_never_reaches_the_destination(packrat_server, tmp_path):
    data = os.urandom(2_000_000)
    with Client(packrat_server.url) as cache:
        cache.put("rot", io.BytesIO(data))
        path = only_object_file(packrat_server)
        with open(path, "r+b") as f:  # flip one byte of the data on disk
            f.seek(1000)
            byte = f.read(1)
            f.seek(1000)
            f.write(bytes([byte[0] ^ 1]))
        (tmp_path / "out").mkdir()
        dest = tmp_path / "out" / "rot.bin"
        # The server finds the mismatch while sending and cuts the transfer.
        with pytest.raises(TransferError):
            cache.get("rot", dest)
    assert list((tmp_path / "out").iterdir()) == []


class FlipOnReread(io.BytesIO):
    """A file whose bytes change after the client hashed them (as if written meanwhile)."""

    def seek(self, offset: int, whence: int = 0) -> int:
        position = super().seek(offset, whence)
        if self.getbuffer()[0] == ord("a"):
            self.getbuffer()[0] = ord("b")
        return position


def test_an_upload_that_changed_after_hashing_is_refused(packrat_server):
    with Client(packrat_server.url) as cache:
        with pytest.raises(ChecksumMismatch) as mismatch:
            cache.put("moving", FlipOnReread(b"a file being written"))
        assert isinstance(mismatch.value, IntegrityError)
        assert mismatch.value.code == "checksum_mismatch"
        assert not cache.exists("moving")


# -- a stand-in server that lies --------------------------------------------


def test_a_download_must_match_its_etag_and_length(hostile_server, tmp_path):
    body = b"not what was stored"
    right = f'"{hashlib.sha256(body).hexdigest()}"'
    dest = tmp_path / "out"
    hostile_server.reply("200 OK", {"ETag": f'"{"0" * 64}"', "Content-Length": len(body)}, body)
    hostile_server.reply("200 OK", {"ETag": right, "Content-Length": len(body) + 10}, body)
    hostile_server.reply("200 OK", {"Content-Length": len(body)}, body)  # nothing to verify
    hostile_server.reply("200 OK", {"ETag": right, "Content-Length": len(body)}, body)
    with Client(hostile_server.url) as cache:
        with pytest.raises(IntegrityError, match="not 0000"):
            cache.get("k", dest)
        assert not dest.exists()
        with pytest.raises(TransferError):
            cache.get("k", dest)
        assert not dest.exists()
        with pytest.raises(IntegrityError, match="no sha256 ETag"):
            cache.get("k", dest)
        assert cache.get("k", dest).sha256 == right.strip('"')
        assert dest.read_bytes() == body
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert len(hostile_server.requests) == 4  # one GET each: none was retried


# -- 503: retried after Retry-After -----------------------------------------


def test_uploads_wait_for_a_restarting_coordinator(make_server, caplog):
    frontend = make_server("frontend", wait=False)
    frontend.wait_answering("/exists/probe")
    started = threading.Timer(1.5, lambda: make_server("coordinator", wait=False))
    started.start()
    try:
        with caplog.at_level(logging.INFO, "packrat.client"), Client(frontend.url) as cache:
            stored = cache.put("after/restart", io.BytesIO(b"patience"))
    finally:
        started.join()
    assert stored.size == 8
    retries = [r for r in caplog.records if "coordinator_unavailable" in r.getMessage()]
    assert retries, "the first attempt should have met a 503"


def test_retries_are_bounded(make_server):
    frontend = make_server("frontend", wait=False)
    frontend.wait_answering("/exists/probe")
    start = time.monotonic()
    with Client(frontend.url, retries=1, max_wait=0.2) as cache, pytest.raises(Unavailable) as e:
        cache.put("never", io.BytesIO(b"x"))
    unavailable = e
    assert unavailable.value.code == "coordinator_unavailable"
    assert unavailable.value.status == 503
    assert time.monotonic() - start < 10


def test_too_busy_is_retried_until_a_slot_frees(make_server):
    server = make_server(frontend={"processes": 1, "max_uploads": 1})
    # One upload in flight holds the only slot: headers and half the body sent.
    slow = socket.create_connection(("127.0.0.1", server.port))
    slow.sendall(b"PUT /slow HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nhello")
    wait_until(server.staging_files)  # the front end is receiving it: the slot is taken
    release = threading.Timer(1.5, lambda: slow.sendall(b"world"))
    release.start()
    try:
        with Client(server.url, max_wait=1) as cache:
            start = time.monotonic()
            stored = cache.put("busy/retry", io.BytesIO(b"queued"))
            waited = time.monotonic() - start
    finally:
        release.join()
        reply = slow.recv(4096)
        slow.close()
    assert b"200 OK" in reply
    assert stored.size == 6 and server.exists("busy/retry")
    assert waited >= 1  # it met at least one 503 too_busy and waited


# -- memory ---------------------------------------------------------------

MEASURE = """
import resource, sys
from packrat.client import Client
url, source, dest = sys.argv[1:]
with Client(url) as cache:
    cache.put("warm", __import__("io").BytesIO(b"warm up"))
    cache.get("warm", dest)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cache.put("big", source)
    cache.get("big", dest)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024)
"""


@pytest.mark.slow
def test_transfers_stream_in_constant_memory(make_server, tmp_path):
    """Putting and getting 96 MiB grows the client's peak memory by well under 16 MiB."""
    server = make_server(cache={"max_size": "256M"})
    source = tmp_path / "big.bin"
    with open(source, "wb") as f:
        for _ in range(96):
            f.write(os.urandom(1 << 20))
    dest = tmp_path / "back.bin"
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, server.url, str(source), str(dest)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    growth = int(result.stdout)
    assert growth < 16 << 20, f"peak memory grew by {growth >> 20} MiB"
    assert source.stat().st_size == dest.stat().st_size == 96 << 20
    with open(source, "rb") as a, open(dest, "rb") as b:
        assert (
            hashlib.file_digest(a, "sha256").digest() == hashlib.file_digest(b, "sha256").digest()
        )


# -- a hostile server: the client trusts it no further than the API promises --

CHUNK_OF_X = b"4000\r\n" + b"x" * 0x4000 + b"\r\n"  # one 16 KiB chunk, sent forever


def etag(body: bytes) -> str:
    return f'"{hashlib.sha256(body).hexdigest()}"'


def test_an_endless_chunked_body_after_a_content_length_is_not_read(hostile_server):
    hostile_server.reply_endless(
        "200 OK",
        {"Content-Length": 1100, "Transfer-Encoding": "chunked", "ETag": etag(b"x" * 1100)},
        CHUNK_OF_X,
    )
    out = io.BytesIO()
    with Client(hostile_server.url) as cache, pytest.raises(BadAnswer, match="ambiguous"):
        cache.get("k", out)
    assert out.getvalue() == b""
    wait_until(lambda: hostile_server.finished == 1)  # it noticed the closed connection
    assert hostile_server.sent < 16 << 20  # socket buffers, not an endless stream


def test_a_download_is_never_more_than_its_content_length(hostile_server):
    body = b"x" * 1100
    # More bytes than announced follow: they are never read.
    hostile_server.reply_endless("200 OK", {"Content-Length": 1100, "ETag": etag(body)}, body)
    out = io.BytesIO()
    with Client(hostile_server.url) as cache:
        assert cache.get("k", out).size == 1100
    assert out.getvalue() == body


def test_an_encoded_body_is_refused_not_decompressed(hostile_server, tmp_path):
    """65 KB of gzip would be 64 MiB decompressed (requests decoded it by itself)."""
    plain = bytes(64 << 20)
    packed = gzip.compress(plain)
    headers = {"Content-Length": len(packed), "Content-Encoding": "gzip", "ETag": etag(plain)}
    hostile_server.reply("200 OK", headers, packed)
    out = io.BytesIO()
    with Client(hostile_server.url) as cache, pytest.raises(BadAnswer, match="encoded"):
        cache.get("k", out)
    assert out.getvalue() == b""
    assert b"accept-encoding: identity" in hostile_server.requests[0].lower()


@pytest.mark.parametrize("length", ["\u00b2", "9" * 9000, "-1", "1e3", " "])
def test_a_content_length_that_is_not_digits_is_refused(hostile_server, length):
    head = f"HTTP/1.1 200 OK\r\nETag: {etag(b'x')}\r\nContent-Length: {length}\r\n"
    hostile_server.answers.append(lambda conn: conn.sendall(head.encode() + b"\r\nx"))
    out = io.BytesIO()
    with Client(hostile_server.url) as cache, pytest.raises(BadAnswer, match="Content-Length"):
        cache.get("k", out)
    assert out.getvalue() == b""


def test_a_retry_after_that_is_not_a_delay_waits_one_second(hostile_server):
    error = b'{"success": false, "error": "too_busy", "message": "busy"}'
    hostile_server.reply(
        "503 Service Unavailable", {"Retry-After": "\u00b2", "Content-Length": len(error)}, error
    )
    present = b'{"present": true}'
    hostile_server.reply("200 OK", {"Content-Length": len(present)}, present)
    start = time.monotonic()
    with Client(hostile_server.url, retries=1) as cache:
        assert cache.exists("k") is True
    assert 0.9 < time.monotonic() - start < 5


@pytest.mark.parametrize(
    "body", [b"{}", b'{"present": "yes"}', b'{"present": 1}', b"[true]", b"<html>ok</html>", b""]
)
def test_an_answer_without_the_api_shape_is_a_bad_answer(hostile_server, body):
    hostile_server.reply("200 OK", {"Content-Length": len(body)}, body)
    with Client(hostile_server.url) as cache, pytest.raises(BadAnswer):
        cache.exists("k")


def test_a_put_answered_with_something_else_than_json_is_a_bad_answer(hostile_server):
    page = b"<html>stored, probably</html>"
    hostile_server.reply("200 OK", {"Content-Length": len(page)}, page)
    with Client(hostile_server.url) as cache, pytest.raises(BadAnswer, match="not JSON"):
        cache.put("k", io.BytesIO(b"data"))


def test_a_json_answer_is_read_to_a_bound(hostile_server):
    hostile_server.reply_endless(
        "200 OK", {"Transfer-Encoding": "chunked"}, b"4000\r\n" + b" " * 0x4000 + b"\r\n"
    )
    with Client(hostile_server.url) as cache, pytest.raises(BadAnswer, match="larger than"):
        cache.stat()


def test_an_error_page_of_a_proxy_keeps_its_status(hostile_server):
    page = b"<html>Bad Gateway</html>"
    hostile_server.reply("502 Bad Gateway", {"Content-Length": len(page)}, page)
    with Client(hostile_server.url) as cache, pytest.raises(APIError) as error:
        cache.exists("k")
    assert (error.value.status, error.value.code) == (502, "http_502")


def test_https_is_verified_against_the_systems_cas_or_ssl_cert_file(https_server):
    url, token, cafile = https_server.url, https_server.token, https_server.cafile
    with Client(url, token, retries=0) as cache, pytest.raises(TransferError, match="certificate"):
        cache.exists("k")  # a CA of its own: not trusted by default
    context = ssl.create_default_context(cafile=str(cafile))
    with Client(url, token, ssl_context=context) as cache:
        cache.put("over/tls", io.BytesIO(b"secret"))
        out = io.BytesIO()
        cache.get("over/tls", out)
    assert out.getvalue() == b"secret"
    # The command line: OpenSSL's own variable names the CA.
    env = {"SSL_CERT_FILE": str(cafile), **({"PACKRAT_TOKEN": token} if token else {})}
    result = packrat("exists", "over/tls", "--url", url, env=env)
    assert result.returncode == 0, result.stderr


def test_a_connection_the_server_closed_while_idle_is_replaced(make_server):
    server = make_server(frontend={"idle_timeout": 1})
    with Client(server.url, retries=0) as cache:
        cache.put("kept", io.BytesIO(b"alive"))
        wait_until(lambda: not open_connections(server))  # idle: the server closed it
        assert cache.exists("kept")


def open_connections(server) -> list:
    """The front ends' established TCP connections on ``server``'s port."""
    return [
        connection
        for process in server.children("frontend")
        for connection in process.net_connections("tcp")
        if connection.status == psutil.CONN_ESTABLISHED and connection.laddr.port == server.port
    ]


def test_credentials_in_the_url_are_sent_as_basic_and_never_shown(hostile_server):
    page = b"<html>Bad Gateway</html>"
    hostile_server.reply("502 Bad Gateway", {"Content-Length": len(page)}, page)
    url = hostile_server.url.replace("http://", "http://ci:p%40ss%20word@")
    with Client(url) as cache, pytest.raises(APIError):
        cache.exists("k")
    assert cache.url == hostile_server.url
    expected = base64.b64encode(b"ci:p@ss word").decode()
    assert f"Authorization: Basic {expected}".encode() in hostile_server.requests[0]
    with pytest.raises(ValueError, match="token"):
        Client(hostile_server.url, "line\r\nX-Injected: 1")
