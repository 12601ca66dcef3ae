"""The client commands as scripts use them: real processes, real servers, exit statuses."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest
import requests

from packrat import __version__
from packrat.core.exits import ExitStatus
from tests.support.cli import packrat

TOKEN = "t" * 16 + "-write-token"


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
        "evicted": 0,
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


def test_exit_statuses_for_failures(make_server, tmp_path, free_tcp_port):
    server = make_server(
        wait=False, cache={"max_file_size": "1K"}, auth={"enabled": "true", "write_tokens": TOKEN}
    )
    source = tmp_path / "small"
    source.write_bytes(b"small")
    with_token = {"PACKRAT_TOKEN": TOKEN}

    server.wait_answering("/exists/probe", accept=lambda reply: reply.status_code < 500)
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


def test_a_download_that_does_not_match_its_etag_exits_6(hostile_server, tmp_path):
    hostile_server.reply("200 OK", {"ETag": '"' + "0" * 64 + '"', "Content-Length": 5}, b"wrong")
    result = packrat("get", "k", "-o", str(tmp_path / "k"), url=hostile_server.url)
    assert result.returncode == ExitStatus.INTEGRITY, result.stderr
    assert not (tmp_path / "k").exists()


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


def test_ls_and_rm_prefix_page_and_purge_in_batches(packrat_server):
    url = packrat_server.url
    keys = [f"big/{n:04}" for n in range(1100)]  # more than one page and one batch (1000)
    with requests.Session() as session:
        for key in [*keys, "big-other", "small/1"]:
            assert session.put(f"{url}/{key}", data=b"x", timeout=10).status_code == 200

    listed = packrat("ls", "big/", url=url)
    assert listed.returncode == ExitStatus.OK, listed.stderr
    assert listed.stdout.decode().splitlines() == keys
    long = packrat("ls", "-l", "small/", url=url).stdout.decode().split()
    assert long[0] == "1" and long[1].endswith("Z") and long[2] == "small/1"
    assert len(packrat("ls", url=url).stdout.decode().splitlines()) == 1102

    assert packrat("rm", url=url).returncode == ExitStatus.USAGE
    assert packrat("rm", "small/1", "--prefix", "big/", url=url).returncode == ExitStatus.USAGE
    empty = packrat("rm", "--prefix", "", url=url)
    assert empty.returncode == ExitStatus.USAGE and b"every key" in empty.stderr

    purged = packrat("rm", "--prefix", "big/", url=url)
    assert purged.returncode == ExitStatus.OK, purged.stderr
    assert json.loads(purged.stdout) == {"prefix": "big/", "deleted": 1100}
    assert packrat("ls", url=url).stdout.decode().splitlines() == ["big-other", "small/1"]
    again = packrat("rm", "--prefix", "big/", url=url)  # a rerun (after an interruption) ends well
    assert json.loads(again.stdout) == {"prefix": "big/", "deleted": 0}


def test_ls_needs_the_list_right(make_server):
    lister = "l" * 16 + "-list-token"
    server = make_server(
        wait=False, auth={"enabled": "true", "write_tokens": TOKEN, "list_tokens": lister}
    )
    server.wait_ready(token=TOKEN)
    assert packrat("put", "-", "k", url=server.url, stdin=b"x", env={"PACKRAT_TOKEN": TOKEN})
    denied = packrat("ls", url=server.url, env={"PACKRAT_TOKEN": TOKEN})
    assert denied.returncode == ExitStatus.DENIED
    assert denied.stderr.decode().startswith("packrat: forbidden: ")
    assert packrat("ls", url=server.url, env={"PACKRAT_TOKEN": lister}).stdout == b"k\n"
    refused = packrat("rm", "--prefix", "k", url=server.url, env={"PACKRAT_TOKEN": lister})
    assert refused.returncode == ExitStatus.DENIED  # purging needs write too


# -- a hostile server: exit statuses keep their documented meanings ----------


def test_a_hostile_servers_answers_exit_5_in_one_line(hostile_server, tmp_path):
    """What a server sends that the API never does is "the exchange failed" (5):
    never 1 ("no such key"), 7 ("local file problem") or a traceback."""
    present = b"{}"
    hostile_server.reply("200 OK", {"Content-Length": len(present)}, present)
    page = b"<html>stored</html>"
    hostile_server.reply("200 OK", {"Content-Length": len(page)}, page)
    hostile_server.reply_endless(
        "200 OK",
        {"Content-Length": 1100, "Transfer-Encoding": "chunked", "ETag": f'"{"0" * 64}"'},
        b"4000\r\n" + b"x" * 0x4000 + b"\r\n",
    )
    hostile_server.reply("200 OK", {"Content-Length": "\u00b2", "ETag": f'"{"0" * 64}"'}, b"xx")
    source = tmp_path / "f"
    source.write_bytes(b"data")
    url = hostile_server.url
    results = [
        packrat("exists", "k", url=url),
        packrat("put", str(source), "k", url=url),
        packrat("get", "k", url=url),
        packrat("get", "k", url=url),
    ]
    for result in results:
        assert result.returncode == ExitStatus.UNAVAILABLE, result.stderr
        assert result.stderr.startswith(b"packrat: ") and result.stderr.count(b"\n") == 1
        assert result.stdout == b""


def test_a_retry_after_that_is_not_a_delay_is_retried(hostile_server):
    error = b'{"success": false, "error": "too_busy", "message": "busy"}'
    hostile_server.reply("503 Service Unavailable", {"Retry-After": "\u00b2"}, error)
    present = b'{"present": true}'
    hostile_server.reply("200 OK", {"Content-Length": len(present)}, present)
    result = packrat("exists", "k", url=hostile_server.url)
    assert result.returncode == ExitStatus.OK and result.stderr == b"", result.stderr


def test_put_reads_dev_stdin_and_process_substitution(packrat_server):
    """Paths that are pipes cannot seek: they are read once into a temporary file."""
    result = packrat("put", "/dev/stdin", "from/dev-stdin", url=packrat_server.url, stdin=b"one")
    assert result.returncode == ExitStatus.OK, result.stderr
    assert packrat_server.get("from/dev-stdin").content == b"one"
    script = f"{sys.executable} -m packrat put <(printf two) from/substitution"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("PACKRAT_")}
    shell = subprocess.run(
        ["bash", "-c", script],
        capture_output=True,
        timeout=60,
        env={**environ, "PACKRAT_URL": packrat_server.url},
    )
    assert shell.returncode == ExitStatus.OK, shell.stderr
    assert packrat_server.get("from/substitution").content == b"two"


def test_put_reports_the_evictions_and_the_coordinator_logs_them_at_debug(make_server, tmp_path):
    server = make_server(
        cache={"max_size": "64K", "low_water": 1.0, "policy": "lru"}, log={"level": "debug"}
    )
    source = tmp_path / "f"
    source.write_bytes(b"x" * 20_000)
    answers = [packrat("put", str(source), f"k{i}", url=server.url) for i in range(3)]
    assert [json.loads(a.stdout)["evicted"] for a in answers[:2]] == [0, 0]
    assert json.loads(answers[2].stdout)["evicted"] == 1
    logged = [line for line in server.log().splitlines() if "evicted 'k0'" in line]
    assert len(logged) == 1 and " DEBUG " in logged[0], server.log()[-2000:]


def test_a_server_that_cannot_be_used_is_one_line_a_person_can_act_on(free_tcp_port, tmp_path):
    closed = f"http://127.0.0.1:{free_tcp_port}"
    nothing = packrat("get", "x", "-o", str(tmp_path / "y"), url=closed)
    assert nothing.returncode == ExitStatus.UNAVAILABLE
    assert nothing.stderr.decode() == (
        f"packrat: cannot connect to 127.0.0.1:{free_tcp_port}: connection refused"
        " (is the server running?)\n"
    )
    no_scheme = packrat("stat", "--url", "127.0.0.1:5051")
    assert no_scheme.returncode == ExitStatus.USAGE
    assert no_scheme.stderr.decode() == (
        "packrat: --url: not an http:// or https:// URL: '127.0.0.1:5051'"
        " (try http://127.0.0.1:5051)\n"
    )
    other = packrat("stat", url="ftp://127.0.0.1:5051")
    assert other.returncode == ExitStatus.USAGE
    assert other.stderr.startswith(b"packrat: $PACKRAT_URL: not an http:// or https:// URL")
    bad_port = packrat("stat", "--url", "http://127.0.0.1:99999")
    assert bad_port.returncode == ExitStatus.USAGE and b"port" in bad_port.stderr
    assert not (tmp_path / "y").exists()


def test_ordinary_file_names_are_keys_and_a_refusal_says_why(packrat_server, tmp_path):
    """As in S3: spaces and accents are fine; what is refused is named, with its place."""
    report = tmp_path / "Q1 report.pdf"
    report.write_bytes(b"%PDF")
    put = packrat("put", str(report), url=packrat_server.url)
    assert put.returncode == ExitStatus.OK, put.stderr
    assert json.loads(put.stdout)["key"] == "Q1 report.pdf"
    accents = packrat("put", str(report), "rapports/été/q1", url=packrat_server.url)
    assert accents.returncode == ExitStatus.OK, accents.stderr
    got = packrat("get", "rapports/été/q1", url=packrat_server.url)
    assert got.returncode == ExitStatus.OK and got.stdout == b"%PDF"
    refused = packrat("put", str(report), "rapports\\q1", url=packrat_server.url)
    assert refused.returncode == ExitStatus.REFUSED
    assert refused.stderr.decode() == (
        "packrat: invalid_key: invalid key 'rapports\\\\q1': U+005C at character 9"
        " is a backslash (use '/' between segments)\n"
    )


def test_a_hostile_servers_listing_or_purge_never_loops(hostile_server):
    """A server whose pages go back, or whose purge says "more" while removing nothing,
    would keep ls and rm --prefix running for ever: both stop with status 5."""

    def answer(payload: dict) -> None:
        body = json.dumps(payload).encode()
        hostile_server.reply("200 OK", {"Content-Length": len(body)}, body)

    entry = {"key": "b", "size": 1, "stored_at": 1.0}
    answer({"prefix": "", "keys": [entry], "collections": [], "next": "b"})
    answer({"prefix": "", "keys": [entry], "collections": [], "next": "a"})
    answer({"success": True, "prefix": "x", "deleted": 0, "keys": [], "more": True})
    listed = packrat("ls", url=hostile_server.url)
    assert listed.returncode == ExitStatus.UNAVAILABLE and b"goes back" in listed.stderr
    purged = packrat("rm", "--prefix", "x", url=hostile_server.url)
    assert purged.returncode == ExitStatus.UNAVAILABLE and b"removes nothing" in purged.stderr
