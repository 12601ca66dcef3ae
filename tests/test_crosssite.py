"""``packrat.frontend.crosssite``: which writes a browser made for another site's page.

The Chromium test of the whole rule (a page on another port submitting a
form and a no-cors fetch) comes with its wiring into the object path.
"""

from __future__ import annotations

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
