"""The process group: titles, supervision, clean shutdown and restart."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time

import psutil

from tests.support.waiting import wait_answering, wait_until


def test_titles_name_each_role(packrat_server):
    assert len(packrat_server.children("coordinator")) == 1
    assert len(packrat_server.children("frontend")) == 2
    for child in packrat_server.children():
        title = " ".join(child.cmdline())
        assert "coordinator" in title or "frontend" in title, title


def test_sigterm_stops_everything_within_10s(packrat_server):
    children = packrat_server.children()
    assert len(children) == 3
    started = time.monotonic()
    status = packrat_server.stop(timeout=10)
    assert time.monotonic() - started < 10
    assert status == 0
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]


def test_sigint_stops_everything(packrat_server):
    children = packrat_server.children()
    packrat_server.process.send_signal(signal.SIGINT)
    assert packrat_server.process.wait(10) == 0
    _gone, alive = psutil.wait_procs(children, timeout=5)
    assert alive == []


def test_children_die_with_a_killed_supervisor(packrat_server):
    children = packrat_server.children()
    packrat_server.process.kill()
    packrat_server.process.wait(5)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []


def test_a_killed_front_end_is_replaced(packrat_server, wait_for):
    packrat_server.upload("survivor", b"still here")
    victim = packrat_server.children("frontend")[0]
    victim.kill()
    victim.wait(5)

    def replaced():
        pids = {p.pid for p in packrat_server.children("frontend")}
        return len(pids) == 2 and victim.pid not in pids

    wait_for(replaced)
    for _ in range(10):  # whichever front end answers, the object is there
        assert packrat_server.get("survivor").content == b"still here"
    assert "frontend 0 exited" in packrat_server.log() or "frontend 1 exited" in (
        packrat_server.log()
    )


def test_restart_keeps_objects_filenames_and_recency(make_server):
    options = {"cache": {"max_size": "450K", "low_water": 0.95, "policy": "lru"}}
    server = make_server(**options)
    blob = 100 * 1024
    for n in range(4):
        reply = server.upload(f"k{n}", bytes([n]) * blob, filename=f"file-{n}.dat")
        assert reply.status_code == 200, reply.text
    before = server.stats()
    server.get("k0")  # k1 is now the least recently used
    server.stats_grown(before, hits=1)  # the read reached the coordinator
    assert server.stop() == 0

    again = make_server(port=server.port, **options)
    before = again.stats()
    for n in range(4):
        reply = again.get(f"k{n}")
        assert reply.content == bytes([n]) * blob
        assert reply.headers["Content-Disposition"] == f'attachment; filename="file-{n}.dat"'
    # Through either front end: each batch of reads must arrive before the next reads.
    again.stats_grown(before, hits=4)
    # Recency survived the restart: the next eviction takes the least recently used.
    again.get("k0")
    again.get("k2")
    again.get("k3")
    again.stats_grown(before, hits=7)
    again.upload("k4", b"4" * blob)
    assert [again.exists(f"k{n}") for n in range(5)] == [True, False, True, True, True]


def test_coordinator_and_front_end_run_alone(make_server):
    coordinator = make_server("coordinator")
    frontend = make_server("frontend")
    assert "coordinator" in " ".join(coordinator.psutil.cmdline())
    assert "frontend" in " ".join(frontend.psutil.cmdline())
    assert frontend.upload("solo", b"works").status_code == 200
    assert frontend.get("solo").content == b"works"
    frontend.stop()
    coordinator.stop()


def test_serve_uses_packrat_config_environment(config_for, free_tcp_port):
    port = free_tcp_port
    config = config_for(port)
    env = {**os.environ, "PACKRAT_CONFIG": str(config)}
    process = subprocess.Popen([sys.executable, "-m", "packrat", "serve"], env=env)
    try:
        wait_answering(f"http://127.0.0.1:{port}/", process=process)
    finally:
        process.terminate()
        assert process.wait(10) == 0


def closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closed ``sock``, waiting for it (bounded by the socket's timeout)."""
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_sigterm_lets_an_upload_under_way_finish(make_server):
    server = make_server(frontend={"processes": 1})
    boundary = "drain"
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="d"\r\n\r\n'
    tail = f"\r\n--{boundary}--\r\n"
    data = b"d" * 200_000
    body = head.encode() + data + tail.encode()
    idle = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    idle.request("GET", "/healthz")
    assert idle.getresponse().read()  # the connection is kept alive, and now idle
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(
            f"POST /draining HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
            + body[:100_000]
        )
        wait_until(server.staging_files)  # the front end is receiving it
        server.process.send_signal(signal.SIGTERM)  # a rolling restart begins
        # The front end stops: it closes idle connections at once, the others after their answer.
        assert closed_by_server(idle.sock)
        sock.sendall(body[100_000:])  # the client finishes within the grace period
        answer = sock.recv(65536)
    idle.close()
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert server.process.wait(10) == 0
    again = make_server(port=server.port)
    assert again.get("draining").content == data
