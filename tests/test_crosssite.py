"""``packrat.frontend.crosssite``: which writes a browser made for another site's page.

The rule's properties (hypothesis), then the rule on a live server: every
route that changes state refuses a browser's cross-site request with 403
``cross_site`` before reading its body, and stores or removes nothing.
test_browser.py has Chromium itself try it from a page on another port.
"""

from __future__ import annotations

import socket

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from packrat.frontend.crosssite import SAFE_METHODS, cross_site, normalize_origin

WRITES = st.sampled_from(["POST", "PUT", "DELETE", "MKCOL", "PROPPATCH", "PATCH", "post"])
SCHEMES = st.sampled_from(["http", "https"])
HOSTS = st.sampled_from(["127.0.0.1", "localhost", "cache.example", "[::1]", "CACHE.example"])
PORTS = st.none() | st.integers(1, 65535)
SITES = st.sampled_from([None, "same-origin", "same-site", "cross-site", "none"])


def origin_of(scheme: str, host: str, port: int | None) -> str:
    return f"{scheme}://{host}" + (f":{port}" if port is not None else "")


def default_spelling(scheme: str, host: str, port: int | None) -> list[str]:
    """Spellings of the same origin: cases, and the default port written or not."""
    default = {"http": 80, "https": 443}[scheme]
    spellings = [origin_of(scheme, host, port), origin_of(scheme.upper(), host.upper(), port)]
    if port in (None, default):
        spellings += [origin_of(scheme, host, None), origin_of(scheme, host, default)]
    return spellings


@given(st.sampled_from(sorted(SAFE_METHODS)), st.text(max_size=30) | st.none(), SITES)
def test_reads_are_never_refused(method, origin, site):
    assert cross_site(method, origin, site, "http", "cache:5050") is None


@given(WRITES, SITES.filter(lambda s: s in (None, "same-origin", "none")))
def test_requests_that_are_not_a_pages_pass(method, site):
    assert cross_site(method, None, site, "http", "cache:5050") is None


@given(WRITES, SITES, SCHEMES, HOSTS, PORTS, st.data())
def test_this_servers_own_origin_passes_however_spelled(method, site, scheme, host, port, data):
    own_host = host + (f":{port}" if port is not None else "")
    origin = data.draw(st.sampled_from(default_spelling(scheme, host, port)))
    assert cross_site(method, origin, site, scheme, own_host) is None


@given(WRITES, SITES, SCHEMES, HOSTS, PORTS, SCHEMES, HOSTS, PORTS)
def test_any_other_origin_is_refused_unless_allowed(method, site, s1, h1, p1, s2, h2, p2):
    own, other = origin_of(s1, h1, p1), origin_of(s2, h2, p2)
    own_host = h1 + (f":{p1}" if p1 is not None else "")
    same = normalize_origin(own) == normalize_origin(other)
    refused = cross_site(method, other, site, s1, own_host)
    assert (refused is None) == same
    allowed = {normalize_origin(other)}
    assert cross_site(method, other, site, s1, own_host, allowed) is None


@given(WRITES, st.sampled_from(["cross-site", "same-site", "CROSS-SITE"]))
def test_another_sites_page_without_an_origin_is_refused(method, site):
    assert cross_site(method, None, site, "http", "cache:5050") is not None


@given(WRITES, st.sampled_from(["null", "", "http://a.example/path", "ftp:/x", "http://u@a"]))
def test_no_origin_that_is_not_one_passes(method, origin):
    assert cross_site(method, origin, None, "http", "a.example", {"http://a.example"}) is not None


@given(st.text(max_size=40))
def test_normalizing_is_idempotent(text):
    once = normalize_origin(text)
    assert once is None or normalize_origin(once) == once


# -- the rule on a live server: every route that changes state ---------------------

EVIL = "http://evil.example"
ALLOWED = "https://ci.example:8443"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, start_shared_server):
    """A server that allows one other origin's pages to write."""
    sections = {"frontend": {"allowed_origins": f"{ALLOWED}/"}}  # normalized: the / goes
    with start_shared_server(tmp_path_factory, "auth off", sections) as server:
        yield server


def writes(url: str) -> list[tuple[str, str, dict]]:
    """A request of each kind that changes what is stored."""
    return [
        ("PUT", "/cs/put", {"data": b"poison"}),
        ("POST", "/cs/post", {"files": {"file": ("f", b"poison")}}),
        ("POST", "/", {"data": {"key": "cs/form"}, "files": {"file": ("f", b"poison")}}),
        ("DELETE", "/cs/existing", {}),
        ("DELETE", "/api/keys?prefix=cs/", {}),
        ("DELETE", "/cs/", {}),
        ("MKCOL", "/cs/new/", {}),
        ("PROPPATCH", "/cs/existing", {"data": b'<propertyupdate xmlns="DAV:"/>'}),
        ("PUT", "/v8/artifacts/abcd", {"data": b"poison"}),
        ("POST", "/v8/artifacts/events", {"json": []}),
        ("PUT", "/nx/v1/cache/55", {"data": b"poison"}),
    ]


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": EVIL},
        {"Origin": EVIL, "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a page of the same host on another port
        {"Origin": "null"},  # a sandboxed page
        {"Origin": "http://127.0.0.1"},  # this host, another port
    ],
)
def test_a_browsers_cross_site_write_is_refused_and_changes_nothing(guarded, headers):
    url = guarded.url
    assert requests.put(f"{url}/cs/existing", data=b"kept", timeout=10).status_code == 200
    before = guarded.stats()
    for method, path, kwargs in writes(url):
        reply = requests.request(method, url + path, headers=headers, timeout=10, **kwargs)
        assert reply.status_code == 403, (method, path, reply.text)
        assert "cross_site" in reply.text or "another site" in reply.text, (method, path)
    after = guarded.stats()
    assert after["commits"] == before["commits"] and after["objects"] == before["objects"]
    assert guarded.get("cs/existing").content == b"kept"
    assert guarded.staging_files() == []


def test_this_origin_allowed_origins_and_other_clients_may_write(guarded):
    url = guarded.url
    for headers in (
        {},  # curl, build tools
        {"Origin": url, "Sec-Fetch-Site": "same-origin"},  # the status page
        {"Origin": ALLOWED, "Sec-Fetch-Site": "cross-site"},  # listed in allowed_origins
        {"Sec-Fetch-Site": "none"},  # typed by the user
    ):
        reply = requests.put(f"{url}/cs/allowed", data=b"fine", headers=headers, timeout=10)
        assert reply.status_code == 200, (headers, reply.text)
    # Reads are never refused: a page cannot read another origin's answers anyway.
    assert requests.get(f"{url}/cs/allowed", headers={"Origin": EVIL}, timeout=10).ok


@pytest.mark.parametrize("path", ["/cs/raw", "/"])  # the object path, the Application
def test_no_byte_of_a_refused_body_is_read(guarded, path):
    """Refused on the headers: no 100 Continue, the answer at once, the connection closed."""
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=10) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{guarded.port}\r\nOrigin: {EVIL}\r\n"
            "Content-Type: multipart/form-data; boundary=x\r\n"
            f"Content-Length: {1 << 30}\r\nExpect: 100-continue\r\n\r\n".encode()
        )
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head = answer.split(b"\r\n\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 403 "), answer[:200]
    assert b"100 Continue" not in answer and b"Connection: close" in head
