"""The cache root under hostile conditions: its disk bound, its owner, what is planted in it.

Each test does the thing for real against running processes: many tiny
uploads measured with ``du``, commits abandoned mid-way, a second instance
on the same root, symlinks, FIFOs and misnamed files under ``objects/``,
and strangers talking to the coordinator's socket.
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import socket
import stat
import subprocess
import time

import msgpack
import pytest
import requests
import zmq

from packrat.coordinator import protocol
from packrat.coordinator.connection import CoordinatorClient
from packrat.core.exits import ExitStatus
from packrat.store.layout import FIXED_OVERHEAD, Layout
from packrat.store.layout import key_digest as digest_of
from tests.support.cli import packrat
from tests.support.waiting import wait_until

MiB = 1 << 20


def put(url: str, key: str, data: bytes, session: requests.Session | None = None) -> int:
    http = session or requests
    return http.put(f"{url}/{key}", data=data, timeout=30).status_code


def test_du_stays_within_max_size_plus_the_fixed_overhead(make_server):
    """3,000 one-byte uploads into a 256 KiB cache: blocks and directories are counted."""
    server = make_server(cache={"max_size": "256K"})

    def upload_range(start: int) -> None:
        with requests.Session() as session:
            for n in range(start, start + 750):
                assert put(server.url, f"tiny/{n}", b"x", session) == 200

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(upload_range, range(0, 3000, 750)))
    used = server.du()
    assert used <= 256 * 1024 + FIXED_OVERHEAD, used
    stats = server.coordinator_stats()
    assert stats["bytes"] == server.charged_on_disk() <= stats["max_size"]
    assert stats["objects"] >= 40  # about 58 one-block objects fit


def test_overwrites_abandoned_right_after_their_body_leak_nothing(make_server):
    """The client disconnects as its overwrite commits and evicts (its key's old
    version included): nothing may stay on disk outside the index."""
    server = make_server(cache={"max_size": "1M", "low_water": 1.0})
    for n in range(12):
        assert put(server.url, f"fill/{n}", os.urandom(60_000)) == 200
    for trial in range(15):
        key = f"fill/{trial % 12}"
        body = os.urandom(200_000 + trial)
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(
                f"PUT /{key} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            sock.shutdown(socket.SHUT_RDWR)
    # Every upload answered (committed or its staging file discarded): 12 + 15 access lines.
    wait_until(lambda: server.log().count('PUT "/fill/') == 27, detail=server.log)
    stats = server.coordinator_stats()
    assert stats["bytes"] == server.charged_on_disk() <= stats["max_size"]
    assert server.du() <= MiB + FIXED_OVERHEAD
    assert server.staging_files() == []


def test_a_second_instance_on_the_same_root_exits_in_use_and_harms_nothing(make_server, wait_for):
    first = make_server()
    sock = socket.create_connection(("127.0.0.1", first.port), timeout=10)
    body = os.urandom(2 * MiB)
    sock.sendall(
        f"PUT /in-flight HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body[:MiB]
    )
    wait_for(lambda: first.staging_files())
    second = packrat("serve", "--config", str(first.config), text=True)
    assert second.returncode == ExitStatus.IN_USE
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "is in use by pid" in lines[0], second.stderr
    sock.sendall(body[MiB:])  # the first instance's upload was left alone
    answer = sock.recv(65536)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert first.get("in-flight").content == body


def test_a_coordinator_alone_on_a_held_root_exits_in_use(make_server):
    first = make_server()
    alone = packrat("coordinator", "--config", str(first.config), text=True)
    assert alone.returncode == ExitStatus.IN_USE
    assert "in use by pid" in alone.stderr and "Traceback" not in alone.stderr


def test_a_port_held_by_another_program_exits_with_one_line(make_server, tmp_path, free_tcp_port):
    holder = socket.socket()
    holder.bind(("127.0.0.1", free_tcp_port))
    holder.listen()
    try:
        server = make_server(port=free_tcp_port, wait=False)
        status = server.process.wait(30)
    finally:
        holder.close()
    assert status == ExitStatus.CANNOT_LISTEN
    log = server.log()
    assert "cannot listen on 127.0.0.1:" in log and "Traceback" not in log
    assert "started coordinator" not in log  # refused before any child ran


def test_an_unresolvable_host_exits_with_one_line(make_server):
    server = make_server(server={"host": "no-such-host.invalid"}, wait=False)
    assert server.process.wait(30) == ExitStatus.CANNOT_LISTEN
    log = server.log()
    assert "does not resolve" in log and "Traceback" not in log


def test_a_symlinked_fanout_directory_cannot_send_uploads_outside(make_server, tmp_path):
    server = make_server()
    server.stop()
    outside = tmp_path / "outside"
    outside.mkdir()
    fanout = server.cache / "objects" / digest_of("escape")[:2]
    fanout.rmdir()
    fanout.symlink_to(outside)
    again = make_server(port=server.port)
    assert put(again.url, "escape", b"inside") == 200
    assert list(outside.iterdir()) == []
    assert fanout.is_dir() and not fanout.is_symlink()
    assert again.get("escape").content == b"inside"


def test_a_fifo_at_an_object_path_is_a_miss_and_is_removed(make_server, wait_for):
    server = make_server()
    assert put(server.url, "piped", b"data") == 200
    path = server.cache / "objects" / digest_of("piped")[:2] / digest_of("piped")
    path.unlink()
    os.mkfifo(path)
    started = time.monotonic()
    reply = server.get("piped")
    assert reply.status_code == 404 and time.monotonic() - started < 5
    assert server.exists("piped") is False
    wait_for(lambda: not path.exists())
    assert put(server.url, "piped", b"again") == 200
    assert server.get("piped").content == b"again"


def test_a_misnamed_object_is_dropped_from_disk_and_index(make_server, wait_for):
    server = make_server()
    assert put(server.url, "a", b"A" * 5000) == 200
    assert put(server.url, "b", b"B" * 9000) == 200
    path_a = server.cache / "objects" / digest_of("a")[:2] / digest_of("a")
    path_b = server.cache / "objects" / digest_of("b")[:2] / digest_of("b")
    shutil.copy(path_a, path_b)  # key a's file at key b's path
    assert server.get("b").status_code == 404
    wait_for(lambda: not path_b.exists())
    stats = server.coordinator_stats()
    assert stats["objects"] == 1
    assert stats["bytes"] == server.charged_on_disk()
    assert server.get("a").content == b"A" * 5000


def test_fsck_repair_removes_a_misnamed_object_for_real(make_server):
    server = make_server()
    assert put(server.url, "a", b"A" * 5000) == 200
    assert put(server.url, "b", b"B" * 9000) == 200
    path_b = server.cache / "objects" / digest_of("b")[:2] / digest_of("b")
    shutil.copy(server.cache / "objects" / digest_of("a")[:2] / digest_of("a"), path_b)

    def fsck(*args: str) -> subprocess.CompletedProcess[str]:
        return packrat("fsck", "--config", str(server.config), *args, text=True)

    assert fsck().returncode == ExitStatus.CORRUPT_LEFT
    repaired = fsck("--repair")
    assert repaired.returncode == ExitStatus.OK, repaired.stdout + repaired.stderr
    assert "-> removed" in repaired.stdout
    assert not path_b.exists()
    stats = server.coordinator_stats()  # through the coordinator: its index stays exact
    assert stats["objects"] == 1 and stats["bytes"] == server.charged_on_disk()
    assert fsck().returncode == ExitStatus.OK


def test_fsck_repair_offline_removes_and_exits_0(make_server):
    server = make_server()
    assert put(server.url, "c", b"C" * 100) == 200
    server.stop()
    path = server.cache / "objects" / digest_of("c")[:2] / digest_of("c")
    path.write_bytes(b"garbage, not an object")
    done = packrat("fsck", "--repair", "--config", str(server.config), text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not path.exists()


def test_the_ipc_socket_is_private_and_strangers_cannot_crash_it(make_server):
    server = make_server()
    sock_path = server.root / "run" / "coordinator.sock"
    assert stat.S_IMODE(sock_path.stat().st_mode) == 0o600
    context = zmq.Context()
    dealer = context.socket(zmq.DEALER)
    dealer.linger = 0
    dealer.rcvtimeo = 5000
    dealer.connect(f"ipc://{sock_path}")
    try:
        bad = [
            b"\xc1garbage",
            msgpack.packb({"v": protocol.VERSION, "op": "delete", "id": 1, "key": 7}),
            msgpack.packb({"v": protocol.VERSION, "op": "touch", "keys": "x", "misses": 0}),
            msgpack.packb({"v": protocol.VERSION, "op": "stats", "id": 2, "deadline": "now"}),
        ]
        dealer.send_multipart([b"three", b"frames", b"at once"])  # skipped whole
        for frame in bad:
            dealer.send(frame)
        replies = [protocol.decode_reply(dealer.recv()) for _ in range(2)]
        assert {r.id for r in replies} == {1, 2}
        assert all(r.error == "invalid_message" for r in replies)
    finally:
        dealer.close()
        context.term()
    assert server.coordinator_stats()["objects"] == 0  # still answering
    assert put(server.url, "after", b"fine") == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "127.0.0.1"])
def test_a_tcp_endpoint_without_curve_keys_is_refused(make_server, free_tcp_port, host):
    """Even on loopback: every local user could reach it and delete objects behind HTTP auth."""
    refused = make_server(coordinator={"endpoint": f"tcp://{host}:{free_tcp_port}"}, wait=False)
    assert refused.process.wait(30) == ExitStatus.CONFIG
    assert "curve_keys" in refused.log() and "every local user" in refused.log()


def test_a_tcp_endpoint_with_curve_keys_answers_only_key_holders(
    make_server, free_tcp_port, tmp_path
):
    keys = tmp_path / "curve"
    assert packrat("keygen", str(keys), text=True).returncode == 0
    assert stat.S_IMODE((keys / "client.key_secret").stat().st_mode) == 0o600
    server = make_server(
        coordinator={"endpoint": f"tcp://0.0.0.0:{free_tcp_port}", "curve_keys": keys}
    )
    assert put(server.url, "curved", b"over curve") == 200
    # Without the client key, the coordinator does not answer.
    with CoordinatorClient(f"tcp://127.0.0.1:{free_tcp_port}", timeout=1) as stranger:
        try:
            stranger.stats()
        except Exception as e:
            assert "coordinator" in str(e)
        else:
            raise AssertionError("a client without the keys was answered")
    with CoordinatorClient(f"tcp://127.0.0.1:{free_tcp_port}", 5, keys) as member:
        assert member.stats()["objects"] == 1


def test_a_removed_fanout_directory_made_again_is_read_by_every_front_end(make_server):
    """Someone removes ``objects/ab/``; the coordinator makes it again for the next upload
    there, and the front ends, which opened the old one at start-up, read the new one."""
    coordinator = make_server("coordinator")
    front_ends = [make_server("frontend"), make_server("frontend")]
    key = next(f"fanout/{n}" for n in range(100_000) if digest_of(f"fanout/{n}")[:2] == "ab")
    fanout = coordinator.cache / "objects" / "ab"
    shutil.rmtree(fanout)
    assert put(front_ends[0].url, key, b"in a new directory") == 200
    assert fanout.is_dir()
    for front_end in front_ends:
        reply = front_end.get(key)
        assert reply.status_code == 200, (front_end.url, reply.text)
        assert reply.content == b"in a new directory"
        assert front_end.exists(key) is True


def test_a_replaced_fanout_directory_is_reopened_under_the_same_descriptor(tmp_path):
    """Other threads may hold the descriptor: its number stays valid (``dup2``), and only a
    real directory is taken, never a symlink put where the removed one was."""
    layout = Layout(tmp_path / "cache")
    layout.create()
    layout.open_dirs()
    try:
        digest = digest_of("k")
        held = layout.fanout_fd(digest)
        fanout = layout.objects / digest[:2]
        fanout.rmdir()
        assert layout.fanout_replaced(digest) is False  # nothing there yet
        outside = tmp_path / "outside"
        outside.mkdir()
        fanout.symlink_to(outside)
        assert layout.fanout_replaced(digest) is False
        fanout.unlink()
        fanout.mkdir()
        (fanout / "marker").touch()
        assert layout.fanout_replaced(digest) is True
        assert layout.fanout_fd(digest) == held and os.listdir(held) == ["marker"]
        assert layout.fanout_replaced(digest) is False  # the one there now
    finally:
        layout.close_dirs()
