"""Take the README's screenshot of the status page from a real server.

    python docs/screenshot.py                      # a server of its own, 5 minutes of traffic
    python docs/screenshot.py --minutes 0          # no waiting: only this minute in the charts
    python docs/screenshot.py --url http://127.0.0.1:5050   # a server already running

Starts ``packrat serve`` in a temporary directory on a free port (unless
``--url``), uploads a few files, reads them (and a few missing keys) for
``--minutes`` so the last-hour charts have something to show, then has
Debian's Chromium (through Playwright) upload one more file through the page
and save the page to ``docs/status-page.png``.  Everything it starts is
stopped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import requests
from playwright.sync_api import sync_playwright

HERE = Path(__file__).parent
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
UPLOADS = [
    ("builds/app-1.4.2.tar.gz", "app-1.4.2.tar.gz", 18_400_000),
    ("builds/app-1.4.1.tar.gz", "app-1.4.1.tar.gz", 18_100_000),
    ("reports/2024/q1", "report.pdf", 2_300_000),
    ("ccache/3f/2a9c41d0e7", "2a9c41d0e7", 184_000),
    ("ccache/8b/07e1f2aa93", "07e1f2aa93", 96_000),
    ("datasets/nasa-access.tsv.xz", "nasa-access.tsv.xz", 7_900_000),
]


@contextlib.contextmanager
def own_server() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        root = Path(tmp)
        config = root / "packrat.ini"
        config.write_text(
            f"[server]\nport = {port}\n[cache]\nroot = {root}/cache\nmax_size = 256M\n"
            f"[coordinator]\nendpoint = ipc://{root}/coordinator.sock\n"
            f"[metrics]\ndirectory = {root}/metrics\n[log]\naccess = off\n"
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "packrat", "serve", "--config", str(config)],
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while "Objects" not in _text(url + "/"):
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start")
                time.sleep(0.1)
            yield url
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(20)


def _text(url: str) -> str:
    try:
        return requests.get(url, timeout=2).text
    except requests.ConnectionError:
        return ""


def traffic(url: str, minutes: float) -> None:
    rng = random.Random(1)
    for key, name, size in UPLOADS:
        reply = requests.put(f"{url}/{key}", params={"filename": name}, data=rng.randbytes(size))
        reply.raise_for_status()
    keys = [key for key, _, _ in UPLOADS]
    end = time.monotonic() + minutes * 60
    n = 0
    while True:
        for _ in range(rng.randrange(3, 12)):
            requests.get(f"{url}/{rng.choice(keys)}").content  # noqa: B018 (read it all)
        if rng.random() < 0.3:
            n += 1
            requests.get(f"{url}/ccache/{n:02x}/missing")
        if time.monotonic() >= end:
            break
        time.sleep(rng.uniform(1, 4))


def screenshot(url: str, out: Path) -> None:
    """The page after one file was uploaded through it (its link and sha256 showing)."""
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as tmp:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium", args=FLAGS)
        page = browser.new_page(viewport={"width": 1200, "height": 900}, color_scheme="light")
        page.goto(url + "/")
        notes = Path(tmp) / "release-notes.md"
        notes.write_bytes(random.Random(2).randbytes(1_300_000))
        page.set_input_files("#file", str(notes))
        page.fill(".item-key", "docs/1.4.2/release-notes.md")
        page.click("#send")
        page.locator(".item.done").wait_for()
        page.locator("#recent a", has_text="release-notes").wait_for()
        page.screenshot(path=str(out), full_page=True)
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running server (default: start one)")
    parser.add_argument("--minutes", type=float, default=5, help="traffic before the shot")
    parser.add_argument("-o", "--output", type=Path, default=HERE / "status-page.png")
    args = parser.parse_args()
    with contextlib.nullcontext(args.url) if args.url else own_server() as url:
        if not args.url:
            traffic(url, args.minutes)
        screenshot(url, args.output)
    print(args.output)


if __name__ == "__main__":
    main()
