"""HTTP semantics of the object routes against a real server: HEAD, ranges,
validators, content types, PUT, DELETE, caching headers and reserved keys.

Each test runs with access control off and on (the ``server`` fixture: one
server per mode, shared by the module)."""

from __future__ import annotations

import hashlib
import http.client
import json
import time
from email.utils import parsedate_to_datetime

import requests
from tornado.httputil import format_timestamp

from packrat.core.keys import RESERVED_PREFIXES
from packrat.frontend import envelope
from packrat.frontend.http1 import head_blocks
from packrat.store import Layout

DATA = bytes(range(256)) * 40  # 10240 bytes, every offset distinguishable


def _put(server, key: str, data: bytes, **kw) -> requests.Response:
    return server.http.put(f"{server.url}/{key}", data=data, timeout=10, **kw)


def test_head_is_the_get_without_a_body(server):
    server.upload("h/obj", DATA, filename="obj.bin")
    get = server.get("h/obj")
    head = server.http.head(f"{server.url}/h/obj", timeout=10)
    assert head.status_code == 200 and head.content == b""
    for name in (
        "Content-Type",
        "Content-Length",
        "Content-Disposition",
        "ETag",
        "Last-Modified",
        "Cache-Control",
        "Accept-Ranges",
        "X-Content-Type-Options",
    ):
        assert head.headers[name] == get.headers[name], name
    assert head.headers["Content-Length"] == str(len(DATA))
    missing = server.http.head(f"{server.url}/h/none", timeout=10)
    assert missing.status_code == 404 and missing.content == b""
    # HEAD ignores Range (RFC 9110 14.2: ranges are defined for GET only).
    ranged = server.http.head(f"{server.url}/h/obj", headers={"Range": "bytes=0-9"}, timeout=10)
    assert ranged.status_code == 200 and ranged.headers["Content-Length"] == str(len(DATA))


def test_single_ranges(server):
    server.upload("r/obj", DATA)
    size = len(DATA)
    cases = {
        "bytes=0-0": (0, 0),
        "bytes=10-19": (10, 19),
        "bytes=10000-": (10000, size - 1),
        "bytes=-100": (size - 100, size - 1),
        "bytes=-999999": (0, size - 1),
        "bytes=10200-999999": (10200, size - 1),
    }
    for header, (first, last) in cases.items():
        reply = server.get("r/obj", headers={"Range": header})
        assert reply.status_code == 206, header
        assert reply.content == DATA[first : last + 1], header
        assert reply.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert reply.headers["Content-Length"] == str(last - first + 1)
        assert reply.headers["Accept-Ranges"] == "bytes"
        assert reply.headers["ETag"] == f'"{hashlib.sha256(DATA).hexdigest()}"'


def test_unsatisfiable_and_ignored_ranges(server):
    server.upload("r/obj", DATA)
    for header in ("bytes=10240-", "bytes=99999-100000", "bytes=-0"):
        reply = server.get("r/obj", headers={"Range": header})
        assert reply.status_code == 416, header
        assert reply.headers["Content-Range"] == f"bytes */{len(DATA)}"
        assert reply.json()["error"] == "range_not_satisfiable"
    # Several ranges, other units and nonsense: the whole object, 200.
    for header in ("bytes=0-1,5-6", "items=0-1", "bytes=5-2", "bytes=abc", "bytes=-"):
        reply = server.get("r/obj", headers={"Range": header})
        assert reply.status_code == 200, header
        assert reply.content == DATA


def test_if_range(server):
    server.upload("r/obj", DATA)
    first = server.get("r/obj")
    etag, modified = first.headers["ETag"], first.headers["Last-Modified"]
    ranged = {"Range": "bytes=0-9"}
    assert server.get("r/obj", headers={**ranged, "If-Range": etag}).status_code == 206
    assert server.get("r/obj", headers={**ranged, "If-Range": modified}).status_code == 206
    # Changed since: the whole (new) object instead of a piece of it.
    for stale in ('"0000"', "W/" + etag, "Mon, 01 Jan 2001 00:00:00 GMT", "garbage"):
        reply = server.get("r/obj", headers={**ranged, "If-Range": stale})
        assert reply.status_code == 200, stale
        assert reply.content == DATA


def test_validators_and_304(server):
    server.upload("v/obj", b"versioned")
    first = server.get("v/obj")
    etag = first.headers["ETag"]
    assert etag == f'"{hashlib.sha256(b"versioned").hexdigest()}"'
    modified = first.headers["Last-Modified"]
    for headers in (
        {"If-None-Match": etag},
        {"If-None-Match": f'"other", W/{etag}'},
        {"If-None-Match": "*"},
        {"If-Modified-Since": modified},
        {"If-Modified-Since": format_timestamp(2_000_000_000)},
    ):
        reply = server.get("v/obj", headers=headers)
        assert reply.status_code == 304, headers
        assert reply.content == b""
        assert reply.headers["ETag"] == etag
        assert reply.headers["Last-Modified"] == modified
        assert "Cache-Control" in reply.headers
        head = server.http.head(f"{server.url}/v/obj", headers=headers, timeout=10)
        assert head.status_code == 304
    for headers in (
        {"If-None-Match": '"other"'},
        {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"},
        {"If-Modified-Since": "not a date"},
        # If-None-Match wins over If-Modified-Since (RFC 9110 13.2.2).
        {"If-None-Match": '"other"', "If-Modified-Since": modified},
    ):
        reply = server.get("v/obj", headers=headers)
        assert reply.status_code == 200, headers
        assert reply.content == b"versioned"
    # A new upload under the key changes the ETag: the old one no longer matches.
    server.upload("v/obj", b"second")
    assert server.get("v/obj", headers={"If-None-Match": etag}).status_code == 200


def test_content_type_as_uploaded_else_guessed(server):
    url = server.url
    server.http.post(f"{url}/t/a", files={"file": ("a.bin", b"{}", "application/json")}, timeout=10)
    assert server.get("t/a").headers["Content-Type"] == "application/json"
    server.upload("t/b", b"<p>", filename="page.html")
    assert server.get("t/b").headers["Content-Type"] == "text/html"
    server.upload("t/c", b"?", filename="noext")
    assert server.get("t/c").headers["Content-Type"] == "application/octet-stream"
    # A part Content-Type that is not a media type is not trusted: guessed instead.
    body = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="x.txt"\r\n'
        b"Content-Type: text/html\x01evil\r\n\r\nx\r\n--B--\r\n"
    )
    reply = server.http.post(
        f"{url}/t/d",
        data=body,
        headers={"Content-Type": "multipart/form-data; boundary=B"},
        timeout=10,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["content_type"] == "text/plain"
    reply = server.get("t/d")
    assert reply.headers["Content-Type"] == "text/plain"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"


def test_nosniff_and_no_store_on_every_kind_of_response(server):
    url = server.url
    server.upload("n/obj", b"x")
    replies = [
        server.http.get(url + "/", timeout=10),
        server.http.get(url + "/static/packrat.css", timeout=10),
        server.http.get(url + "/api/openapi.json", timeout=10),
        server.http.get(url + "/exists/n/obj", timeout=10),
        server.http.get(url + "/n/obj", timeout=10),
        server.http.get(url + "/n/none", timeout=10),
        server.http.get(url + "/exists/a//b", timeout=10),
        server.http.patch(url + "/n/obj", timeout=10),
        _put(server, "n/put", b"y"),
    ]
    for reply in replies:
        assert reply.headers["X-Content-Type-Options"] == "nosniff", reply.url
    # Answers that change or describe errors are never stored by a shared cache.
    for reply in replies[3], replies[5], replies[6], replies[7], replies[8]:
        assert reply.headers["Cache-Control"] == "no-store", reply.url
    scope = "private" if server.token else "public"  # objects that need credentials
    assert replies[4].headers["Cache-Control"] == f"{scope}, no-cache"
    assert replies[7].status_code == 405 and replies[7].json()["error"] == "method_not_allowed"


def test_cache_max_age_is_configurable(make_server):
    server = make_server(frontend={"cache_max_age": 600})
    server.upload("c/obj", b"x")
    assert server.get("c/obj").headers["Cache-Control"] == "public, max-age=600"


def test_put_raw_body(server):
    data = b"\x00raw bytes\r\n" * 1000
    reply = _put(server, "builds/app.tar.gz", data)
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "success": True,
        "key": "builds/app.tar.gz",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "filename": "app.tar.gz",
        "content_type": "application/x-tar",
        "evicted": 0,
    }
    got = server.get("builds/app.tar.gz")
    assert got.content == data
    assert got.headers["Content-Disposition"] == 'attachment; filename="app.tar.gz"'
    # Name from ?filename=, else from the request's Content-Disposition.
    _put(server, "p/q", b"1", params={"filename": "r\u00e9sum\u00e9.pdf"})
    reply = server.get("p/q")
    assert "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf" in reply.headers["Content-Disposition"]
    assert reply.headers["Content-Type"] == "application/pdf"
    _put(server, "p/r", b"2", headers={"Content-Disposition": 'attachment; filename="n.txt"'})
    assert server.get("p/r").headers["Content-Disposition"] == 'attachment; filename="n.txt"'
    # The request's own Content-Type is kept (but curl's form default is not).
    _put(server, "p/s", b"{}", headers={"Content-Type": "application/json"})
    assert server.get("p/s").headers["Content-Type"] == "application/json"
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    _put(server, "p/t", b"3", headers=form, params={"filename": "t.csv"})
    assert server.get("p/t").headers["Content-Type"] == "text/csv"
    # Path-like and control-character names are cut down to a plain name.
    _put(server, "p/u", b"4", params={"filename": "../../etc/pass\twd"})
    disposition = server.get("p/u").headers["Content-Disposition"]
    assert disposition == 'attachment; filename="passwd"', disposition


def test_delete(server):
    server.upload("d/obj", b"bye")
    reply = server.http.delete(f"{server.url}/d/obj", timeout=10)
    assert reply.status_code == 200
    assert reply.json() == {"success": True, "key": "d/obj"}
    assert server.exists("d/obj") is False
    assert server.get("d/obj").status_code == 404
    reply = server.http.delete(f"{server.url}/d/obj", timeout=10)
    assert reply.status_code == 404 and reply.json()["error"] == "not_found"
    reply = server.http.delete(f"{server.url}/d/../x", timeout=10)
    assert reply.status_code in (400, 404)  # requests may normalise the dots away
    assert not Layout(server.cache).object_path("d/obj").exists()


def test_reserved_keys_are_refused(server):
    for prefix in RESERVED_PREFIXES:
        for method in ("GET", "HEAD", "PUT", "DELETE"):
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
            body = b"x" if method == "PUT" else None
            conn.request(method, f"/{prefix}/thing", body=body, headers=server.auth)
            response = conn.getresponse()
            body = response.read()
            conn.close()
            if prefix == "exists" and method in ("GET", "HEAD"):
                continue  # /exists/thing is the exists route
            assert response.status in (400, 405), (prefix, method, response.status)
            if response.status == 400 and method != "HEAD":
                assert json.loads(body)["error"] == "invalid_key"
    reply = server.http.get(server.url + "/api/openapi.json", timeout=10)
    assert reply.status_code == 200 and reply.json()["openapi"].startswith("3.")


def test_answer_heads_made_once_never_outlive_their_answer(server):
    """The object path encodes its usual answers' headers once per answer
    (``downloads.Answer.head``, remembered per object's metadata): each request
    still gets the headers of its own answer: after the object is replaced,
    for another range, a 304 then a 200, exists before and after a delete,
    and a ``Date`` of its second."""
    key = "blocks/obj"
    url = f"{server.url}/{key}"
    server.upload(key, DATA)
    etag = f'"{hashlib.sha256(DATA).hexdigest()}"'
    for _ in range(2):  # the second answer comes from the block the first made
        head = server.http.head(url, timeout=10)
        assert (head.headers["ETag"], head.headers["Content-Length"]) == (etag, str(len(DATA)))
        assert server.get(key).content == DATA
        assert server.exists(key) is True
    for first, last in ((0, 9), (10, 19), (0, 9)):
        ranged = server.http.get(url, headers={"Range": f"bytes={first}-{last}"}, timeout=10)
        assert ranged.status_code == 206 and ranged.content == DATA[first : last + 1]
        assert ranged.headers["Content-Range"] == f"bytes {first}-{last}/{len(DATA)}"
    for method in ("GET", "HEAD"):
        matched = server.http.request(method, url, headers={"If-None-Match": etag}, timeout=10)
        assert matched.status_code == 304 and "Content-Length" not in matched.headers
        again = server.http.request(method, url, timeout=10)
        assert again.status_code == 200 and again.headers["Content-Length"] == str(len(DATA))

    new = b"replaced bytes"
    server.upload(key, new, filename="new.txt")
    for reply in (server.http.head(url, timeout=10), server.get(key)):
        assert reply.headers["ETag"] == f'"{hashlib.sha256(new).hexdigest()}"'
        assert reply.headers["Content-Length"] == str(len(new))
        assert "new.txt" in reply.headers["Content-Disposition"]
    assert server.get(key).content == new

    before = server.http.head(url, timeout=10).headers["Date"]
    time.sleep(1.1)
    after = server.http.head(url, timeout=10)
    assert after.headers["Date"] != before
    assert abs(parsedate_to_datetime(after.headers["Date"]).timestamp() - time.time()) < 2

    assert server.http.delete(url, timeout=10).status_code == 200
    assert server.exists(key) is False
    assert server.http.head(url, timeout=10).status_code == 404


def test_encoded_heads_put_this_seconds_date_between_their_parts():
    """An answer's status line and headers are encoded once with it
    (``http1.head_blocks``); its ``Date`` goes between the two parts as it is
    sent, so a kept head never carries another second's."""
    before, after = head_blocks(200, "Content-Length: 1\r\n")
    assert before == b"HTTP/1.1 200 OK\r\nServer: " + envelope.SERVER.encode() + b"\r\n"
    assert after == b"X-Content-Type-Options: nosniff\r\nContent-Length: 1\r\n"
    assert b"Date" not in before + after
    with_date = before + envelope.date_line() + after
    fields = [f"{name}: {value}\r\n" for name, value in envelope.common_fields()]
    assert with_date.decode() == "HTTP/1.1 200 OK\r\n" + "".join(fields) + "Content-Length: 1\r\n"
    _, json_after = head_blocks(200, "", json_body=True)
    assert b"Content-Type: application/json" in json_after and b"no-store" in json_after
