"""The client commands as scripts use them: real processes, real servers, exit statuses."""

from __future__ import annotations

import fcntl
import hashlib
import http.server
import json
import os
import pty
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest
import requests

from packrat import __version__
from packrat.core.exits import ExitStatus

TOKEN = "t" * 16 + "-write-token"


def packrat(
    *args: str,
    url: str | None = None,
    stdin: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``packrat ARGS`` with ``$PACKRAT_URL`` set to ``url``; output captured (no terminal)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PACKRAT_")}
    if url:
        environ["PACKRAT_URL"] = url
    return subprocess.run(
        [sys.executable, "-m", "packrat", *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        env={**environ, **(env or {})},
        cwd=cwd,
    )


def test_version():
    result = packrat("--version")
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"packrat {__version__}"


def test_put_get_exists_rm_stat(packrat_server, tmp_path):
    url = packrat_server.url
    source = tmp_path / "notes.txt"
    data = os.urandom(200_000)
    source.write_bytes(data)

    put = packrat("put", str(source), url=url)
    assert put.returncode == ExitStatus.OK, put.stderr
    answer = json.loads(put.stdout)
    assert answer == {
        "key": "notes.txt",  # FILE's name when no KEY is given
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    assert put.stderr == b""  # no progress bar when stderr is not a terminal
    assert packrat("put", str(source), "dir/notes", url=url).returncode == ExitStatus.OK

    out = tmp_path / "out.txt"
    got = packrat("get", "dir/notes", "-o", str(out), url=url)
    assert got.returncode == ExitStatus.OK, got.stderr
    assert out.read_bytes() == data and got.stdout == b"" and got.stderr == b""
    to_stdout = packrat("get", "notes.txt", url=url)
    assert to_stdout.returncode == ExitStatus.OK and to_stdout.stdout == data
    assert packrat("get", "notes.txt", "-o", "-", url=url).stdout == data

    assert packrat("exists", "notes.txt", url=url).returncode == ExitStatus.OK
    assert packrat("exists", "nothing", url=url).returncode == ExitStatus.NOT_FOUND
    assert packrat("rm", "notes.txt", url=url).returncode == ExitStatus.OK
    assert packrat("exists", "notes.txt", url=url).returncode == ExitStatus.NOT_FOUND
    gone = packrat("rm", "notes.txt", url=url)
    assert gone.returncode == ExitStatus.NOT_FOUND
    assert gone.stderr.decode().startswith("packrat: not_found: ")
    missing = packrat("get", "notes.txt", "-o", str(tmp_path / "never"), url=url)
    assert missing.returncode == ExitStatus.NOT_FOUND and not (tmp_path / "never").exists()

    stat = packrat("stat", url=url)
    assert stat.returncode == ExitStatus.OK
    stats = json.loads(stat.stdout)
    assert stats["objects"] == 1 and stats["version"] == __version__


def test_standard_input_and_the_url_option(packrat_server):
    result = packrat("put", "-", "from/stdin", "--url", packrat_server.url, stdin=b"piped")
    assert result.returncode == ExitStatus.OK, result.stderr
    assert packrat_server.get("from/stdin").content == b"piped"
    no_key = packrat("put", "-", url=packrat_server.url, stdin=b"x")
    assert no_key.returncode == ExitStatus.USAGE and b"KEY" in no_key.stderr


def test_exit_statuses_for_failures(make_server, tmp_path, free_tcp_port, wait_for):
    server = make_server(
        wait=False, cache={"max_file_size": "1K"}, auth={"enabled": "true", "write_tokens": TOKEN}
    )
    source = tmp_path / "small"
    source.write_bytes(b"small")
    with_token = {"PACKRAT_TOKEN": TOKEN}

    probe = f"{server.url}/exists/probe"
    wait_for(lambda: answers(probe))
    denied = packrat("put", str(source), url=server.url)
    assert denied.returncode == ExitStatus.DENIED
    assert b"unauthorized" in denied.stderr
    assert packrat("exists", "k", url=server.url, env={"PACKRAT_TOKEN": "x" * 16}).returncode == (
        ExitStatus.DENIED
    )

    big = tmp_path / "big"
    big.write_bytes(b"x" * 4096)
    refused = packrat("put", str(big), url=server.url, env=with_token)
    assert refused.returncode == ExitStatus.REFUSED
    assert refused.stderr.decode().startswith("packrat: too_large: ")
    bad_key = packrat("put", str(source), "a//b", url=server.url, env=with_token)
    assert bad_key.returncode == ExitStatus.REFUSED and b"invalid_key" in bad_key.stderr

    unreachable = packrat("stat", url=f"http://127.0.0.1:{free_tcp_port}")
    assert unreachable.returncode == ExitStatus.UNAVAILABLE

    no_file = packrat("put", str(tmp_path / "absent"), url=server.url, env=with_token)
    assert no_file.returncode == ExitStatus.LOCAL and b"absent" in no_file.stderr
    stored = packrat("put", str(source), "k", url=server.url, env=with_token)
    assert stored.returncode == ExitStatus.OK
    no_dir = packrat("get", "k", "-o", str(tmp_path / "no" / "dir"), url=server.url, env=with_token)
    assert no_dir.returncode == ExitStatus.LOCAL

    assert packrat("put", url=server.url).returncode == ExitStatus.USAGE  # argparse


def test_a_download_that_does_not_match_its_etag_exits_6(tmp_path):
    class Liar(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("ETag", '"' + "0" * 64 + '"')
            self.send_header("Content-Length", "5")
            self.end_headers()
            self.wfile.write(b"wrong")

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Liar)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        result = packrat("get", "k", "-o", str(tmp_path / "k"), url=url)
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert result.returncode == ExitStatus.INTEGRITY, result.stderr
    assert not (tmp_path / "k").exists()


def answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code < 500
    except requests.ConnectionError:
        return False


def on_a_terminal(*args: str, url: str, stdout_too: bool = False) -> tuple[int, bytes]:
    """Run ``packrat ARGS`` with stderr (and optionally stdout) on a pseudo-terminal."""
    leader, follower = pty.openpty()
    # A new pseudo-terminal is 0x0; tqdm draws nothing on a terminal that narrow.
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PACKRAT_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "packrat", *args],
        stdout=follower if stdout_too else subprocess.DEVNULL,
        stderr=follower,
        env={**environ, "PACKRAT_URL": url},
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the terminal's last writer has gone
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return process.wait(60), seen


def test_progress_bar_on_a_terminal_only_for_large_transfers(packrat_server, tmp_path):
    large = tmp_path / "large"
    large.write_bytes(os.urandom(4 << 20))
    status, screen = on_a_terminal("put", str(large), url=packrat_server.url)
    assert status == ExitStatus.OK
    assert b"4.00M" in screen, screen  # tqdm's bar, in units of 1024
    status, screen = on_a_terminal(
        "get", "large", "-o", str(tmp_path / "back"), url=packrat_server.url
    )
    assert status == ExitStatus.OK and b"4.00M" in screen, screen
    assert (tmp_path / "back").read_bytes() == large.read_bytes()

    small = tmp_path / "small"
    small.write_bytes(b"tiny")
    status, screen = on_a_terminal("put", str(small), url=packrat_server.url)
    assert status == ExitStatus.OK and screen == b""


def test_get_refuses_to_write_binary_to_a_terminal(packrat_server):
    packrat_server.upload("bin", b"\x00\x01")
    status, screen = on_a_terminal("get", "bin", url=packrat_server.url, stdout_too=True)
    assert status == ExitStatus.USAGE and b"-o FILE" in screen


@pytest.mark.parametrize("command", ["put", "get", "exists", "rm", "stat"])
def test_help_names_the_url_and_token(command):
    result = packrat(command, "--help")
    assert result.returncode == 0
    assert b"--url" in result.stdout and b"PACKRAT_TOKEN" in result.stdout
