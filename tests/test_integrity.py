"""End-to-end integrity: digests in, digests out, corruption never served as whole.

The tests on the shared ``server`` run with access control off and on."""

from __future__ import annotations

import hashlib
import http.client
import os
import time

import requests
import xxhash
from hypothesis import given
from hypothesis import strategies as st

from packrat.core.exits import ExitStatus
from packrat.store import Checker, Layout, ObjectMeta
from packrat.store.reader import SETTLED_NS
from packrat.store.snapshot import read_snapshot
from tests.support.cli import packrat
from tests.support.waiting import wait_until


def test_expected_digest_header_is_checked(server):
    data = b"checked bytes"
    good = hashlib.sha256(data).hexdigest()
    reply = server.upload("h", data, headers={"X-Packrat-Sha256": "0" * 64})
    assert reply.status_code == 400
    assert reply.json()["error"] == "checksum_mismatch"
    assert server.exists("h") is False
    assert server.staging_files() == []
    reply = server.upload("h", data, headers={"X-Packrat-Sha256": good.upper()})
    assert reply.status_code == 200 and reply.json()["sha256"] == good


def test_expected_digest_form_field_is_checked(server):
    url = f"{server.url}/f"
    data = b"field checked"
    reply = server.http.post(
        url, data={"sha256": "f" * 64}, files={"file": ("x", data)}, timeout=10
    )
    assert reply.status_code == 400 and reply.json()["error"] == "checksum_mismatch"
    assert server.exists("f") is False
    good = hashlib.sha256(data).hexdigest()
    reply = server.http.post(url, data={"sha256": good}, files={"file": ("x", data)}, timeout=10)
    assert reply.status_code == 200


def test_etag_is_the_sha256(server):
    data = b"etag me"
    server.upload("e", data)
    assert server.get("e").headers["ETag"] == f'"{hashlib.sha256(data).hexdigest()}"'


def _corrupt_one_byte(server, key: str, offset: int) -> None:
    path = Layout(server.cache).object_path(key)
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))


@given(st.binary(min_size=1, max_size=3000), st.booleans(), st.integers(min_value=0))
def test_a_small_object_is_checked_in_one_call_as_in_segments(data, with_xxh3, position):
    """``Checker.whole_matches`` (small reads) says what feeding a ``Checker`` says, for
    objects with an xxh3 and those stored before it (sha256 only), and a flipped byte
    fails both."""
    meta = ObjectMeta(
        "k",
        "k",
        "application/octet-stream",
        len(data),
        hashlib.sha256(data).hexdigest(),
        0.0,
        xxhash.xxh3_128_hexdigest(data) if with_xxh3 else "",
    )
    flipped = bytearray(data)
    flipped[position % len(data)] ^= 1
    for body, sound in ((data, True), (bytes(flipped), False)):
        checker = Checker(meta)
        for start in range(0, len(body), 1000):
            checker.update(memoryview(body)[start : start + 1000])
        assert checker.matches() is sound
        assert Checker.whole_matches(meta, memoryview(body)) is sound


def test_corrupt_object_is_never_served_whole_and_then_dropped(server, wait_for):
    data = bytes(range(256)) * 1024  # 256 KiB: several chunks
    server.upload("rotten", data)
    _corrupt_one_byte(server, "rotten", 200_000)

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/rotten", headers=server.auth)
    response = conn.getresponse()
    assert response.status == 200  # headers went out before the damage was found
    try:
        body = response.read()
    except http.client.IncompleteRead as e:
        body = e.partial
    conn.close()
    assert len(body) < len(data)  # the client sees a short transfer, never a whole body

    wait_for(lambda: server.get("rotten").status_code == 404)
    assert server.exists("rotten") is False
    assert "failed its digest check" in server.log()


def test_fsck_reports_and_repairs(make_server):
    packrat_server = make_server(coordinator={"snapshot_interval": 0.2})
    for key in ("good", "flipped", "truncated"):
        packrat_server.upload(key, key.encode() * 1000)
    layout = Layout(packrat_server.cache)
    # A snapshot names the key of the file whose trailer we break.
    wait_until(lambda: read_snapshot(layout)[0].keys == [b"flipped", b"good", b"truncated"])
    _corrupt_one_byte(packrat_server, "flipped", 10)
    truncated = layout.object_path("truncated")
    truncated.write_bytes(truncated.read_bytes()[:-20])
    (layout.staging / "999999999-abandoned.part").write_bytes(b"junk")

    report = packrat("fsck", "--config", str(packrat_server.config), text=True)
    assert report.returncode == ExitStatus.CORRUPT_LEFT, report.stdout + report.stderr
    assert "data does not match its sha256 (key 'flipped')" in report.stdout
    assert f"corrupt   {truncated}" in report.stdout
    assert "999999999-abandoned.part" in report.stdout
    assert "checked 3 objects" in report.stdout
    assert layout.object_path("flipped").exists()  # reporting changes nothing

    repaired = packrat("fsck", "--config", str(packrat_server.config), "--repair", text=True)
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert not layout.object_path("flipped").exists()
    assert not truncated.exists()
    assert not (layout.staging / "999999999-abandoned.part").exists()
    assert packrat_server.get("good").content == b"good" * 1000
    # The running coordinator dropped the corrupt key from its index too.
    page = requests.get(packrat_server.url + "/", timeout=10).text
    assert "<th>Objects</th><td>1</td>" in page

    # The next snapshot no longer lists the removed keys.
    wait_until(lambda: read_snapshot(layout)[0].keys == [b"good"])
    clean = packrat("fsck", "--config", str(packrat_server.config), text=True)
    assert clean.returncode == 0, clean.stdout
    assert "0 corrupt, 0 missing" in clean.stdout


def test_head_and_exists_never_answer_from_stale_metadata(server):
    """``HEAD`` and ``exists`` answer from the front end's ``MetadataCache``, whose entries
    hold only for the very file they were read from: an object replaced, altered in place
    (its times set back: only the change time tells) or removed as eviction removes it
    is read again, or missed."""
    keys = {name: f"stale-{name}" for name in ("replaced", "altered", "broken", "evicted")}
    for key in keys.values():
        server.upload(key, key.encode() * 100)
    time.sleep(SETTLED_NS / 1e9 + 0.2)  # settled: kept by the cache once read
    for key in keys.values():
        assert server.http.head(f"{server.url}/{key}", timeout=10).status_code == 200
        assert server.exists(key) is True

    server.upload(keys["replaced"], b"new bytes")
    reply = server.http.head(f"{server.url}/{keys['replaced']}", timeout=10)
    assert reply.headers["ETag"] == f'"{hashlib.sha256(b"new bytes").hexdigest()}"'
    assert reply.headers["Content-Length"] == str(len(b"new bytes"))

    old = hashlib.sha256(keys["altered"].encode() * 100).hexdigest()
    altered = old[::-1]
    _rewrite_in_place(server, keys["altered"], old.encode(), altered.encode())
    reply = server.http.head(f"{server.url}/{keys['altered']}", timeout=10)
    assert reply.headers["ETag"] == f'"{altered}"'

    _rewrite_in_place(server, keys["broken"], b"PKRT1\n", b"PKRT0\n")  # no trailer now
    assert server.http.head(f"{server.url}/{keys['broken']}", timeout=10).status_code == 404
    assert server.exists(keys["broken"]) is False

    Layout(server.cache).object_path(keys["evicted"]).unlink()
    assert server.http.head(f"{server.url}/{keys['evicted']}", timeout=10).status_code == 404
    assert server.exists(keys["evicted"]) is False


def _rewrite_in_place(server, key: str, old: bytes, new: bytes) -> None:
    """Replace ``old`` by ``new`` (as long) in ``key``'s file, then set its times back."""
    path = Layout(server.cache).object_path(key)
    before = path.stat()
    data = path.read_bytes()
    assert len(old) == len(new) and data.count(old) == 1
    with open(path, "r+b") as f:
        f.seek(data.index(old))
        f.write(new)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )


def test_get_never_answers_from_bytes_kept_for_another_file(server):
    """A ``GET`` of a small object answers from the bytes the front end kept in memory
    (``MetadataCache.body``) only while the file is the one they were read and checked
    from: an object corrupted in place (its times set back: only the change time
    tells) is never served from memory, an overwritten one serves its new bytes, an
    evicted one misses.  Each front end keeps its own: new connections reach both."""
    keys = {name: f"kept-{name}" for name in ("corrupted", "overwritten", "evicted")}
    bodies = {key: os.urandom(1000) for key in keys.values()}
    for key, body in bodies.items():
        server.upload(key, body)
    time.sleep(SETTLED_NS / 1e9 + 0.2)  # settled: kept by the cache once read

    def get(key: str) -> requests.Response:
        return requests.get(f"{server.url}/{key}", headers=server.auth, timeout=10)

    for _ in range(8):
        for key, body in bodies.items():
            reply = get(key)
            assert reply.status_code == 200 and reply.content == body

    old = bodies[keys["corrupted"]][500:508]
    _rewrite_in_place(server, keys["corrupted"], old, bytes(b ^ 1 for b in old))
    for _ in range(8):
        reply = get(keys["corrupted"])
        assert reply.status_code == 404, reply.content[:40]

    server.upload(keys["overwritten"], b"new bytes")
    for _ in range(8):
        assert get(keys["overwritten"]).content == b"new bytes"

    Layout(server.cache).object_path(keys["evicted"]).unlink()
    for _ in range(8):
        assert get(keys["evicted"]).status_code == 404
