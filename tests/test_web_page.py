"""The status page over HTTP, without a browser: what it shows, the no-JS form, the favicon.

``tests/test_browser.py`` drives the same page in Chromium; this module checks
what the server sends (and the page's pure formatting rules) on its own.
"""

from __future__ import annotations

import hashlib
import html
import math
import re

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from packrat.core.keys import InvalidKey, validate_key
from packrat.frontend import page
from packrat.frontend.handlers import STATUS_CSP

MiB = 1 << 20
BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
EXPECTED_CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; img-src 'self'; "
    "style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


# -- Formatting rules -----------------------------------------------------------


@given(st.integers(min_value=0, max_value=1 << 62))
def test_human_bytes_is_close_and_never_shows_1024_of_a_unit(n):
    text = page.human_bytes(n)
    number, unit = text.split(" ")
    assert re.fullmatch(r"[0-9]+(\.[0-9])?", number), text
    scale = 1024 ** page.UNITS.index(unit)
    if unit == "B":
        assert int(number) == n
    else:
        assert float(number) < 1024, text
        assert math.isclose(float(number) * scale, n, rel_tol=0.06), text


@given(st.integers(min_value=0, max_value=1 << 50), st.integers(min_value=0, max_value=1 << 50))
def test_human_bytes_keeps_order(a, b):
    def back(text: str) -> float:
        number, unit = text.split(" ")
        return float(number) * 1024 ** page.UNITS.index(unit)

    if a <= b:
        assert back(page.human_bytes(a)) <= back(page.human_bytes(b))


@given(st.floats(min_value=0, max_value=10 * 365 * 86400))
def test_duration_shows_at_most_two_units_largest_first(seconds):
    parts = page.duration(seconds).split(" ")
    units = parts[1::2]
    assert 1 <= len(units) <= 2
    order = ["d", "h", "min", "s"]
    assert [order.index(u) for u in units] == sorted(order.index(u) for u in units)
    total = sum(
        int(v) * {"d": 86400, "h": 3600, "min": 60, "s": 1}[u]
        for v, u in zip(parts[::2], units, strict=True)
    )
    assert (
        total <= seconds < total + (86400 if units[0] == "d" else 3600 if units[0] == "h" else 60)
    )


MEDIA = st.sampled_from(
    [
        "text/html",
        "text/*",
        "*/*",
        "application/json",
        "application/*",
        "application/xml",
        "image/png",
    ]
)
RANGES = st.lists(
    st.tuples(MEDIA, st.sampled_from([None, "0", "0.1", "0.5", "0.8", "0.9", "1"])),
    max_size=5,
    unique_by=lambda r: r[0],
)


def _accept(ranges) -> str:
    return ",".join(m if q is None else f"{m};q={q}" for m, q in ranges)


@given(RANGES, st.randoms())
def test_html_is_chosen_by_q_and_specificity_in_any_order(ranges, rng):
    accept = _accept(ranges)
    shuffled = list(ranges)
    rng.shuffle(shuffled)
    assert page.prefers_html(accept) == page.prefers_html(_accept(shuffled))
    if all(m not in ("text/html", "text/*") and q is None for m, q in ranges):
        assert page.prefers_html(accept) is False  # no mention of HTML: the API's JSON
    if any(m == "application/json" and q in (None, "1") for m, q in ranges):
        assert page.prefers_html(accept) is False  # JSON at full weight always wins a tie


@pytest.mark.parametrize(
    ("accept", "html_wanted"),
    [
        (BROWSER_ACCEPT, True),
        ("text/html", True),
        ("*/*", False),
        ("", False),
        ("application/json", False),
        ("application/json;q=0.5, text/html", True),
        ("text/html;q=0.5, application/json", False),
        ("text/html;q=nan", False),
        ("text/html;q=2", False),
    ],
)
def test_prefers_html(accept, html_wanted):
    assert page.prefers_html(accept) is html_wanted


def _buckets(*figures: tuple[int, int, int, int]) -> list[dict[str, int]]:
    """Buckets of (hits, misses, bytes_in, bytes_out), the last one being this minute."""
    return [
        {"start": 60 * i, "hits": h, "misses": m, "uploads": 0, "bytes_in": i_, "bytes_out": o}
        for i, (h, m, i_, o) in enumerate(figures)
    ]


@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**6),
            st.integers(0, 10**6),
            st.integers(0, 1 << 40),
            st.integers(0, 1 << 40),
        ),
        min_size=60,
        max_size=60,
    )
)
def test_chart_bars_stay_in_the_drawing_and_add_up(figures):
    buckets = _buckets(*figures)
    columns: dict[float, float] = {}
    for bar in page.ratio_bars(buckets):
        assert bar.y >= 0 and bar.y + bar.height <= page.RATIO_HEIGHT + 0.01
        assert 0 <= bar.x <= 600 - page.BAR
        columns[bar.x] = columns.get(bar.x, 0) + bar.height
    read_minutes = sum(1 for h, m, _, _ in figures if h + m)
    assert len(columns) == read_minutes
    assert all(abs(total - page.RATIO_HEIGHT) < 0.02 for total in columns.values())
    bars, top = page.traffic_bars(buckets)
    assert top == max((max(i, o) for _, _, i, o in figures), default=0)
    for bar in bars:
        assert bar.y >= 0 and bar.y + bar.height <= page.TRAFFIC_HEIGHT + 0.01
        assert (bar.kind == "sent") == (bar.y + bar.height <= page.TRAFFIC_HEIGHT / 2 + 0.01)


def test_chart_titles_say_the_minute_and_the_figures():
    buckets = _buckets(*([(0, 0, 0, 0)] * 58), (3, 1, 2048, 0), (0, 2, 0, 5 * MiB))
    assert [(b.kind, b.title) for b in page.ratio_bars(buckets)] == [
        ("hit", "1 min ago: 3 hits, 1 miss (75 %)"),
        ("miss", "1 min ago: 3 hits, 1 miss (75 %)"),
        ("miss", "this minute: 0 hits, 2 misses (0 %)"),
    ]
    bars, top = page.traffic_bars(buckets)
    assert top == 5 * MiB
    assert [(b.kind, b.height, b.title) for b in bars] == [
        ("received", 0.5, "1 min ago: 0 B sent, 2 KiB received"),  # a trickle stays visible
        ("sent", 30, "this minute: 5 MiB sent, 0 B received"),
    ]


def test_favicon_is_a_reserved_key():
    with pytest.raises(InvalidKey, match="reserved"):
        validate_key("favicon.ico")
    assert validate_key("icons/favicon.ico") == "icons/favicon.ico"


# -- The page, from a real server ---------------------------------------------------


def _figure(text: str, row: str) -> str:
    """The text of one figure's cell (``<tr id=row><th>..</th><td>..</td>``)."""
    found = re.search(rf'<tr id="{row}"[^>]*><th>[^<]*</th><td>(.*?)</td></tr>', text, re.S)
    assert found, row
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1))).strip()


def test_the_page_shows_the_figures_in_human_units(make_server, wait_for):
    server = make_server(cache={"max_size": "64M"})
    assert server.upload("web/three", b"x" * (3 * MiB), filename="three.bin").status_code == 200
    hostile = "it's&more"
    name = '<img src=x onerror="alert(1)">.txt'
    reply = requests.put(
        f"{server.url}/{hostile}", params={"filename": name}, data=b"y", timeout=10
    )
    assert reply.status_code == 200
    for _ in range(3):
        server.get("web/three")
    server.get("web/absent")

    def settled() -> str | None:
        text = requests.get(server.url + "/", timeout=10).text
        counted = _figure(text, "hits") == "3" and _figure(text, "misses") == "1"
        # A front end is listed once its first heartbeat reached the coordinator.
        heard = text.count('<span class="state running">running</span>') == 3
        return text if counted and heard else None

    text = wait_for(settled)
    assert _figure(text, "objects") == "2"
    assert _figure(text, "hit_ratio") == "75 %"
    assert re.fullmatch(r"3 MiB of 64 MiB \d\.\d % full", _figure(text, "bytes"))
    assert '<meter id="fill" min="0" max="1" value="0.04' in text
    assert _figure(text, "evictions") == "0 0 B"
    assert _figure(text, "commits") == "2"
    assert 'id="objectstore"' not in text  # no [objectstore]: no tile
    assert re.search(
        r"version \d+\.\d+\.\d+ · policy <span id=\"policy\">s3gdsf</span> · up ", text
    )
    # Recent uploads, newest first, escaped; each key links to its object.
    assert text.index("it&#x27;s&amp;more") < text.index(">web/three</a>")
    assert '<a href="/it&#x27;s&amp;more">' in text and "<img src=x" not in text
    assert '<td class="num">3 MiB</td>' in text
    # Each process and its state.
    for name in ("coordinator", "front end 0", "front end 1"):
        assert f"<td>{name}</td>" in text
    # The charts: this minute's reads and traffic.
    assert '<rect class="hit" x="591.0"' in text and '<rect class="miss" x="591.0"' in text
    assert "this minute: 3 hits, 1 miss (75 %)" in text
    assert '<rect class="sent" x="591.0"' in text and '<rect class="received" x="591.0"' in text
    assert "4 reads" in text


def test_the_page_links_its_own_script_style_and_icon_only(packrat_server):
    url = packrat_server.url
    reply = requests.get(url + "/", timeout=10)
    assert reply.headers["Content-Security-Policy"] == STATUS_CSP == EXPECTED_CSP
    assert reply.headers["Referrer-Policy"] == "same-origin"
    linked = re.findall(r'(?:src|href)="(/static/[^"]+)"', reply.text)
    assert {link.split("?")[0] for link in linked} == {
        "/static/packrat.js",
        "/static/packrat.css",
        "/static/favicon.svg",
    }
    assert '<script type="module" src="/static/packrat.js?v=' in reply.text
    types = {"js": "javascript", "css": "text/css", "svg": "image/svg+xml"}
    for link in linked:
        static = requests.get(url + html.unescape(link), timeout=10)
        assert static.status_code == 200, link
        assert types[link.split("?")[0].rsplit(".", 1)[1]] in static.headers["Content-Type"]
        assert static.headers["X-Content-Type-Options"] == "nosniff"
        # Versioned by content: cached for long, never stale after an upgrade.
        version = link.split("?v=")[1]
        assert hashlib.sha512(static.content).hexdigest().startswith(version)
        assert "max-age=315360000" in static.headers["Cache-Control"]


def test_without_the_coordinator_the_page_says_so_and_still_offers_the_form(make_server):
    frontend = make_server("frontend", wait=False, coordinator={"timeout": 1})
    frontend.wait_ready(writable=False)
    text = requests.get(frontend.url + "/", timeout=10).text
    assert "The coordinator is not reachable right now" in text
    assert "Objects" not in text  # tests/conftest.py's wait_ready counts on it
    assert 'name="file"' in text and '<script type="module"' in text


# -- The form without JavaScript ------------------------------------------------------


def _form_post(url: str, key: str, data: bytes, accept: str | None) -> requests.Response:
    headers = {"Accept": accept} if accept is not None else {}
    return requests.post(
        url + "/",
        data={"key": key},
        files={"file": ("plain.txt", data, "text/plain")},
        headers=headers,
        timeout=30,
    )


def test_a_browsers_form_gets_an_html_answer_with_a_link_back(make_server):
    server = make_server(cache={"max_size": "8M", "max_file_size": "1M"})
    reply = _form_post(server.url, "form/html", b"from a browser", BROWSER_ACCEPT)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    assert reply.headers["Content-Security-Policy"] == EXPECTED_CSP
    text = reply.text
    assert "<h2>Stored</h2>" in text
    assert '<a href="/form/html">form/html</a>' in text
    assert hashlib.sha256(b"from a browser").hexdigest() in text
    assert "14 B (14 bytes)" in text
    assert '<a class="button" href="/">Back to the status page</a>' in text
    assert "<script" not in text  # the answer needs no script
    assert server.get("form/html").content == b"from a browser"

    refused = _form_post(server.url, "api/nope", b"x", BROWSER_ACCEPT)
    assert refused.status_code == 400
    assert refused.headers["Content-Type"].startswith("text/html")
    assert (
        "Invalid key &#x27;api/nope&#x27;: keys starting with &#x27;api&#x27; are reserved"
        " by the API." in refused.text
    )
    assert "<code>invalid_key</code>, HTTP 400" in refused.text
    assert 'href="/">Back to the status page</a>' in refused.text

    too_large = _form_post(server.url, "form/big", b"z" * (2 * MiB), BROWSER_ACCEPT)
    assert too_large.status_code == 413
    assert "The upload is larger than the limit of 1 MiB (1,048,576 bytes)." in too_large.text
    assert server.exists("form/big") is False
    assert server.staging_files() == []


@pytest.mark.parametrize("accept", [None, "*/*", "application/json", "application/json, text/html"])
def test_api_clients_still_get_json_from_the_form_route(packrat_server, accept):
    reply = _form_post(packrat_server.url, "form/json", b"for a script", accept)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"] == "application/json; charset=UTF-8"
    assert reply.json()["sha256"] == hashlib.sha256(b"for a script").hexdigest()
    refused = _form_post(packrat_server.url, "api/nope", b"x", accept)
    assert refused.status_code == 400
    assert refused.json()["error"] == "invalid_key"


def test_a_browser_gets_the_401_challenge_not_a_page(make_server):
    token = "w" * 20
    server = make_server(wait=False, auth={"enabled": "true", "write_tokens": token})
    server.wait_answering("/readyz")
    reply = _form_post(server.url, "form/auth", b"x", BROWSER_ACCEPT)
    assert reply.status_code == 401 and reply.json()["error"] == "unauthorized"
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


# -- The favicon ---------------------------------------------------------------------


def test_favicon_ico_is_not_a_miss_nor_a_warning(packrat_server, wait_for):
    url = packrat_server.url
    for method in ("GET", "HEAD"):
        reply = requests.request(method, url + "/favicon.ico", allow_redirects=False, timeout=10)
        assert reply.status_code == 301
        assert reply.headers["Location"].startswith("/static/favicon.svg?v=")
    icon = requests.get(url + "/favicon.ico", timeout=10)
    assert icon.status_code == 200 and icon.headers["Content-Type"] == "image/svg+xml"
    assert icon.content.startswith(b"<svg")
    assert requests.put(url + "/favicon.ico", data=b"x", timeout=10).status_code == 405
    stats = requests.get(url + "/api/stats", timeout=10).json()
    assert stats["misses"] == 0 and stats["hits"] == 0
    metrics = requests.get(url + "/metrics", timeout=10).text
    assert "packrat_cache_misses_total 0.0" in metrics
    assert 'route="/favicon.ico"' in metrics
    log = wait_for(lambda: '"/favicon.ico" 301' in packrat_server.log() and packrat_server.log())
    assert not [line for line in log.splitlines() if "favicon" in line and "WARNING" in line]
