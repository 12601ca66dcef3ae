"""Packrat in front of a real S3-compatible store (SeaweedFS on loopback, ``seaweedfs``).

Write-through (an upload reaches the store in the background), read-through
(a node with an empty disk serves what the store has, verified, and keeps
it), HEAD, exists and ranges of objects only in the store, deletes, the
versions that keep an older upload from replacing a newer one, the backlog
across ``kill -9``, the store stopped and started again mid-traffic, a
corrupted object in the store, and credentials that never show.
"""

from __future__ import annotations

import hashlib
import html
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from bench.seaweedfs import SECRET_KEY
from tests.support.cli import packrat
from tests.support.processes import BUCKET, REPO, PackratProcess, free_port, write_config
from tests.support.waiting import wait_answering, wait_until


def start_node(
    directory: Path, objectstore: dict, wait: bool = True, **sections: dict
) -> PackratProcess:
    """``packrat serve`` with a root of its own, in front of the test's store prefix."""
    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    settings = {**objectstore, "uploader_endpoint": f"ipc://{directory}/run/uploader.sock"}
    config = write_config(
        directory / "packrat.ini", directory, port, objectstore=settings, **sections
    )
    node = PackratProcess(["serve"], config, directory, port)
    if wait:
        node.wait_ready()
    return node


def store_key(objectstore: dict, key: str) -> str:
    return objectstore["prefix"] + key


def in_store(seaweedfs, objectstore: dict, key: str) -> dict | None:
    """The store's HEAD of ``key`` (None when absent)."""
    client = seaweedfs.client()
    try:
        return client.head_object(Bucket=BUCKET, Key=store_key(objectstore, key))
    except client.exceptions.ClientError as e:
        if e.response["ResponseMetadata"]["HTTPStatusCode"] == 404:
            return None
        raise


def store_bytes(seaweedfs, objectstore: dict, key: str) -> bytes:
    reply = seaweedfs.client().get_object(Bucket=BUCKET, Key=store_key(objectstore, key))
    return reply["Body"].read()


def metric(node: PackratProcess, name: str, labels: str = "") -> float:
    """The value of one sample of ``GET /metrics`` (0 when absent)."""
    text = requests.get(node.url + "/metrics", timeout=10).text
    pattern = re.escape(name) + (re.escape("{" + labels + "}") if labels else "") + r" (\S+)"
    match = re.search("^" + pattern + "$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def store_requests(node: PackratProcess) -> float:
    """Reads the node's processes have asked of the store (GET and HEAD)."""
    return sum(
        metric(node, "packrat_objectstore_requests_total", f'op="{op}"') for op in ("get", "head")
    )


def headers(reply: requests.Response) -> dict[str, str]:
    """A reply's headers, names in lower case, without ``Date``."""
    return {name.lower(): value for name, value in reply.headers.items() if name != "Date"}


def local_file(node: PackratProcess, key: str) -> Path:
    digest = hashlib.sha256(key.encode()).hexdigest()
    return node.cache / "objects" / digest[:2] / digest


@pytest.fixture
def nodes(tmp_path: Path):
    """Stops every node a test starts (``started.append(node)``)."""
    started: list[PackratProcess] = []
    yield started
    for node in started:
        if node.process.poll() is None:
            node.stop()


def test_write_through_then_read_through_on_an_empty_node(seaweedfs, objectstore, nodes, tmp_path):
    first = start_node(tmp_path / "a", objectstore)
    nodes.append(first)
    objects = {
        "wt/small.txt": b"hello from packrat\n",
        "wt/medium.bin": secrets.token_bytes(300_000),
        "wt/large.bin": secrets.token_bytes(3_000_000),
        "wt/empty": b"",
    }
    for key, data in objects.items():
        reply = first.upload(key, data, filename=f"n\u00e9-{key.rsplit('/', 1)[1]}")
        assert reply.status_code == 200, reply.text
    for key, data in objects.items():
        head = wait_until(lambda key=key: in_store(seaweedfs, objectstore, key))
        metadata = head["Metadata"]
        assert metadata["packrat-sha256"] == hashlib.sha256(data).hexdigest()
        assert int(metadata["packrat-version"]) == local_file(first, key).stat().st_mtime_ns
        assert store_bytes(seaweedfs, objectstore, key) == data
    first.stop()

    second = start_node(tmp_path / "b", objectstore)
    nodes.append(second)
    # HEAD and exists of objects only in the store: answered from its metadata, not staged.
    head = requests.head(second.url + "/wt/medium.bin", timeout=10)
    assert head.status_code == 200
    assert head.headers["Content-Length"] == "300000"
    assert head.headers["ETag"] == f'"{hashlib.sha256(objects["wt/medium.bin"]).hexdigest()}"'
    assert "n%C3%A9-medium.bin" in head.headers["Content-Disposition"]
    assert second.exists("wt/small.txt")
    assert not second.exists("wt/absent")
    assert not local_file(second, "wt/medium.bin").exists()
    first_answers = {"HEAD": requests.head(second.url + "/wt/large.bin", timeout=10)}
    # A range of an object only in the store.
    ranged = second.get("wt/large.bin", headers={"Range": "bytes=1000-2999"})
    first_answers["GET"] = ranged
    assert ranged.status_code == 206
    assert ranged.content == objects["wt/large.bin"][1000:3000]
    assert ranged.headers["Content-Range"] == "bytes 1000-2999/3000000"
    # Whole GETs: the store's bytes, and then the object is local.
    for key, data in objects.items():
        reply = second.get(key)
        assert reply.status_code == 200, (key, reply.text)
        assert reply.content == data
        assert reply.headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert second.get("wt/absent").status_code == 404
    for key in objects:
        wait_until(lambda key=key: local_file(second, key).exists())
    # The answers from the store are the answers of the object once local (but Date).
    for method, extra in (("HEAD", {}), ("GET", {"Range": "bytes=1000-2999"})):
        local = requests.request(method, second.url + "/wt/large.bin", headers=extra, timeout=10)
        assert local.status_code == first_answers[method].status_code
        assert headers(local) == headers(first_answers[method])
    # A local hit never asks the store.
    gets = metric(second, "packrat_objectstore_requests_total", 'op="get"')
    heads = metric(second, "packrat_objectstore_requests_total", 'op="head"')
    for key, data in objects.items():
        assert second.get(key).content == data
        assert second.exists(key)
    assert metric(second, "packrat_objectstore_requests_total", 'op="get"') == gets
    assert metric(second, "packrat_objectstore_requests_total", 'op="head"') == heads
    # What was fetched is not sent back: the store still has the first node's versions.
    time.sleep(1.5)
    assert metric(second, "packrat_objectstore_requests_total", 'op="put"') == 0
    # Deletes reach the store; eviction never does.
    assert requests.delete(second.url + "/wt/small.txt", timeout=10).status_code == 200
    assert in_store(seaweedfs, objectstore, "wt/small.txt") is None
    assert second.get("wt/small.txt").status_code == 404
    assert requests.delete(second.url + "/wt/small.txt", timeout=10).status_code == 404


def put_as_packrat(seaweedfs, objectstore: dict, key: str, data: bytes, **overrides) -> None:
    """Put ``key`` in the store as another Packrat node would (its metadata), bypassing ours."""
    metadata = {
        "packrat-sha256": hashlib.sha256(data).hexdigest(),
        "packrat-version": str(time.time_ns()),
        "packrat-stored-at": repr(time.time()),
        "packrat-filename": "from-the-store.bin",
        **overrides,
    }
    seaweedfs.client().put_object(
        Bucket=BUCKET,
        Key=store_key(objectstore, key),
        Body=data,
        Metadata=metadata,
        ContentType="application/octet-stream",
    )


def kill_group(node: PackratProcess) -> None:
    """``kill -9`` of every process of ``packrat serve``, the supervisor first."""
    processes = [node.psutil, *node.children()]
    for process in processes:
        process.send_signal(signal.SIGKILL)
    node.process.wait(10)
    for process in processes:
        process.wait(10)


def store_tile(node: PackratProcess) -> tuple[str, str, str]:
    """The status page's object-store tile as the server renders it: state, value, detail."""
    text = requests.get(node.url + "/", timeout=10).text
    found = re.search(
        r'<tr id="objectstore" class="wide" data-state="(\w+)"><th>Object store</th>'
        r'<td><span class="value">([^<]*)</span> <span class="detail">([^<]*)</span>',
        text,
    )
    assert found, text
    return found[1], found[2], html.unescape(found[3])


def test_the_store_down_mid_traffic_then_back_after_kill_9_with_a_backlog(
    seaweedfs, objectstore, nodes, tmp_path
):
    node = start_node(tmp_path / "a", objectstore)
    nodes.append(node)
    assert node.upload("mid/local", b"local bytes").status_code == 200
    remote = secrets.token_bytes(5000)
    put_as_packrat(seaweedfs, objectstore, "mid/remote", remote)
    wait_until(lambda: in_store(seaweedfs, objectstore, "mid/local"))
    seaweedfs.stop()
    try:
        # Misses answer 404; once each front end's breaker is open, without asking the
        # store (but for a probe every few seconds).
        for _ in range(8):
            assert node.get("mid/remote").status_code == 404
        asked = store_requests(node)
        started = time.monotonic()
        for _ in range(20):
            assert node.get("mid/remote").status_code == 404
            assert not node.exists("mid/remote")
        probes = store_requests(node) - asked
        # At most one probe per front end after 2 s, then 4 s more, 8 s more, ...
        elapsed = time.monotonic() - started
        assert probes <= 2 * (1 + math.log2(1 + elapsed / 2)), (probes, elapsed)
        assert metric(node, "packrat_objectstore_errors_total", 'kind="unavailable",op="get"') > 0
        # Local reads and writes go on; the uploads wait in the backlog.
        objects = {f"backlog/{n}": secrets.token_bytes(1000 + n) for n in range(12)}
        for key, data in objects.items():
            assert node.upload(key, data).status_code == 200
        for key, data in objects.items():
            assert node.get(key).content == data
        assert node.get("mid/local").content == b"local bytes"
        # A delete that cannot reach the store deletes nothing.
        assert requests.delete(node.url + "/mid/local", timeout=10).status_code == 503
        assert node.get("mid/local").content == b"local bytes"
        # Each front end's read breaker opens on its own misses only; once the uploader's
        # opens on its uploads, every front end's answers and page say degraded.
        wait_until(lambda: node.stats()["objectstore"]["uploader"]["breaker"] != "closed")
        figures = node.stats()["objectstore"]
        assert figures["state"] == "degraded"
        assert figures["uploader"]["backlog_objects"] == len(objects), figures
        state, value, detail = wait_until(
            lambda: (tile := store_tile(node))[0] == "degraded" and tile
        )
        assert value == "degraded"
        assert detail.startswith(f"{objectstore['bucket']}/{objectstore['prefix']} · 12 waiting (")
        ready = requests.get(node.url + "/readyz", timeout=10)
        assert ready.status_code == 200  # the node still serves: the balancer keeps it
        assert ready.json()["objectstore"] == "degraded"
        # (the uploader's gauges are written once a second)
        wait_until(lambda: metric(node, "packrat_objectstore_backlog_objects") == len(objects))
        assert metric(node, "packrat_objectstore_up") == 0
        kill_group(node)
    finally:
        seaweedfs.start()
        seaweedfs.wait_ready()
    for key in objects:
        assert in_store(seaweedfs, objectstore, key) is None
    # The restarted node finds its backlog on the disk and drains it; misses fetch again.
    restarted = start_node(tmp_path / "a", objectstore)
    nodes.append(restarted)
    for key, data in objects.items():
        wait_until(lambda key=key: in_store(seaweedfs, objectstore, key), timeout=30)
        assert store_bytes(seaweedfs, objectstore, key) == data
    wait_until(lambda: restarted.stats()["objectstore"]["uploader"]["backlog_objects"] == 0)
    assert restarted.stats()["objectstore"]["state"] == "ok"
    state, value, detail = store_tile(restarted)
    assert state == value == "ok"
    assert " · nothing waiting · " in detail and detail.endswith(" uploaded")
    assert restarted.get("mid/remote").content == remote
    assert requests.delete(restarted.url + "/mid/local", timeout=10).status_code == 200
    assert in_store(seaweedfs, objectstore, "mid/local") is None


def test_a_corrupted_object_in_the_store_is_never_a_clean_200(
    seaweedfs, objectstore, nodes, tmp_path
):
    node = start_node(tmp_path / "a", objectstore, frontend={"processes": 1})
    nodes.append(node)
    for size in (10, 3_000_000):  # one chunk, and several
        key = f"bad/{size}"
        good = secrets.token_bytes(size)
        bad = bytes([good[0] ^ 1]) + good[1:]
        digest = hashlib.sha256(good).hexdigest()
        put_as_packrat(seaweedfs, objectstore, key, bad, **{"packrat-sha256": digest})
        for _ in range(2):
            try:
                reply = node.get(key)
            except requests.exceptions.RequestException:
                continue  # cut off: what a client must see
            assert reply.status_code == 200 and len(reply.content) < size, reply.status_code
        assert not local_file(node, key).exists()
    assert metric(node, "packrat_objectstore_fetches_total", 'outcome="corrupt"') == 4


def test_an_older_version_never_replaces_a_newer_one_in_the_store(
    seaweedfs, objectstore, nodes, tmp_path
):
    first = start_node(tmp_path / "a", objectstore, frontend={"processes": 1})
    second = start_node(tmp_path / "b", objectstore, frontend={"processes": 1})
    nodes += [first, second]
    uploader = first.children("uploader")
    assert len(uploader) == 1
    uploader[0].suspend()  # the first node's uploads wait
    try:
        assert first.upload("versions/key", b"older").status_code == 200
        time.sleep(0.01)
        assert second.upload("versions/key", b"newer").status_code == 200
        wait_until(lambda: in_store(seaweedfs, objectstore, "versions/key"))
    finally:
        uploader[0].resume()
    wait_until(
        lambda: metric(first, "packrat_objectstore_uploads_total", 'outcome="newer_in_store"')
    )
    assert store_bytes(seaweedfs, objectstore, "versions/key") == b"newer"
    # Within one node, the last commit is what the store ends with.
    for n in range(5):
        assert first.upload("versions/many", f"version {n}".encode()).status_code == 200
    stamp = local_file(first, "versions/many").stat().st_mtime_ns
    wait_until(
        lambda: (
            (in_store(seaweedfs, objectstore, "versions/many") or {})
            .get("Metadata", {})
            .get("packrat-version")
            == str(stamp)
        )
    )
    assert store_bytes(seaweedfs, objectstore, "versions/many") == b"version 4"


def test_credentials_never_show(seaweedfs, objectstore, nodes, tmp_path, monkeypatch):
    from bench.seaweedfs import ACCESS_KEY

    node = start_node(tmp_path / "a", objectstore, frontend={"processes": 1})
    nodes.append(node)
    assert node.upload("creds/k", b"x").status_code == 200
    wait_until(lambda: in_store(seaweedfs, objectstore, "creds/k"))
    shown = [
        requests.get(node.url + "/api/stats", timeout=10).text,
        requests.get(node.url + "/metrics", timeout=10).text,
        requests.get(node.url + "/", timeout=10).text,
    ]
    # packrat config, with credentials from the file and from the environment
    for environment in ({}, seaweedfs.environment()):
        settings = {
            k: v for k, v in objectstore.items() if environment == {} or k != "credentials_file"
        }
        config = write_config(tmp_path / "c.ini", tmp_path / "c", free_port(), objectstore=settings)
        out = packrat("config", "--config", str(config), env=environment, text=True)
        assert out.returncode == 0, out.stderr
        assert "[objectstore]" in out.stdout
        assert "not shown" in out.stdout
        assert ACCESS_KEY not in out.stdout  # cut short, recognisable
        shown += [out.stdout, out.stderr]
    # Wrong credentials: the store refuses them, the node goes on, the logs name no secret.
    wrong = tmp_path / "wrong-credentials"
    wrong.write_text(
        f"[default]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = not-{SECRET_KEY}\n"
    )
    refused = start_node(
        tmp_path / "b", {**objectstore, "credentials_file": wrong}, frontend={"processes": 1}
    )
    nodes.append(refused)
    assert refused.upload("creds/local", b"y").status_code == 200
    assert refused.get("creds/k").status_code == 404
    wait_until(lambda: refused.stats()["objectstore"]["state"] == "degraded")
    shown.append(requests.get(refused.url + "/api/stats", timeout=10).text)
    node.stop()
    refused.stop()
    shown += [node.log(), refused.log()]
    assert "SignatureDoesNotMatch" in shown[-3] or "credentials" in shown[-3]
    for text in shown:
        assert SECRET_KEY not in text


def test_nodes_sharing_a_bucket_behind_haproxy_round_robin(seaweedfs, objectstore, nodes, tmp_path):
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.access(haproxy, os.X_OK):
        pytest.skip("haproxy is not installed (apt-get install haproxy)")
    pair = [
        start_node(tmp_path / name, objectstore, frontend={"processes": 1}, wait=False)
        for name in ("a", "b")
    ]
    nodes += pair
    for node in pair:
        node.wait_ready()
    # deploy/haproxy-objectstore.cfg with loopback addresses for the example ones
    text = (REPO / "deploy" / "haproxy-objectstore.cfg").read_text()
    port = free_port()
    assert "bind :80" in text
    text = text.replace("bind :80", f"bind 127.0.0.1:{port}")
    servers = [
        f"    server node{n} 127.0.0.1:{node.port} check inter 2s fall 2 rise 2"
        for n, node in enumerate(pair)
    ]
    text = re.sub(r"(?m)^\s*server node\d 10\.0\.0\.\d+:5050.*\n", "", text) + "\n".join(servers)
    (tmp_path / "haproxy.cfg").write_text(text + "\n")
    log = open(tmp_path / "haproxy.log", "wb")  # noqa: SIM115 (closed below)
    balancer = subprocess.Popen(
        [haproxy, "-db", "-f", str(tmp_path / "haproxy.cfg")], stdout=log, stderr=log
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_answering(url + "/readyz", process=balancer)
        objects = {f"shared/{n}": secrets.token_bytes(2000 + n) for n in range(8)}
        for key, data in objects.items():
            reply = requests.post(f"{url}/{key}", files={"file": ("f", data)}, timeout=10)
            assert reply.status_code == 200, reply.text
        # Round-robin put the uploads on both nodes, each on one disk.
        holders = {
            key: [n for n, node in enumerate(pair) if local_file(node, key).exists()]
            for key in objects
        }
        assert all(len(found) == 1 for found in holders.values()), holders
        assert {found[0] for found in holders.values()} == {0, 1}, holders
        for key in objects:
            wait_until(lambda key=key: in_store(seaweedfs, objectstore, key))
        # Every key is served through the balancer, and by either node.
        for _ in range(2):
            for key, data in objects.items():
                reply = requests.get(f"{url}/{key}", timeout=10)
                assert reply.status_code == 200 and reply.content == data, key
                assert requests.get(f"{url}/exists/{key}", timeout=10).json()["present"]
        for key, data in objects.items():
            for node in pair:
                assert node.exists(key)
                assert node.get(key).content == data
        for key in objects:
            for node in pair:
                wait_until(lambda node=node, key=key: local_file(node, key).exists())
        # A node that starts with an empty disk serves everything in the bucket.
        empty = start_node(tmp_path / "c", objectstore, frontend={"processes": 1})
        nodes.append(empty)
        for key, data in objects.items():
            assert empty.get(key).content == data
    finally:
        balancer.terminate()
        balancer.wait(10)
        log.close()


def test_concurrent_misses_of_one_key_make_one_fetch(seaweedfs, objectstore, nodes, tmp_path):
    node = start_node(tmp_path / "a", objectstore)  # two front ends: both levels of the lock
    nodes.append(node)
    data = secrets.token_bytes(6_000_000)
    put_as_packrat(seaweedfs, objectstore, "flight/big", data)
    asked = metric(node, "packrat_objectstore_requests_total", 'op="get"')
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: node.get("flight/big"), range(8)))
    assert all(reply.status_code == 200 and reply.content == data for reply in replies)
    assert metric(node, "packrat_objectstore_requests_total", 'op="get"') - asked == 1
    assert metric(node, "packrat_objectstore_fetches_total", 'outcome="fetched"') == 1


def test_objects_evicted_before_they_reach_the_store_are_counted(
    seaweedfs, objectstore, nodes, tmp_path
):
    node = start_node(
        tmp_path / "a", objectstore, frontend={"processes": 1}, cache={"max_size": "1M"}
    )
    nodes.append(node)
    uploader = node.children("uploader")[0]
    uploader.suspend()
    try:
        for n in range(4):
            assert node.upload(f"evicted/{n}", secrets.token_bytes(400_000)).status_code == 200
    finally:
        uploader.resume()
    gone = [n for n in range(4) if not local_file(node, f"evicted/{n}").exists()]
    assert gone, "nothing was evicted"
    wait_until(lambda: node.stats()["objectstore"]["uploader"]["backlog_objects"] == 0)
    figures = node.stats()["objectstore"]["uploader"]
    assert figures["lost_before_upload"] == len(gone), figures
    assert metric(node, "packrat_objectstore_lost_before_upload_total") == len(gone)
    for n in range(4):
        assert (in_store(seaweedfs, objectstore, f"evicted/{n}") is None) == (n in gone)


def test_large_objects_go_in_parts(seaweedfs, objectstore, tmp_path, monkeypatch):
    """The multipart path of ``ObjectStore.put`` (above 512 MiB in production), in parts of
    5 MiB (S3's smallest) against the real store, and its version check."""
    from packrat.core.settings import Settings
    from packrat.objectstore import store as store_module
    from packrat.objectstore.store import ObjectStore, PreconditionFailed
    from packrat.store import ObjectMeta

    monkeypatch.setattr(store_module, "MULTIPART_THRESHOLD", 5 << 20)
    monkeypatch.setattr(store_module, "PART_SIZE", 5 << 20)
    settings = Settings(**{f"objectstore_{name}": value for name, value in objectstore.items()})
    store = ObjectStore(settings)
    data = secrets.token_bytes(12 << 20)
    path = tmp_path / "object"
    path.write_bytes(data + b"trailer bytes, not sent")
    meta = ObjectMeta(
        "parts/big",
        "big.bin",
        "application/x-test",
        len(data),
        hashlib.sha256(data).hexdigest(),
        time.time(),
    )
    fd = os.open(path, os.O_RDONLY)
    try:
        store.put("parts/big", fd, meta, 7, None)
        assert store_bytes(seaweedfs, objectstore, "parts/big") == data
        seen = store.look("parts/big")
        assert seen is not None and seen[0] == 7
        with pytest.raises(PreconditionFailed):  # absent was the condition
            store.put("parts/big", fd, meta, 8, None)
        store.put("parts/big", fd, meta, 9, seen[1])
        assert store.look("parts/big")[0] == 9
    finally:
        os.close(fd)
    assert store_key(objectstore, "parts/big") not in [  # the refused one was aborted
        upload["Key"]
        for upload in seaweedfs.client().list_multipart_uploads(Bucket=BUCKET).get("Uploads", [])
    ]


def test_a_fan_out_directory_replaced_under_the_uploader(seaweedfs, objectstore, nodes, tmp_path):
    node = start_node(tmp_path / "a", objectstore, frontend={"processes": 1})
    nodes.append(node)
    keys = [f"fan/{n}" for n in range(5000)]
    fanout = hashlib.sha256(keys[0].encode()).hexdigest()[:2]
    same = [key for key in keys if hashlib.sha256(key.encode()).hexdigest()[:2] == fanout][:2]
    (node.cache / "objects" / fanout).rmdir()  # the coordinator makes it again at its next commit
    for key in same:
        assert node.upload(key, key.encode()).status_code == 200
        wait_until(lambda key=key: in_store(seaweedfs, objectstore, key))


def test_a_purge_by_prefix_deletes_in_the_store_too(seaweedfs, objectstore, nodes, tmp_path):
    """A purge deletes the keys under the prefix on this node and in the store, those
    another node uploaded included, in batches; nothing outside the prefix; over the API,
    the CLI and WebDAV."""
    first, second = (start_node(tmp_path / name, objectstore) for name in ("a", "b"))
    nodes += [first, second]
    mine = {f"purge/a/{n}": secrets.token_bytes(100 + n) for n in range(5)}
    theirs = {f"purge/b/{n}": secrets.token_bytes(200 + n) for n in range(4)}
    for node, objects in ((first, mine), (second, theirs)):
        for key, data in objects.items():
            assert node.upload(key, data).status_code == 200
    assert first.upload("purged/not", b"a neighbour of the prefix").status_code == 200
    put_as_packrat(seaweedfs, objectstore, "purge/c/foreign", b"put by another node")
    # A single DELETE of a key held only in the store deletes it there, and says so.
    put_as_packrat(seaweedfs, objectstore, "purge/d/single", b"only in the store")
    reply = requests.delete(first.url + "/purge/d/single", timeout=10)
    assert reply.status_code == 200, reply.text
    assert in_store(seaweedfs, objectstore, "purge/d/single") is None
    every = [*mine, *theirs, "purged/not"]
    for key in every:
        wait_until(lambda key=key: in_store(seaweedfs, objectstore, key))

    # Batches of 4 over the API from the first node: its keys and the store's, in order.
    removed: list[str] = []
    while True:
        reply = requests.delete(
            first.url + "/api/keys", params={"prefix": "purge/", "limit": 4}, timeout=30
        )
        assert reply.status_code == 200, reply.text
        removed += reply.json()["keys"]
        if not reply.json()["more"]:
            break
    assert removed == sorted([*mine, *theirs, "purge/c/foreign"])
    for key in [*mine, *theirs, "purge/c/foreign"]:
        assert in_store(seaweedfs, objectstore, key) is None
        assert first.get(key).status_code == 404  # nothing to read through any more
    assert first.get("purged/not").content == b"a neighbour of the prefix"
    assert in_store(seaweedfs, objectstore, "purged/not")
    # The second node's own copies stay until it is purged too (or evicts them).
    assert second.get("purge/b/0").content == theirs["purge/b/0"]

    # WebDAV's DELETE of a collection, on the second node: its local copies go.
    assert requests.delete(second.url + "/purge/", timeout=30).status_code == 204
    assert all(second.get(key).status_code == 404 for key in theirs)
    # And the CLI, for the last key.
    done = packrat("rm", "--prefix", "purged/", "--url", first.url, text=True)
    assert done.returncode == 0, done.stderr
    assert in_store(seaweedfs, objectstore, "purged/not") is None
    assert first.get("purged/not").status_code == 404
