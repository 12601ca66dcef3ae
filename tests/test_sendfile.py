"""Objects are sent whole and checked, by ``sendfile`` and by chunks alike.

Every test runs with both senders, as aiohttp's sendfile tests do: the
default one (``os.sendfile`` for objects larger than ``downloads.SMALL``) and,
with ``PACKRAT_NOSENDFILE`` set, the chunked path that TLS connections take;
each with access control off and on (one server per combination, shared by
the module); one test goes over TLS itself.
"""

from __future__ import annotations

import hashlib
import http.client
import os

import msgpack
import pytest

from packrat.frontend.downloads import SEGMENT, SMALL
from packrat.store import Layout
from packrat.store.format import _LENGTH, MAGIC, read_trailer
from tests.support.rawhttp import request

SIZES = (0, 1, SMALL, SMALL + 1, 3 * SEGMENT + 17)


@pytest.fixture(
    scope="module",
    params=[(send, mode) for send in ("sendfile", "chunks") for mode in ("auth off", "auth on")],
    ids=lambda param: "-".join(param),
)
def server(request, tmp_path_factory, start_shared_server):
    """A server per way of sending (sendfile or chunks) and auth mode, shared by the module."""
    send, mode = request.param
    environment = {"PACKRAT_NOSENDFILE": "1"} if send == "chunks" else {}
    sections = {"frontend": {"processes": 1, "idle_timeout": 1}}
    with start_shared_server(tmp_path_factory, mode, sections, environment) as process:
        yield process


def _data(size: int) -> bytes:
    return (bytes(range(251)) * (size // 251 + 1))[:size]


def _get_raw(server, key: str) -> tuple[int, bytes]:
    """Status and whatever body arrived, a cut transfer included (0: no answer at all,
    as for a small object found corrupt before its headers went out)."""
    return request(server.port, "GET", f"/{key}", headers=server.auth, cut_ok=True)


def _flip(server, key: str, offset: int) -> None:
    with open(Layout(server.cache).object_path(key), "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


def _strip_fast_digest(server, key: str) -> None:
    """Rewrite an object as Packrat wrote it before xxh3: a trailer with sha256 only."""
    path = Layout(server.cache).object_path(key)
    with open(path, "rb") as f:
        meta = read_trailer(f.fileno(), os.fstat(f.fileno()).st_size)
        data = f.read(meta.size)
    fields = {name: getattr(meta, name) for name in meta.__dataclass_fields__ if name != "xxh3"}
    body = msgpack.packb(fields)
    path.write_bytes(data + body + _LENGTH.pack(len(body)) + MAGIC)


def test_whole_objects_ranges_and_keep_alive(server):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    for size in SIZES:
        data = _data(size)
        assert server.http.put(f"{server.url}/s/{size}", data=data, timeout=30).status_code == 200
        # Two answers on one connection: the first one ended cleanly.
        for _ in range(2):
            conn.request("GET", f"/s/{size}", headers=server.auth)
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == data, size
            assert response.getheader("ETag") == f'"{hashlib.sha256(data).hexdigest()}"'
    conn.close()
    big = _data(SIZES[-1])
    ranged = server.http.get(f"{server.url}/s/{len(big)}", headers={"Range": "bytes=70000-"})
    assert ranged.status_code == 206 and ranged.content == big[70000:]
    head = server.http.head(f"{server.url}/s/{len(big)}", timeout=10)
    assert head.headers["Content-Length"] == str(len(big)) and head.content == b""


@pytest.mark.parametrize("offset", [10, 3 * SEGMENT + 5])
def test_corrupt_large_object_is_cut_and_dropped(server, wait_for, offset):
    data = _data(3 * SEGMENT + 17)
    server.upload("rot", data)
    _flip(server, "rot", offset)
    status, body = _get_raw(server, "rot")
    assert status == 200 and len(body) < len(data)
    wait_for(lambda: server.get("rot").status_code == 404)
    assert "failed its digest check" in server.log()


def test_objects_stored_before_xxh3_are_served_and_checked(server, wait_for):
    for key, size in (("old/small", 1000), ("old/large", 2 * SEGMENT + 1)):
        data = _data(size)
        server.upload(key, data)
        _strip_fast_digest(server, key)
        assert server.get(key).content == data
        _flip(server, key, size - 1)  # in the last segment: found only at the end
        status, body = _get_raw(server, key)
        if size <= 64 * 1024:  # checked whole before its answer: dropped, then a miss
            assert status == 404, status
        else:  # checked as it goes: the transfer is cut
            assert status in (0, 200) and len(body) < size
        wait_for(lambda key=key: server.get(key).status_code == 404)


def test_stalled_reader_is_cut_off(server, stalled_read):
    data = _data(16 << 20)
    assert server.http.put(server.url + "/big", data=data, timeout=30).status_code == 200
    received = stalled_read(server.port, "/big", 2.5, server.auth)  # longer than idle_timeout
    assert received < len(data)
    assert server.get("big").content == data  # the server is fine


def test_large_object_over_tls(https_server):
    url = https_server.url
    data = _data(3 * SEGMENT + 17)
    reply = https_server.http.put(url + "/tls/big", data=data, timeout=30)
    assert reply.status_code == 200, reply.text
    assert https_server.http.get(url + "/tls/big", timeout=30).content == data
