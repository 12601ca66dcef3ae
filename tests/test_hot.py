"""The hot routes (``packrat.frontend.hot``) answer as the handlers do.

A server without ``[auth]`` answers reads, exists and uploads on the hot
routes; one whose reads and writes need a token answers them through
``ObjectHandler``/``ExistsHandler``.  The same requests get the same
statuses, headers (but ``Date``) and bodies from both.
"""

from __future__ import annotations

import http.client

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st
from tornado.escape import url_unescape

from packrat.core.keys import InvalidKey, validate_key
from packrat.frontend.hot.routes import _key, _query_argument

TOKEN = "w" * 8 + "-write-token-0001"
DATA = bytes(range(256)) * 300  # 76,800 bytes: over downloads.SMALL, sent by sendfile
SMALL = b"small object"


def _exchange(server, method: str, target: str, headers=None, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, target, body=body, headers=headers or {})
    response = conn.getresponse()
    content = response.read()
    conn.close()
    answer = {name.lower(): value for name, value in response.getheaders()}
    answer.pop("date")
    return response.status, answer, content


@pytest.fixture
def servers(make_server, tmp_path, wait_for):
    hot = make_server(frontend={"processes": 1})
    other = tmp_path / "other"
    (other / "run").mkdir(parents=True)
    handled = make_server(
        wait=False,
        frontend={"processes": 1},
        auth={"enabled": "true", "anonymous_read": "false", "write_tokens": TOKEN},
        cache={"root": other / "cache"},
        coordinator={"endpoint": f"ipc://{other}/run/coordinator.sock"},
        metrics={"directory": other / "run" / "metrics"},
    )
    wait_for(lambda: _answers(handled))
    return hot, handled


def _answers(server) -> bool:
    assert server.process.poll() is None, server.log()
    try:
        return requests.get(server.url + "/readyz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def test_hot_and_handler_answers_match(servers):
    hot, handled = servers
    credentials = {"Authorization": f"Bearer {TOKEN}"}
    for key, data in (("m/large", DATA), ("m/small", SMALL)):
        uploads = [
            _exchange(server, "PUT", f"/{key}?filename=a%20b.bin", extra, data)
            for server, extra in ((hot, {}), (handled, credentials))
        ]
        assert uploads[0][0] == uploads[1][0] == 200
        assert uploads[0][2] == uploads[1][2]  # same JSON, same digest
    etag = f'"{__import__("hashlib").sha256(DATA).hexdigest()}"'
    requests_ = [
        ("GET", "/m/large", {}),
        ("GET", "/m/small", {}),
        ("HEAD", "/m/large", {}),
        ("GET", "/m/large", {"Range": "bytes=100-199"}),
        ("GET", "/m/large", {"If-None-Match": etag}),
        ("GET", "/m/none", {}),
        ("GET", "/exists/m/small", {}),
        ("GET", "/exists/m/none", {}),
    ]
    for method, target, extra in requests_:
        a = _exchange(hot, method, target, extra)
        b = _exchange(handled, method, target, {**extra, **credentials})
        assert a[0] == b[0], (method, target, a, b)
        # Shared caches may keep an object only when anyone may read it.
        if a[1].get("cache-control", "").startswith("public"):
            hot_scope = a[1].pop("cache-control").replace("public", "private")
            assert b[1].pop("cache-control") == hot_scope
        assert a[1] == b[1], (method, target)
        assert a[2] == b[2], (method, target)


@given(st.text(min_size=1, max_size=40))
def test_keys_are_decoded_as_tornado_decodes_path_arguments(raw):
    try:
        expected = validate_key(url_unescape(raw, encoding=None, plus=False).decode("utf-8"))
    except (UnicodeDecodeError, InvalidKey):
        expected = None
    assert _key(raw) == expected


def test_query_arguments_are_read_as_tornado_reads_them():
    assert _query_argument("filename=a%20b.txt", "filename") == "a b.txt"
    assert _query_argument("filename=x&filename=%20last%01", "filename") == "last"
    assert _query_argument("other=1", "filename") is None
