"""Faults that must be survived, each one really done: kill -9, disconnects, full disks."""

from __future__ import annotations

import concurrent.futures
import hashlib
import os
import random
import resource
import socket
import threading
import time

import psutil
import requests

MiB = 1 << 20


def _start_upload(server, key: str, declared: int, sent: bytes) -> socket.socket:
    """Open an upload of ``declared`` file bytes and send only ``sent`` of them."""
    boundary = "faultb"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n\r\n'
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.sendall(
        f"POST /{key} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(head) + declared + len(tail)}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n\r\n".encode()
        + head
        + sent
    )
    return sock


def test_kill_9_coordinator_under_load(make_server, wait_for):
    server = make_server(coordinator={"timeout": 2})
    committed = {f"pre/{n}": os.urandom(20_000 + n) for n in range(20)}
    for key, data in committed.items():
        assert server.upload(key, data).status_code == 200

    stop = threading.Event()
    read_errors: list[str] = []

    def reader() -> None:
        session = requests.Session()
        keys = list(committed)
        n = 0
        while not stop.is_set():
            key = keys[n % len(keys)]
            n += 1
            reply = session.get(f"{server.url}/{key}", timeout=10)
            if reply.status_code != 200 or reply.content != committed[key]:
                read_errors.append(f"GET {key}: {reply.status_code}")
            if not session.get(f"{server.url}/exists/{key}", timeout=10).json()["present"]:
                read_errors.append(f"exists {key}: false")

    readers = [threading.Thread(target=reader) for _ in range(3)]
    for thread in readers:
        thread.start()
    try:
        (coordinator,) = server.children("coordinator")
        coordinator.kill()
        coordinator.wait(5)
        # While it is down (or loading), writes get 503 + Retry-After and the JSON shape.
        reply = server.upload("during/outage", b"x")
        if reply.status_code != 200:  # the supervisor may already have restarted it
            assert reply.status_code == 503
            assert reply.headers["Retry-After"].isdigit()
            assert reply.json()["success"] is False
            assert reply.json()["error"] == "coordinator_unavailable"
        # The supervisor restarts it; the same front ends reconnect by themselves.
        frontends = {p.pid for p in server.children("frontend")}
        wait_for(lambda: server.upload("after/restart", b"back").status_code == 200)
        assert {p.pid for p in server.children("frontend")} == frontends
        assert len(server.children("coordinator")) == 1
    finally:
        stop.set()
        for thread in readers:
            thread.join(30)
    assert read_errors == []
    for key, data in committed.items():
        assert server.get(key).content == data
    assert server.get("after/restart").content == b"back"


def test_writes_get_503_with_retry_after_while_coordinator_is_down(make_server, wait_for):
    coordinator = make_server("coordinator")
    frontend = make_server("frontend", coordinator={"timeout": 2})
    assert frontend.upload("kept", b"kept").status_code == 200
    coordinator.process.kill()
    coordinator.process.wait(5)
    unreachable = "the cache coordinator is not reachable; retry shortly"
    # The front end knows once ZeroMQ has seen the socket close (a request sent before
    # that waits for its deadline instead: "did not answer in time").
    frontend.wait_answering(
        "/readyz", accept=lambda reply: reply.status_code == 503 and unreachable in reply.text
    )
    reply = frontend.upload("refused", b"nope")
    assert reply.status_code == 503
    assert reply.headers["Retry-After"].isdigit()
    assert reply.json() == {
        "success": False,
        "error": "coordinator_unavailable",
        "message": unreachable,
    }
    assert frontend.get("kept").content == b"kept"
    assert frontend.exists("refused") is False
    assert frontend.staging_files() == []
    # A new coordinator on the same endpoint: the front end reconnects on its own.
    make_server("coordinator")
    wait_for(lambda: frontend.upload("refused", b"now").status_code == 200)
    assert frontend.get("refused").content == b"now"


def test_kill_9_front_end_during_upload(make_server, wait_for):
    server = make_server(frontend={"processes": 1})
    (frontend,) = server.children("frontend")
    sock = _start_upload(server, "half", declared=4 * MiB, sent=b"h" * MiB)
    wait_for(lambda: server.staging_files())
    frontend.kill()
    frontend.wait(5)
    sock.close()
    wait_for(lambda: not server.staging_files())
    wait_for(lambda: [p for p in server.children("frontend") if p.pid != frontend.pid])
    server.wait_ready()
    assert server.exists("half") is False
    assert server.get("half").status_code == 404


def test_client_disconnect_mid_upload_removes_staging_at_once(packrat_server, wait_for):
    sock = _start_upload(packrat_server, "gone", declared=8 * MiB, sent=b"g" * MiB)
    wait_for(lambda: packrat_server.staging_files())
    sock.close()
    wait_for(lambda: not packrat_server.staging_files(), timeout=2)
    assert packrat_server.exists("gone") is False


def _assert_disk_full_handled(server, staging) -> None:
    reply = server.upload("toobig", os.urandom(6 * MiB))
    assert reply.status_code == 507, reply.text
    assert reply.json()["error"] == "insufficient_storage"
    assert reply.json()["success"] is False
    assert list(staging.iterdir()) == []
    assert server.exists("toobig") is False
    # The server keeps serving reads and writes that fit.
    assert server.upload("small", b"fits").status_code == 200
    assert server.get("small").content == b"fits"


def test_disk_full_on_a_real_small_file_system(mount_tmpfs, make_server):
    # mount_tmpfs first: fixtures tear down in reverse, so the server stops before the unmount.
    tmpfs = mount_tmpfs("size=4m")
    server = make_server(cache={"root": tmpfs, "max_size": "64M"})
    _assert_disk_full_handled(server, tmpfs / "staging")


def test_no_inode_left_for_the_staging_file_is_507(mount_tmpfs, make_server):
    # Room for the layout's 260 directories and a few files, not for more.
    tmpfs = mount_tmpfs("size=64m,nr_inodes=280")
    server = make_server(cache={"root": tmpfs, "max_size": "32M"})
    replies = [server.upload(f"k{n}", b"x") for n in range(40)]
    assert [r.status_code for r in replies[:5]] == [200] * 5
    refused = [r for r in replies if r.status_code != 200]
    assert refused, "the file system never ran out of inodes"
    for reply in refused:
        assert reply.status_code == 507, reply.text
        assert reply.json()["error"] == "insufficient_storage"
    assert list((tmpfs / "staging").iterdir()) == []
    assert server.get("k0").content == b"x"  # reads keep working


def test_write_failure_from_a_file_size_limit(make_server):
    # RLIMIT_FSIZE makes writes past 2 MiB fail with EFBIG for real.
    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (2 * MiB, 2 * MiB))

    server = make_server(preexec_fn=limit_file_size)
    _assert_disk_full_handled(server, server.cache / "staging")


def test_concurrent_writers_of_one_key_with_readers(packrat_server):
    versions = [os.urandom(150_000 + 7919 * n) for n in range(6)]
    digests = {hashlib.sha256(v).hexdigest() for v in versions}
    url = f"{packrat_server.url}/contended"
    stop = threading.Event()
    bad: list[str] = []
    reads = 0

    def reader() -> None:
        nonlocal reads
        session = requests.Session()
        while not stop.is_set():
            reply = session.get(url, timeout=30)
            if reply.status_code == 404:
                continue
            if hashlib.sha256(reply.content).hexdigest() not in digests:
                bad.append(f"{reply.status_code} with {len(reply.content)} unknown bytes")
            reads += 1

    def writer(n: int) -> None:
        for _ in range(5):
            reply = packrat_server.upload("contended", versions[n])
            assert reply.status_code == 200, reply.text

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for thread in threads:
        thread.start()
    with concurrent.futures.ThreadPoolExecutor(len(versions)) as pool:
        list(pool.map(writer, range(len(versions))))
    stop.set()
    for thread in threads:
        thread.join(30)
    assert bad == []
    assert reads > 10
    final = packrat_server.get("contended").content
    assert final in versions
    # The last commit wins: one more write, then every reader sees it.
    assert packrat_server.upload("contended", versions[0]).status_code == 200
    assert packrat_server.get("contended").content == versions[0]
    assert packrat_server.staging_files() == []


def test_crash_between_rename_and_index_update_is_repaired(make_server):
    server = make_server()
    assert server.upload("before", b"snapshotted").status_code == 200
    server.stop()
    # What a crash right after os.replace leaves: an object file the index never saw.
    from packrat.store import Layout, ObjectMeta
    from packrat.store.format import encode_trailer

    layout = Layout(server.cache)
    data = b"renamed but never indexed"
    meta = ObjectMeta(
        "orphan/key",
        "orphan.txt",
        "text/plain",
        len(data),
        hashlib.sha256(data).hexdigest(),
        time.time(),
    )
    path = layout.object_path("orphan/key")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data + encode_trailer(meta))
    (layout.staging / "12345-deadbeef.part").write_bytes(b"leftover")

    again = make_server(port=server.port)
    assert again.get("orphan/key").content == data
    assert again.get("before").content == b"snapshotted"
    assert again.staging_files() == []
    page = requests.get(again.url + "/", timeout=10).text
    assert "<th>Objects</th><td>2</td>" in page
    assert "1 adopted" in again.log()


def test_kill_9_everything_keeps_committed_objects(make_server):
    server = make_server(coordinator={"snapshot_interval": 3600})
    data = {f"k{n}": os.urandom(1000 + n) for n in range(30)}
    for key, blob in data.items():
        assert server.upload(key, blob).status_code == 200
    for proc in [server.psutil, *server.children()]:
        proc.kill()
    psutil.wait_procs([server.psutil, *server.children()], timeout=5)
    server.process.wait()
    again = make_server(port=server.port)
    for key, blob in data.items():
        assert again.get(key).content == blob


def test_a_503_commit_was_not_stored_under_a_coordinator_stopped_and_resumed(make_server):
    """The coordinator is stopped (SIGSTOP) and resumed again and again while uploads
    commit, so replies cross their deadline: an upload answered with a 503 that says
    nothing was stored (``coordinator_unavailable``, ``stale``, ``staging_missing``)
    must not be stored; ``outcome_unknown`` may go either way; a 200 is stored."""
    server = make_server(frontend={"processes": 1}, coordinator={"timeout": 1})
    coordinator = server.children("coordinator")[0]
    answers: dict[str, tuple[int, str]] = {}
    stop = threading.Event()

    pauses = random.Random(19)

    def toggle() -> None:
        while not stop.is_set():
            coordinator.suspend()
            # Commits sent just before wait until about their deadline, or past it.
            time.sleep(pauses.uniform(0.95, 1.05))
            coordinator.resume()
            time.sleep(0.03)  # they run then, and their replies come late
        coordinator.resume()

    def upload(n: int) -> None:
        key = f"stopped/{n}"
        reply = requests.put(f"{server.url}/{key}", data=b"x%d" % n, timeout=30)
        error = "" if reply.status_code == 200 else reply.json()["error"]
        answers[key] = (reply.status_code, error)

    toggler = threading.Thread(target=toggle)
    toggler.start()
    try:
        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            list(pool.map(upload, range(80)))
    finally:
        stop.set()
        toggler.join()
    server.wait_ready()
    stored = {key for key in answers if server.exists(key)}
    nothing_stored = {"coordinator_unavailable", "stale", "staging_missing"}
    for key, (status, error) in answers.items():
        assert status in (200, 503), (key, status, error)
        if status == 200:
            assert key in stored, key
        elif error in nothing_stored:
            assert key not in stored, (key, error)
        else:
            assert error == "outcome_unknown", (key, error)
    assert any(status == 503 for status, _ in answers.values())
    assert server.staging_files() == []
