"""The front-end application in-process (pytest-tornado) against a real coordinator.

The coordinator runs in a thread with a real ZeroMQ socket and real files;
the HTTP server is Packrat's, in the test's own event loop; its client is
Tornado's, whose small writes split bodies and boundaries anywhere.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
import threading

import pytest
import zmq
from tornado.httpclient import HTTPClientError

from packrat.coordinator.connection import AsyncCoordinatorClient
from packrat.coordinator.server import CoordinatorServer
from packrat.core.errors import CoordinatorUnavailable
from packrat.core.settings import Settings
from packrat.frontend.app import make_app, make_dependencies, make_server
from packrat.store.accounting import charge
from tests.support.waiting import wait_until


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        cache_root=tmp_path / "cache",
        cache_max_size=1 << 20,
        coordinator_endpoint=f"ipc://{tmp_path}/coordinator.sock",
        coordinator_timeout=5,
    )


@pytest.fixture
def coordinator(settings, tmp_path):
    server = CoordinatorServer(settings)
    thread = threading.Thread(target=server.run, kwargs={"handle_signals": False})
    thread.start()
    wait_until((tmp_path / "coordinator.sock").exists, 10, 0.01, what="the coordinator's socket")
    yield server.coordinator
    server.stopping = True
    thread.join(10)


@pytest.fixture
def client(settings, coordinator, io_loop):
    coordinator_client = AsyncCoordinatorClient(settings.coordinator_endpoint, 5, 0.01)
    yield coordinator_client
    io_loop.run_sync(coordinator_client.close)


@pytest.fixture
def app(settings, client):
    frontend = make_dependencies(settings, client)
    yield make_app(frontend)
    frontend.layout.close_dirs()


@pytest.fixture
def http_server(request, io_loop, _unused_port, app, settings):
    """Packrat's server on pytest-tornado's port, in its loop."""
    server = make_server(app, settings)

    async def start() -> None:
        server.add_sockets([_unused_port[0]])

    io_loop.run_sync(start)
    yield server
    server.stop()
    io_loop.run_sync(lambda: server.drain(0))


def multipart(data: bytes, filename: str = "tiny.txt") -> tuple[bytes, dict[str, str]]:
    body = (
        b'--bnd\r\nContent-Disposition: form-data; name="file"; filename="'
        + filename.encode()
        + b'"\r\nContent-Type: text/plain\r\n\r\n'
        + data
        + b"\r\n--bnd--\r\n"
    )
    return body, {"Content-Type": "multipart/form-data; boundary=bnd"}


@pytest.mark.gen_test
async def test_upload_then_download_in_small_chunks(http_client, base_url, client):
    client.start()
    data = b"streamed seven bytes at a time, boundary split anywhere\r\n--bn" * 20
    body, headers = multipart(data)
    reply = await http_client.fetch(
        f"{base_url}/in/process", method="POST", body=body, headers=headers
    )
    assert reply.code == 200
    assert b'"success": true' in reply.body
    assert hashlib.sha256(data).hexdigest().encode() in reply.body
    got = await http_client.fetch(f"{base_url}/in/process")
    assert got.body == data
    assert got.headers["Content-Disposition"] == 'attachment; filename="tiny.txt"'


@pytest.mark.gen_test
async def test_missing_object_and_bad_key(http_client, base_url, client):
    client.start()
    with pytest.raises(HTTPClientError) as missing:
        await http_client.fetch(f"{base_url}/absent")
    assert missing.value.code == 404
    assert b'"error": "not_found"' in missing.value.response.body
    with pytest.raises(HTTPClientError) as bad:
        await http_client.fetch(f"{base_url}/a%2F..%2Fb")
    assert bad.value.code == 400
    assert b'"error": "invalid_key"' in bad.value.response.body


@pytest.mark.gen_test
async def test_commit_reaches_the_coordinator_index(http_client, base_url, client, coordinator):
    client.start()
    body, headers = multipart(b"x" * 1000)
    await http_client.fetch(f"{base_url}/indexed", method="POST", body=body, headers=headers)
    assert "indexed" in coordinator.index
    on_disk = coordinator.layout.object_path("indexed").stat()
    assert coordinator.index.used == charge(on_disk, "indexed")


@pytest.mark.gen_test
async def test_client_disconnect_mid_upload_ends_the_request(
    http_server, http_port, client, settings
):
    client.start()
    baseline = len(asyncio.all_tasks())
    _, writer = await asyncio.open_connection("127.0.0.1", http_port)
    body, headers = multipart(b"x" * 10_000)
    writer.write(
        b"POST /cut HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Type: %s\r\n\r\n"
        % (len(body), headers["Content-Type"].encode())
        + body[:5_000]
    )
    await writer.drain()
    await asyncio.sleep(0.2)
    assert http_server.in_flight == 1
    writer.close()
    for _ in range(100):  # the request ends, nothing is left waiting
        if http_server.in_flight == 0 and len(asyncio.all_tasks()) <= baseline:
            break
        await asyncio.sleep(0.02)
    assert http_server.in_flight == 0
    assert len(asyncio.all_tasks()) <= baseline
    assert list((settings.cache_root / "staging").iterdir()) == []


@pytest.mark.gen_test
async def test_metrics_of_one_process_without_a_shared_directory(http_client, base_url, client):
    """Not under ``packrat frontend``: the process's own counters, and the coordinator's."""
    client.start()
    body, headers = multipart(b"x" * 1000)
    await http_client.fetch(f"{base_url}/counted", method="POST", body=body, headers=headers)
    await http_client.fetch(f"{base_url}/counted")
    reply = await http_client.fetch(f"{base_url}/metrics")
    text = reply.body.decode()
    assert 'packrat_http_requests_total{method="POST",route="/{key}",status="200"} 1.0' in text
    assert "packrat_cache_hits_total 1.0" in text
    assert "packrat_cache_objects 1.0" in text and "packrat_coordinator_up 1.0" in text


@pytest.mark.gen_test(timeout=30)
async def test_every_reply_is_read_with_many_requests_in_flight(http_client, base_url, client):
    """Uploads, deletes and figures at once: sends made while replies are on their way
    (a send may take in their wake-up) lose none of them."""
    client.start()

    async def upload(n: int) -> None:
        reply = await http_client.fetch(f"{base_url}/many/{n}", method="PUT", body=b"x" * n)
        assert b'"success": true' in reply.body

    async def figures() -> None:
        assert "objects" in await client.stats()

    await asyncio.gather(*(upload(n) for n in range(1, 41)), *(figures() for _ in range(40)))
    await asyncio.gather(*(client.delete(f"many/{n}") for n in range(1, 41)))
    assert (await client.stats())["objects"] == 0


@pytest.mark.gen_test(timeout=10)
async def test_unanswered_requests_expire_each_at_its_own_deadline(tmp_path):
    """A coordinator that takes requests and never answers: each request fails with
    ``CoordinatorUnavailable`` at its own timeout, the shorter one first, from one timer."""
    context = zmq.Context()
    silent = context.socket(zmq.ROUTER)
    endpoint = f"ipc://{tmp_path}/silent.sock"
    silent.bind(endpoint)
    client = AsyncCoordinatorClient(endpoint, 0.6, 0.01)
    loop = asyncio.get_running_loop()
    ended: dict[str, float] = {}

    async def ask(name: str, timeout: float | None) -> None:
        started = loop.time()
        with pytest.raises(CoordinatorUnavailable):
            await client.stats(timeout)
        ended[name] = loop.time() - started

    try:
        await asyncio.gather(ask("long", None), ask("short", 0.2), ask("long too", None))
        assert list(ended) == ["short", "long", "long too"]
        assert 0.2 <= ended["short"] < 0.5
        assert 0.6 <= ended["long"] < 1.0
        assert silent.poll(1000)  # the requests were sent, and left unanswered
    finally:
        await client.close()
        silent.close()
        context.term()


@pytest.mark.gen_test(timeout=30)
async def test_a_client_gone_while_its_commit_is_on_its_way_leaves_no_error(
    http_server, http_port, client, settings, caplog
):
    """The whole body sent, then the connection reset before the answer: the staging
    file is withdrawn or published, and the late reply is no error."""
    client.start()
    for n in range(20):
        _, writer = await asyncio.open_connection("127.0.0.1", http_port)
        writer.write(b"PUT /gone/%d HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" % n)
        await writer.drain()
        raw = writer.get_extra_info("socket")
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.close()  # a reset: the server hears of it at once
    for _ in range(750):  # every commit answered (a loaded machine's file work may be slow)
        if http_server.in_flight == 0:
            break
        await asyncio.sleep(0.02)
    assert http_server.in_flight == 0
    assert [r for r in caplog.records if r.levelname in ("ERROR", "CRITICAL")] == []
    assert list((settings.cache_root / "staging").iterdir()) == []
