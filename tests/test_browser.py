"""The status page in a real browser: Debian's Chromium, driven by Playwright.

Uploads through the page (progress to 100 %, the link and sha256, the bytes
downloaded back), several files dropped at once, an API error shown in
words, the form with JavaScript off, the figures refreshed live, the same
formatting in the script as on the server, and a phone-width layout.  Every
page is watched for script errors and Content-Security-Policy violations.

Playwright is a test extra and drives ``/usr/bin/chromium`` (``.ci/run``
installs it with apt); ``playwright install`` is never run.  Without
Chromium the module is skipped, saying so.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import os
import random
import re
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote

import bcrypt
import pytest

from packrat.core.keys import FORBIDDEN_CLASS, KEY_PATTERN, key_path, validate_key
from packrat.frontend import page as server_page
from tests.support.waiting import wait_until

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is a test extra: pip install -e '.[test]'"
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not os.access(CHROMIUM, os.X_OK):
    pytest.skip(
        f"no Chromium at {CHROMIUM} (apt-get install chromium, as .ci/run does)",
        allow_module_level=True,
    )

# How Chromium runs on these machines (as root, no network but loopback).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 20_000
# The lines each value of the result page's table takes, as laid out.
LINES_PER_VALUE = """() => [...document.querySelectorAll("table.details td")].map((td) => {
  const range = document.createRange();
  range.selectNodeContents(td);
  return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
})"""
MiB = 1 << 20
# Collects the values every <progress> of the upload queue takes.
WATCH_PROGRESS = """() => {
  window.progressSeen = [];
  new MutationObserver((changes) => {
    for (const change of changes) window.progressSeen.push(Number(change.target.value));
  }).observe(document.getElementById("queue"),
             {subtree: true, attributes: true, attributeFilter: ["value"]});
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator:
    # Playwright gives each launch a new, empty profile directory.
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, timeout=30_000)
        yield launched
        launched.close()


class Watched:
    """A browser context whose pages' script errors and CSP violations are collected."""

    def __init__(self, context) -> None:
        self.context = context
        self.problems: list[str] = []
        context.set_default_timeout(TIMEOUT_MS)

    def new_page(self):
        page = self.context.new_page()
        page.on("pageerror", lambda error: self.problems.append(f"script error: {error}"))
        page.on(
            "console",
            lambda message: (
                self.problems.append(message.text)
                if "Content Security Policy" in message.text
                else None
            ),
        )
        return page


@pytest.fixture
def open_context(browser) -> Iterator:
    """Factory: ``open_context(**options)``, a ``Watched`` context; checked and closed after."""
    opened: list[Watched] = []

    def open_one(**options) -> Watched:
        watched = Watched(browser.new_context(accept_downloads=True, **options))
        opened.append(watched)
        return watched

    yield open_one
    for watched in opened:
        watched.context.close()
    for watched in opened:
        assert watched.problems == []


def _file(tmp_path: Path, name: str, size: int) -> tuple[Path, bytes]:
    data = random.Random(size).randbytes(size)
    path = tmp_path / name
    path.write_bytes(data)
    return path, data


def test_an_upload_shows_progress_to_100_then_its_link_and_sha256(
    make_server, open_context, tmp_path
):
    server = make_server()
    path, data = _file(tmp_path, "big.bin", 6 * MiB)
    page = open_context().new_page()
    page.goto(server.url + "/")
    # Loopback is too fast for progress events: send at 8 MiB/s, as a LAN might.
    cdp = page.context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send(
        "Network.emulateNetworkConditions",
        {"offline": False, "latency": 0, "downloadThroughput": -1, "uploadThroughput": 8 * MiB},
    )
    page.evaluate(WATCH_PROGRESS)
    page.set_input_files("#file", str(path))
    key = page.locator(".item-key")
    assert key.input_value() == "big.bin"  # the file's name, until the user types one
    key.fill("browser/big.bin")
    page.click("#send")
    done = page.locator(".item.done")
    done.wait_for()
    progress = done.locator("progress")
    assert progress.get_attribute("max") == "100" and progress.get_attribute("value") == "100"
    assert progress.get_attribute("aria-label") == "Upload of big.bin"
    seen = page.evaluate("window.progressSeen")
    assert seen[-1] == 100 and any(0 < value < 100 for value in seen), seen
    assert seen == sorted(seen)
    assert done.locator(".status").inner_text() == "Stored."
    link = done.locator("a")
    assert link.inner_text() == "browser/big.bin"
    assert link.get_attribute("href") == "/browser/big.bin"
    assert done.locator(".digest").inner_text() == hashlib.sha256(data).hexdigest()
    assert "6 MiB (6,291,456 bytes)" in done.inner_text()
    # Download it back through the link.
    with page.expect_download() as download:
        link.click()
    assert download.value.suggested_filename == "big.bin"
    assert Path(download.value.path()).read_bytes() == data
    # The figures and the recent uploads were refreshed after the upload.
    page.locator("#recent a", has_text="browser/big.bin").wait_for()
    assert page.locator("#objects td").inner_text() == "1"


def test_files_picked_by_keyboard_or_dropped_each_get_their_own_key(make_server, open_context):
    server = make_server()
    page = open_context().new_page()
    # Playwright turns file-chooser interception on with a message it does not wait
    # for; subscribing before the page loads keeps that from racing the key press
    # below (a chooser opened before interception is on never reaches the test).
    page.on("filechooser", lambda chooser: None)
    page.goto(server.url + "/")
    # The drop zone's file input is the first thing the keyboard reaches, and opens.
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "file"
    with page.expect_file_chooser() as chooser:
        page.keyboard.press("Space")
    assert chooser.value.is_multiple()
    chooser.value.set_files(
        files=[{"name": "picked.txt", "mimeType": "text/plain", "buffer": b"picked"}]
    )
    files = page.evaluate_handle(
        """() => {
        const transfer = new DataTransfer();
        transfer.items.add(new File(["first file\\n"], "one.txt", {type: "text/plain"}));
        const bytes = new Uint8Array(300000).map((_, i) => i % 251);
        transfer.items.add(new File([bytes], "two words.bin"));
        return transfer;
    }"""
    )
    page.dispatch_event("#drop", "dragenter", {"dataTransfer": files})
    page.dispatch_event("#drop", "dragover", {"dataTransfer": files})
    assert "over" in page.get_attribute("#drop", "class")
    page.dispatch_event("#drop", "drop", {"dataTransfer": files})
    assert "over" not in page.get_attribute("#drop", "class")
    keys = page.locator(".item-key")
    assert [keys.nth(i).input_value() for i in range(3)] == [
        "picked.txt",
        "one.txt",
        "two words.bin",  # a name is a key as it is
    ]
    keys.nth(1).fill("dropped/one.txt")
    assert page.inner_text("#send") == "Upload 3 files"
    page.click("#send")
    page.locator(".item.done").nth(2).wait_for()
    assert page.locator(".item.failed").count() == 0
    assert server.get("picked.txt").content == b"picked"
    assert server.get("dropped/one.txt").content == b"first file\n"
    assert server.get("two words.bin").content == bytes(i % 251 for i in range(300000))
    assert server.get("two words.bin").headers["Content-Disposition"] == (
        'attachment; filename="two words.bin"'
    )


def test_a_file_too_large_is_flagged_and_not_sent(make_server, open_context, tmp_path):
    server = make_server(cache={"max_size": "8M", "max_file_size": "1M"})
    large, _ = _file(tmp_path, "large.bin", 2 * MiB)
    small, data = _file(tmp_path, "small.bin", 1000)
    page = open_context().new_page()
    posts: list[str] = []
    page.on(
        "request", lambda request: posts.append(request.url) if request.method == "POST" else None
    )
    page.goto(server.url + "/")
    page.set_input_files("#file", [str(large), str(small)])
    flagged = page.locator(".item").nth(0)
    assert flagged.locator(".status").inner_text() == (
        "Larger than the largest file this server accepts (1 MiB): it will not be sent."
    )
    assert "failed" in flagged.get_attribute("class")
    assert flagged.locator(".item-key").count() == 0
    assert page.inner_text("#send") == "Upload"  # one file to send, not two
    page.click("#send")
    page.locator(".item.done").wait_for()
    assert posts == [server.url + "/"]  # the small file only
    assert server.get("small.bin").content == data
    assert server.exists("large.bin") is False
    # Only the flagged file left: nothing is sent, and the page says why.
    page.click("#send")
    assert page.inner_text("#queue-hint") == "Nothing this server accepts to send."
    assert posts == [server.url + "/"]
    assert server.staging_files() == []


def test_an_api_error_is_shown_in_words(make_server, open_context, tmp_path):
    server = make_server()
    path, _ = _file(tmp_path, "notes.bin", 1000)
    page = open_context().new_page()
    page.goto(server.url + "/")
    page.set_input_files("#file", str(path))
    item = page.locator(".item")
    key = item.locator(".item-key")
    key.fill("api/notes.bin")  # a key the browser cannot tell is reserved
    page.click("#send")
    page.locator(".item.failed").wait_for()
    assert item.locator(".status").inner_text() == (
        "Not stored. Invalid key 'api/notes.bin': keys starting with 'api' are reserved by the API."
        " (invalid_key, HTTP 400)"
    )
    assert item.locator("progress").is_hidden()
    assert server.object_bytes() == 0
    assert server.staging_files() == []
    # A key the browser can tell is wrong is not sent at all.
    key.fill("a//b")
    assert key.evaluate("input => input.validity.patternMismatch") is True
    key.fill("ok/a(1)+b=c;d@e")
    assert key.evaluate("input => input.validity.valid") is True


def test_without_javascript_the_form_answers_a_page_with_a_link_back(
    make_server, open_context, tmp_path
):
    server = make_server()
    path, data = _file(tmp_path, "plain.txt", 20_000)
    page = open_context(java_script_enabled=False).new_page()
    page.goto(server.url + "/")
    assert page.is_visible("#key") and page.is_visible("#file")
    page.fill("#key", "nojs/plain.txt")
    page.set_input_files("#file", str(path))
    with page.expect_navigation() as navigation:
        page.click("#send")
    assert navigation.value.status == 200
    assert page.inner_text("h2") == "Stored"
    assert hashlib.sha256(data).hexdigest() in page.inner_text(".digest")
    # Each figure on one line, no word cut in two (they were tiles a few
    # characters wide: "nojs/pla|in.txt", the sha256 over eight lines).
    assert page.evaluate(LINES_PER_VALUE) == [1, 1, 1, 1, 1]
    page.set_viewport_size({"width": 360, "height": 740})
    lines = page.evaluate(LINES_PER_VALUE)
    assert lines[:3] == [1, 1, 1] and lines[4] == 1 and lines[3] <= 3, lines  # digest wraps
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    page.set_viewport_size({"width": 1280, "height": 720})
    assert server.get("nojs/plain.txt").content == data
    page.click("text=Back to the status page")
    page.locator("#recent a", has_text="nojs/plain.txt").wait_for()
    # An error, in words, with its status.
    page.fill("#key", "api/refused")
    page.set_input_files("#file", str(path))
    with page.expect_navigation() as navigation:
        page.click("#send")
    assert navigation.value.status == 400
    assert page.inner_text(".error") == (
        "Invalid key 'api/refused': keys starting with 'api' are reserved by the API."
    )
    assert page.get_attribute("text=Back to the status page", "href") == "/"


def test_the_script_refreshes_the_figures_as_the_server_renders_them(make_server, open_context):
    server = make_server()
    for n in range(3):
        assert server.upload(f"live/{n}", b"z" * (n * 700_000 + 1), filename=f"{n}.bin").ok
    server.get("live/0")
    server.get("live/none")
    page = open_context().new_page()
    page.goto(server.url + "/")
    figures = "() => [...document.querySelectorAll('#figures td')].map(td => td.textContent)"
    recent = """() => [...document.querySelectorAll('#recent tbody tr')]
        .map(tr => [...tr.cells].slice(0, 3).map(td => td.textContent))"""
    rendered, rendered_recent = page.evaluate(figures), page.evaluate(recent)
    module = "import(document.querySelector('script[type=module]').src)"
    page.evaluate(f"async () => (await {module}).refresh()")
    assert page.evaluate(figures) == rendered
    assert page.evaluate(recent) == rendered_recent
    assert page.inner_text("#live-text").startswith("Live · updated ")
    # An upload by someone else shows up within the refresh interval.
    assert server.upload("live/new", b"new").ok
    sync_api.expect(page.locator("#objects td")).to_have_text("4", timeout=8000)
    assert page.locator("#recent tbody tr").first.locator("a").inner_text() == "live/new"

    # The script formats exactly as page.py does.
    rng = random.Random(7)
    sizes = [0, 1, 1023, 1024, 1280, 1535, 1536, 102_349, 1_048_524, 1 << 30, 629_147_573]
    sizes += [rng.randrange(1 << rng.randrange(1, 56)) for _ in range(300)]
    ratios = [None, 0, 1, 0.875, 0.0005, 0.9995, *[rng.random() for _ in range(100)]]
    seconds = [
        0,
        0.4,
        59.9,
        60,
        3599,
        3600,
        86399,
        86400,
        *[rng.uniform(0, 10**7) for _ in range(100)],
    ]
    history = [
        {
            "hits": rng.choice([0, rng.randrange(1000)]),
            "misses": rng.choice([0, rng.randrange(1000)]),
            "bytes_in": rng.choice([0, rng.randrange(1 << 30)]),
            "bytes_out": rng.choice([0, rng.randrange(1 << 30)]),
        }
        for _ in range(60)
    ]
    script = page.evaluate(
        f"""async ([sizes, ratios, seconds, history]) => {{
        const m = await {module};
        return {{
          bytes: sizes.map(m.humanBytes),
          percent: ratios.map(m.percent),
          duration: seconds.map(m.duration),
          ago: seconds.map(m.ago),
          ratio: m.ratioBars(history),
          traffic: m.trafficBars(history),
        }};
    }}""",
        [sizes, ratios, seconds, history],
    )
    assert script["bytes"] == [server_page.human_bytes(n) for n in sizes]
    assert script["percent"] == [server_page.percent(r) for r in ratios]
    assert script["duration"] == [server_page.duration(s) for s in seconds]
    assert script["ago"] == [server_page.ago(s) for s in seconds]

    def bars(found) -> list[tuple]:
        return [(b["x"], b["y"], b["height"], b["kind"], b["title"]) for b in found]

    python_ratio = [vars(b) for b in server_page.ratio_bars(history)]
    python_traffic, top = server_page.traffic_bars(history)
    assert bars(script["ratio"]) == bars(python_ratio)
    assert bars(script["traffic"][0]) == bars([vars(b) for b in python_traffic])
    assert script["traffic"][1] == top

    # The object store's tile too (its states and backlogs).
    uploaders = [
        None,
        *[
            {
                "backlog_objects": rng.choice([0, 1, rng.randrange(10**7)]),
                "backlog_bytes": rng.randrange(1 << 40),
                "uploaded": rng.randrange(10**8),
                "lost_before_upload": rng.choice([0, rng.randrange(10**4)]),
            }
            for _ in range(20)
        ],
    ]
    stores = [
        {"state": state, "bucket": "builds", "prefix": prefix, "uploader": uploader}
        for state, prefix, uploader in zip(
            ["ok", "degraded"] * 11, ["", "ci/"] * 11, uploaders, strict=False
        )
    ]
    figures = page.evaluate(
        f"async (s) => {{ const m = await {module}; return s.map(m.objectstoreFigure); }}",
        stores,
    )
    assert figures == [server_page.objectstore_figure(store) for store in stores]


def test_a_phone_sees_the_whole_page_without_scrolling_sideways(make_server, open_context):
    server = make_server()
    long_key = "/".join(["a-rather-long-segment-name"] * 12)
    assert server.upload(long_key, b"x", filename="x" * 200 + ".bin").ok
    context = open_context(viewport={"width": 360, "height": 740}, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(server.url + "/")
    page.locator("#recent a").first.wait_for()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    assert page.locator("table.figures tr").first.bounding_box()["width"] <= 360


# Keys the page's pattern and script see, with what packrat.core.keys says of them.
KEYS_TO_CHECK = [
    "Q1 report.pdf",
    "rapports/été/q1",
    "日本語/ファイル",
    "family \U0001f468\u200d\U0001f469\u200d\U0001f467.jpg",
    "100%/a?b#c&d",
    "a//b",
    "/a",
    "a/",
    "a\\b",
    "tab\there",
    "x\u0085y",
    "bidi\u202etxt.exe",
    "iso\u2066late",
    "line\u2028sep",
    "(){}[]|/-&&!!",
    "\U0001f600",
]


def test_the_page_checks_and_makes_keys_by_the_servers_rule(make_server, open_context):
    """The input's pattern and the script's default keys, from the data the server renders,
    agree with packrat.core.keys in Chromium (the pattern compiles with the v flag)."""
    server = make_server()
    page = open_context().new_page()
    page.goto(server.url + "/")
    module = "import(document.querySelector('script[type=module]').src)"
    found = page.evaluate(
        f"""async (keys) => {{
        const m = await {module};
        const input = document.getElementById("key");
        return keys.map((key) => {{
          input.value = key;
          return [!input.validity.patternMismatch, m.defaultKey(key), m.keyPath(key)];
        }});
    }}""",
        KEYS_TO_CHECK,
    )
    for key, (valid, default, path) in zip(KEYS_TO_CHECK, found, strict=True):
        assert valid == bool(re.fullmatch(KEY_PATTERN, key)), key
        assert default == re.sub(f"[{FORBIDDEN_CLASS}]", "_", key), key
        if "/" not in key:
            assert validate_key(default) == default  # a file's name always makes a key
        # Both encodings decode to the key (they differ only in what they leave as is).
        assert unquote(path) == unquote(key_path(key)) == "/" + key, key


# -- another site's page tries to write ------------------------------------------

# Served by a second server on another port: what any page the user opens could do.
ATTACK = """<!doctype html><html><body>
<form id="root" method="post" enctype="multipart/form-data" action="{target}/">
  <input name="key" value="poisoned/form"><input type="file" name="file"></form>
<form id="direct" method="post" enctype="multipart/form-data" action="{target}/poisoned/direct">
  <input type="file" name="file"></form>
</body></html>"""
# A file in each form's input (pages can make one), then a submission.
SUBMIT = """(id) => {
  const form = document.getElementById(id);
  const files = new DataTransfer();
  files.items.add(new File(["poison"], "out.o"));
  form.querySelector("input[type=file]").files = files.files;
  form.submit();
}"""
# A no-cors POST (its answer unreadable, but sent), a PUT (preflighted).
FETCHES = """async (target) => {
  const body = new FormData();
  body.append("file", new File(["poison"], "out.o"));
  await fetch(target + "/poisoned/fetch", {method: "POST", mode: "no-cors", body,
                                           credentials: "include"});
  try {
    await fetch(target + "/poisoned/put", {method: "PUT", body: "poison", credentials: "include"});
    return "PUT sent";
  } catch (e) {
    return "PUT blocked";
  }
}"""
POISONED = ("poisoned/form", "poisoned/direct", "poisoned/fetch", "poisoned/put")


@contextlib.contextmanager
def attacker_site(target: str) -> Iterator[str]:
    """An HTTP server on another port serving ``ATTACK`` against ``target``; its URL."""
    page = ATTACK.format(target=target).encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def attack(page, site: str, target: str) -> str:
    """Each attempt from the attacker's page; what became of the PUT."""
    for form in ("root", "direct"):
        page.goto(site)
        with page.expect_navigation() as navigation:
            page.evaluate(SUBMIT, form)
        assert navigation.value.status == 403
        assert "cross_site" in navigation.value.text()
    page.goto(site)
    return page.evaluate(FETCHES, target)


def refused_in_log(server, count: int) -> list[str]:
    """The access lines of the requests refused as cross-site, once there are ``count``."""

    def found() -> list[str]:
        lines = [line for line in server.log().splitlines() if "error=cross_site" in line]
        return lines if len(lines) >= count else []

    # Access lines are flushed once a second.
    return wait_until(found, 15, 0.1, what="the refusals in the access log", detail=server.log)


def test_another_sites_page_cannot_write_with_auth_off(make_server, open_context):
    server = make_server()
    with attacker_site(server.url) as site:
        page = open_context().new_page()
        assert attack(page, site, server.url) == "PUT blocked"  # no CORS: never sent
    lines = refused_in_log(server, 3)  # the two forms and the no-cors fetch
    assert {re.search(r'(\S+) "([^"]*)" 403 ', line).groups() for line in lines} == {
        ("POST", "/"),
        ("POST", "/poisoned/direct"),
        ("POST", "/poisoned/fetch"),
    }
    assert not any('PUT "/poisoned/put"' in line for line in server.log().splitlines())
    for key in POISONED:
        assert not server.exists(key), key
    assert server.object_bytes() == 0 and server.staging_files() == []


def test_another_sites_page_cannot_write_with_the_users_basic_credentials(
    make_server, open_context, tmp_path
):
    """Browsers resend HTTP Basic credentials on another site's form posts: refused all the
    same, before credentials are looked at (no password prompt), and the user's own upload
    through the status page still works."""
    users = tmp_path / "users.htpasswd"
    users.write_text(f"alice:{bcrypt.hashpw(b'alice-pw', bcrypt.gensalt(4)).decode()}\n")
    server = make_server(wait=False, auth={"enabled": "true", "htpasswd": users})
    server.http.auth = ("alice", "alice-pw")
    server.wait_ready()
    context = open_context(http_credentials={"username": "alice", "password": "alice-pw"})
    page = context.new_page()
    page.goto(server.url + "/")  # the user signs in to the status page
    assert page.locator("h1").count() == 1
    with attacker_site(server.url) as site:
        assert attack(context.new_page(), site, server.url) == "PUT blocked"
    refused_in_log(server, 3)
    for key in POISONED:
        assert not server.exists(key), key
    # The user's own upload, through the page, with the same credentials.
    page.set_input_files("#file", {"name": "mine.txt", "mimeType": "text/plain", "buffer": b"ok"})
    page.locator(".item-key").fill("mine/own.txt")
    page.click("#send")
    page.locator(".item.done").wait_for()
    assert server.get("mine/own.txt").content == b"ok"
