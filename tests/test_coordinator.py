"""The coordinator's request handling and start-up, on real files (no sockets)."""

from __future__ import annotations

import hashlib
import os
import time
from array import array
from dataclasses import fields, replace

import hypothesis.strategies as st
import msgpack
import pytest
from hypothesis import given

from packrat.coordinator import protocol
from packrat.coordinator.protocol import Commit, Delete, Drop, Stats, Touch
from packrat.coordinator.server import CoordinatorServer, _refuse
from packrat.coordinator.service import Coordinator
from packrat.core.errors import ErrorCode
from packrat.core.settings import Settings
from packrat.store import StagedFile, key_digest, open_entry, open_key
from packrat.store.accounting import charge
from packrat.store.layout import FANOUT, Layout
from packrat.store.snapshot import SnapshotWriter, load_snapshot, save_snapshot
from packrat.store.staging import sweep_staging
from tests.support.waiting import wait_until

BLOCK = 4096
DATA = b"x" * 8000  # two blocks


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(
        cache_root=tmp_path / "cache",
        cache_max_size=48 * BLOCK,
        cache_low_water=1.0,
        cache_policy="lru",
    )


@pytest.fixture
def coordinator(settings) -> Coordinator:
    coord = Coordinator(settings)
    coord.load()
    yield coord
    coord.close()


def restarted(coord: Coordinator, **changes) -> Coordinator:
    """A new coordinator on the same root, as after a restart (``kill -9`` unless snapshotted)."""
    coord.close()
    fresh = Coordinator(replace(coord.settings, **changes))
    fresh.load()
    return fresh


def handle_frame(server: CoordinatorServer, frame: bytes) -> protocol.Reply | None:
    """What the server's loop does with one request frame, its reply returned."""
    try:
        request = protocol.decode_request(frame)
    except protocol.ProtocolError as e:
        return _refuse(e)
    return server.coordinator.handle(request)


def stage(coord: Coordinator, key: str, data: bytes) -> tuple[str, int]:
    """Write a staged object as a front end does; return its name and file size."""
    staged = StagedFile(coord.layout)
    staged.write(data)
    _, file_size = staged.seal(key, f"{key}.txt", "text/plain")
    return staged.name, file_size


def commit(coord: Coordinator, key: str, data: bytes = DATA) -> protocol.Reply:
    name, file_size = stage(coord, key, data)
    return coord.handle(Commit(1, time.time() + 5, key, name, file_size))


def on_disk(coord: Coordinator) -> dict[str, int]:
    """Every object file's key and charge, read from the files."""
    found = {}
    for fanout in FANOUT:
        dir_fd = coord.layout.fanout_fds[fanout]
        for name in os.listdir(dir_fd):
            opened = open_entry(dir_fd, name)
            assert opened is not None
            fd, meta, info = opened
            os.close(fd)
            found[meta.key] = charge(info, meta.key)
    return found


def assert_exact(coord: Coordinator) -> None:
    """The index holds exactly the files on disk, at exactly their charges."""
    files = on_disk(coord)
    index = coord.index
    assert set(files) == set(index.all_keys())
    assert index.used == sum(files.values())
    assert all(index.charge_of(key) == cost for key, cost in files.items())
    assert index.disk_bytes <= index.max_size


def test_a_staged_files_digest_follows_every_write(coordinator):
    """The sha256 is made once when asked, and again after more bytes arrive."""
    staged = StagedFile(coordinator.layout)
    staged.write(b"first")
    assert staged.hexdigest() == hashlib.sha256(b"first").hexdigest()
    staged.write(b" and more")
    assert staged.hexdigest() == hashlib.sha256(b"first and more").hexdigest()
    meta, _ = staged.seal("digest", "digest.txt", "text/plain")
    assert meta.sha256 == hashlib.sha256(b"first and more").hexdigest()
    staged.discard()


def test_a_forked_process_names_its_staging_files_by_its_own_pid(coordinator):
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # the child: one staging file, its name to the parent
        try:
            staged = StagedFile(coordinator.layout)
            os.write(write_end, staged.name.encode())
            staged.discard()
        finally:
            os._exit(0)
    os.close(write_end)
    name = os.read(read_end, 200).decode()
    os.close(read_end)
    os.waitpid(child, 0)
    assert name.startswith(f"{child}-")
    mine = StagedFile(coordinator.layout)
    assert mine.name.startswith(f"{os.getpid()}-")
    mine.discard()


def test_commit_publishes_the_object(coordinator):
    reply = commit(coordinator, "k", b"hello")
    assert reply.ok and reply.evicted == 0
    fd, meta, _ = open_key(coordinator.layout, "k")
    os.close(fd)
    assert meta.key == "k" and meta.filename == "k.txt" and meta.size == 5
    assert os.listdir(coordinator.layout.staging) == []
    assert_exact(coordinator)


def test_charges_count_whole_blocks_and_the_snapshot_row(coordinator):
    commit(coordinator, "tiny", b"1")
    cost = coordinator.index.charge_of("tiny")
    assert cost == BLOCK + 2 * (64 + len("tiny"))


def test_commit_evicts_least_recently_used(coordinator):
    cost = None
    keys = []
    while cost is None or coordinator.index.used + cost <= coordinator.index.capacity:
        key = f"k{len(keys)}"
        commit(coordinator, key)
        keys.append(key)
        cost = coordinator.index.charge_of(key)
    coordinator.handle(Touch((keys[0],), misses=2))
    reply = commit(coordinator, "new")
    assert reply.evicted == 1
    assert keys[0] in coordinator.index and keys[1] not in coordinator.index
    assert not coordinator.layout.object_path(keys[1]).exists()
    stats = coordinator.handle(Stats(2, time.time() + 5)).stats
    assert (stats["hits"], stats["misses"], stats["evictions"]) == (1, 2, 1)
    assert stats["bytes"] <= stats["max_size"]
    assert_exact(coordinator)


def test_overwrite_keeps_accounting_exact(coordinator):
    commit(coordinator, "k", b"x" * 30000)
    commit(coordinator, "k", b"y" * 100)
    assert len(coordinator.index) == 1
    assert_exact(coordinator)


def test_larger_than_cache_is_refused_and_staging_removed(coordinator):
    reply = commit(coordinator, "big", b"x" * (50 * BLOCK))
    assert reply.error == ErrorCode.TOO_LARGE
    assert os.listdir(coordinator.layout.staging) == []
    assert not coordinator.layout.object_path("big").exists()


def test_stale_request_is_refused(coordinator):
    name, size = stage(coordinator, "late", b"x")
    reply = coordinator.handle(Commit(1, time.time() - 1, "late", name, size))
    assert reply.error == ErrorCode.STALE
    assert not coordinator.layout.object_path("late").exists()


def test_staging_name_cannot_escape(coordinator):
    for name in ("../../etc/passwd", "/etc/passwd", "x/../../y.part", ".part", "1-a.commit"):
        reply = coordinator.handle(Commit(1, time.time() + 5, "k", name, 1))
        assert reply.error == ErrorCode.INVALID_MESSAGE, name


def test_size_mismatch_is_refused(coordinator):
    name, size = stage(coordinator, "k", b"data")
    reply = coordinator.handle(Commit(1, time.time() + 5, "k", name, size + 1))
    assert reply.error == ErrorCode.INVALID_MESSAGE
    assert os.listdir(coordinator.layout.staging) == []


def test_staging_removed_before_the_commit_changes_nothing(coordinator):
    """A front end that gives up removes its staging file; the commit must then
    evict nothing, least of all the key's own old version."""
    while coordinator.index.disk_bytes + 3 * BLOCK < coordinator.index.capacity:
        commit(coordinator, f"fill{len(coordinator.index)}")
    commit(coordinator, "victim")
    coordinator.handle(Touch(tuple(k for k in coordinator.index.all_keys() if k != "victim")))
    before = coordinator.index.charges()
    name, size = stage(coordinator, "victim", b"z" * 40000)
    os.unlink(name, dir_fd=coordinator.layout.staging_fd)
    reply = coordinator.handle(Commit(1, time.time() + 5, "victim", name, size))
    assert reply.error == ErrorCode.STAGING_MISSING
    assert coordinator.index.charges() == before
    assert_exact(coordinator)


def test_delete(coordinator):
    commit(coordinator, "k", b"data")
    assert coordinator.handle(Delete(1, time.time() + 5, "k")).ok
    assert not coordinator.layout.object_path("k").exists()
    assert coordinator.handle(Delete(2, time.time() + 5, "k")).error == ErrorCode.NOT_FOUND
    assert_exact(coordinator)


def test_drop_removes_only_the_file_that_was_found_corrupt(coordinator):
    commit(coordinator, "k", b"old")
    old = coordinator.layout.object_path("k").stat()
    commit(coordinator, "k", b"new")  # replaced since a reader found the old one bad
    reply = coordinator.handle(Drop(1, time.time() + 5, key_digest("k"), (old.st_dev, old.st_ino)))
    assert reply.ok and "k" in coordinator.index
    new = coordinator.layout.object_path("k").stat()
    reply = coordinator.handle(Drop(2, time.time() + 5, key_digest("k"), (new.st_dev, new.st_ino)))
    assert reply.ok and "k" not in coordinator.index
    assert not coordinator.layout.object_path("k").exists()
    assert_exact(coordinator)


def test_drop_of_a_misnamed_file_finds_its_key(coordinator):
    """Key a's file put at key b's path: dropping it by name forgets b."""
    commit(coordinator, "a", b"aaa")
    commit(coordinator, "b", b"bbb")
    os.replace(coordinator.layout.object_path("a"), coordinator.layout.object_path("b"))
    bad = coordinator.layout.object_path("b").stat()
    reply = coordinator.handle(Drop(1, time.time() + 5, key_digest("b"), (bad.st_dev, bad.st_ino)))
    assert reply.ok
    assert "b" not in coordinator.index
    assert not coordinator.layout.object_path("b").exists()


COMMIT = {"op": "commit", "id": 7, "deadline": 1e12, "key": "k", "staging": "x", "file_size": 1}


@pytest.mark.parametrize(
    "fields",
    [
        {"op": "delete", "id": 7, "deadline": 1e12, "key": 5},
        {"op": "touch", "keys": "abc", "misses": 0},
        {"op": "commit", "id": 7, "deadline": "soon", "key": "k", "staging": "x", "file_size": 1},
        {"op": "commit", "id": 7, "deadline": 1e12, "key": "k", "staging": "x", "file_size": True},
        {**COMMIT, "size": -1},
        {**COMMIT, "filename": b"bytes"},
        {"op": "drop", "id": 7, "deadline": 1e12, "name": "0" * 64, "inode": [1]},
        {"op": "stats", "id": 7, "deadline": 1e12, "extra": 1},
        {"op": "nope", "id": 7},
        {"op": "commit", "id": 7},
        {"op": "delete", "id": 7, "deadline": 1e12, "key": "../x"},
        {"op": "list", "id": 7, "deadline": 1e12, "prefix": 3},
        {"op": "list", "id": 7, "deadline": 1e12, "prefix": "a", "after": None},
        {"op": "list", "id": 7, "deadline": 1e12, "prefix": "a", "limit": 0},
        {"op": "list", "id": 7, "deadline": 1e12, "prefix": "a", "limit": protocol.MAX_PAGE + 1},
        {"op": "list", "id": 7, "deadline": 1e12, "prefix": "a", "collections": 1},
        {"op": "purge", "id": 7, "deadline": 1e12, "prefix": b"a"},
        {"op": "purge", "id": 7, "deadline": 1e12, "prefix": "a", "limit": True},
        {"op": "purge", "id": 7, "deadline": 1e12, "prefix": "a", "after": "b"},
    ],
)
def test_malformed_messages_are_refused_and_the_coordinator_goes_on(settings, fields):
    server = CoordinatorServer(settings)
    server.coordinator.load()
    try:
        reply = handle_frame(server, msgpack.packb({"v": protocol.VERSION, **fields}))
        if "id" in fields:
            assert reply is not None and reply.error == ErrorCode.INVALID_MESSAGE
        else:
            assert reply is None
        name, size = stage(server.coordinator, "after", b"ok")
        frame = protocol.encode(Commit(8, time.time() + 5, "after", name, size))
        assert handle_frame(server, frame).ok
    finally:
        server.coordinator.close()


@pytest.mark.parametrize(
    "fields",
    [
        {"keys": [], "bytes_out": "lots"},
        {"keys": [], "bytes_in": -1},
        {"keys": [], "number": -1, "pid": 7},
        {"keys": [], "pid": 1.5},
        {"keys": [], "misses": None},
    ],
)
def test_malformed_touches_are_refused(fields):
    frame = msgpack.packb({"v": protocol.VERSION, "op": "touch", **fields})
    with pytest.raises(protocol.ProtocolError):
        protocol.decode_request(frame)
    full = Touch(("k",), misses=1, bytes_in=2, bytes_out=3, number=4, pid=5)
    assert protocol.decode_request(protocol.encode(full)) == full


def test_every_reply_field_is_known_to_the_short_encoding():
    """``protocol.encode`` sends a commit's reply without looking at ``message``,
    ``present``, ``stats``, ``keys`` and ``more`` once ``protocol._extras`` finds them
    unset: a field added to ``Reply`` must be added there (and to the test below)."""
    names = [f.name for f in fields(protocol.Reply)]
    assert names == ["id", "error", "message", "evicted", "present", "stats", "keys", "more"]
    extra = protocol.Reply(1, present=True)
    assert protocol.decode_reply(protocol.encode(extra)) == extra


@given(
    st.builds(
        protocol.Reply,
        id=st.integers(0, 2**63 - 1),
        error=st.none() | st.sampled_from(ErrorCode),
        message=st.text(max_size=4),
        evicted=st.integers(0, 300),
        present=st.booleans(),
        stats=st.dictionaries(st.text(max_size=3), st.integers(0, 2**32), max_size=2),
        keys=st.lists(st.text(max_size=3), max_size=2).map(tuple),
        more=st.booleans(),
    )
)
def test_a_reply_is_sent_as_its_id_and_the_fields_it_sets(reply):
    # A commit's reply takes a shorter way (``encode``): the same bytes, so
    # clients of every version read it alike.
    frame = protocol.encode(reply)
    assert protocol.decode_reply(frame) == reply
    fields = {"v": protocol.VERSION, "id": reply.id}
    for name in ("error", "message", "evicted", "present", "stats", "keys", "more"):
        if getattr(reply, name):
            fields[name] = getattr(reply, name)
    assert frame == msgpack.packb(fields)


def test_garbage_frames_are_dropped(settings):
    server = CoordinatorServer(settings)
    assert handle_frame(server, b"\xc1garbage") is None
    assert handle_frame(server, msgpack.packb([1, 2])) is None
    assert handle_frame(server, msgpack.packb({"v": 1, "op": "stats", "id": 1})) is None


def test_restart_rebuilds_from_disk_with_snapshot_recency(coordinator):
    for key in "abcd":
        commit(coordinator, key)
    coordinator.handle(Touch(("a",)))
    coordinator.snapshot()
    # After the snapshot: one object added (adopted at start-up), one removed
    # behind the coordinator's back (dropped), one corrupted (removed).
    commit(coordinator, "e")
    coordinator.layout.object_path("b").unlink()
    coordinator.layout.object_path("c").write_bytes(b"not an object")
    fresh = restarted(coordinator)
    assert not fresh.layout.object_path("c").exists()
    order = [key for key, _, _ in fresh.index.entries_by_recency()]
    assert order == ["d", "a", "e"]
    assert_exact(fresh)
    fresh.close()


def test_an_overwrite_right_after_a_snapshot_is_not_trusted_from_it(coordinator):
    """The snapshot's sequence, not wall-clock mtimes, tells what changed since."""
    for n in range(30):
        key = f"k{n}"
        commit(coordinator, key, b"s")
        coordinator.snapshot()
        commit(coordinator, key, b"L" * 30000)  # within microseconds of the snapshot
    fresh = restarted(coordinator)  # kill -9: the snapshot is not clean
    assert_exact(fresh)
    fresh.close()


def test_a_damaged_snapshot_is_ignored_and_the_index_rebuilt(coordinator):
    for key in "abc":
        commit(coordinator, key)
    coordinator.snapshot(clean=True)
    path = coordinator.layout.snapshot_path()
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0x01  # one bit in the payload
    path.write_bytes(bytes(blob))
    fresh = restarted(coordinator)
    assert_exact(fresh)
    fresh.close()


def test_a_snapshot_that_lies_with_a_valid_checksum_is_checked_against_the_files(coordinator):
    for key in "abc":
        commit(coordinator, key, b"x" * 30000)
    rows = [(k.encode(), 1, seen) for k, _, seen in coordinator.index.entries_by_recency()]
    save_snapshot(coordinator.layout, rows, coordinator.writer.clock_ns + 1)  # sizes: 1 byte
    fresh = restarted(coordinator)
    assert_exact(fresh)
    fresh.close()


def _write_rows(coordinator, keys: list[str]) -> None:
    """A snapshot of ``keys`` in the order given (the writer does not check it), with
    a valid checksum and the clean mark: start-up would trust it without a stat."""
    index = coordinator.index
    writer = SnapshotWriter(coordinator.layout, coordinator.writer.clock_ns + 1)
    for key in keys:
        charge = index.charge_of(key) or 3 * BLOCK
        writer.add([key.encode()], array("q", [charge]), array("d", [time.time()]))
    writer.finish(clean=True)


@pytest.mark.parametrize(
    "keys",
    [
        ["a", "b", "phantom"],  # a key with no file: dropped
        ["a", "a", "b"],  # a key twice: it would be indexed twice
        ["b", "a"],  # out of order: a repeat could hide anywhere
    ],
)
def test_a_snapshot_whose_rows_lie_or_repeat_is_not_trusted(coordinator, keys):
    """A valid checksum says the file is whole, not true: the index stays the files."""
    for key in "ab":
        commit(coordinator, key)
    _write_rows(coordinator, keys)
    fresh = restarted(coordinator)  # used to hold a phantom key, or raise KeyError
    assert set(fresh.index.all_keys()) == {"a", "b"}
    assert_exact(fresh)
    for n in range(40):  # evictions unlink real files
        commit(fresh, f"more{n}")
    assert_exact(fresh)
    fresh.close()


def test_a_failed_load_saves_no_snapshot(settings, coordinator):
    """The server's stop path must not save the partial index of a load that failed."""
    for key in "ab":
        commit(coordinator, key)
    coordinator.snapshot(clean=True)
    coordinator.close()
    before = coordinator.layout.snapshot_path().read_bytes()
    # An old-layout directory that cannot be moved up: the rebuild fails.
    name = key_digest("a")
    nested = coordinator.layout.objects / name[:2] / "zz"
    nested.mkdir()
    (nested / name).mkdir()
    (nested / name / "x").write_bytes(b"")
    server = CoordinatorServer(settings)
    with pytest.raises(OSError):
        server.run(handle_signals=False)
    assert coordinator.layout.snapshot_path().read_bytes() == before
    assert not coordinator.layout.clean_mark_path().exists()


def test_a_snapshot_written_in_slices_while_the_index_changes_restores_exactly(coordinator):
    """Rows written before a change are stale, and need not be fresh: start-up re-reads
    every file committed after the snapshot began, and drops rows whose file is gone."""
    for key in "abcdefgh":
        commit(coordinator, key)
    coordinator.handle(Touch(("a",)))
    job = coordinator.begin_snapshot()
    job.step(0)  # at least one block: a slice of rows
    commit(coordinator, "e", b"y" * 30000)  # overwritten: stamped after the snapshot began
    commit(coordinator, "0")  # a new key, before the cursor
    commit(coordinator, "z")  # and after it
    coordinator.handle(Delete(2, time.time() + 5, "g"))
    coordinator.handle(Touch(("c",)))
    job.finish()
    assert job.writer.rows <= 9  # each key at most once
    fresh = restarted(coordinator)  # kill -9: the periodic snapshot, then the files
    assert_exact(fresh)
    # The rows' recency (c's touch came after its row), then what was committed since.
    assert [key for key, _, _ in fresh.index.entries_by_recency()] == list("bcdfhae0z")
    fresh.close()


def test_a_failed_snapshot_is_reported_and_keeps_the_last_one(coordinator):
    commit(coordinator, "a")
    coordinator.snapshot()
    before = coordinator.layout.snapshot_path().read_bytes()
    commit(coordinator, "b")
    job = coordinator.begin_snapshot()
    job.step()
    coordinator.layout.snapshot_path().with_name("snapshot.tmp").unlink()  # rename fails
    job.finish_in_background()
    wait_until(lambda: job.done() is not None, 10, 0.01, what="the snapshot job's end")
    assert job.done() is False
    assert coordinator.layout.snapshot_path().read_bytes() == before


def test_start_up_evicts_down_to_a_smaller_max_size(coordinator):
    for key in "abcdef":
        commit(coordinator, key)
    coordinator.snapshot()
    smaller = restarted(coordinator, cache_max_size=6 * BLOCK)
    assert smaller.index.disk_bytes <= 6 * BLOCK
    assert "a" not in smaller.index and "f" in smaller.index
    assert_exact(smaller)
    smaller.close()


def test_sweep_removes_orphaned_stale_and_claimed_staging(coordinator):
    layout = coordinator.layout
    mine = StagedFile(layout)
    orphan = layout.staging / "999999999-00000000000000aa.part"
    orphan.write_bytes(b"x")
    claimed = layout.staging / f"{os.getpid()}-00000000000000bb.commit"
    claimed.write_bytes(b"x")
    old = StagedFile(layout)
    os.utime(layout.staging / old.name, (time.time() - 7200, time.time() - 7200))
    assert sweep_staging(layout, stale_after=3600) == 3
    assert (layout.staging / mine.name).exists()
    assert sweep_staging(layout, stale_after=3600, everything=True) == 1


def test_clean_snapshot_is_trusted_once(coordinator):
    for key in "abc":
        commit(coordinator, key)
    coordinator.handle(Touch(("a",)))
    coordinator.snapshot(clean=True)
    assert coordinator.layout.clean_mark_path().exists()
    fresh = restarted(coordinator)
    assert [key for key, _, _ in fresh.index.entries_by_recency()] == ["b", "c", "a"]
    # Start-up consumed the mark: if this run is killed, the snapshot is not clean.
    assert not fresh.layout.clean_mark_path().exists()
    assert load_snapshot(fresh.layout).clean is False
    fresh.close()


def test_overwriting_the_next_victim_replaces_it_in_place(coordinator):
    while coordinator.index.disk_bytes + 3 * BLOCK < coordinator.index.capacity:
        commit(coordinator, f"k{len(coordinator.index)}")
    path = coordinator.layout.object_path("k0")
    with open(path, "rb") as old:  # a reader holds the old version open
        reply = commit(coordinator, "k0", b"y" * 30000)  # k0 is least recently used
        assert reply.ok and reply.evicted >= 1
        assert old.read(8000) == DATA  # the reader's copy is intact
    assert "k0" in coordinator.index
    assert_exact(coordinator)


def test_old_two_level_layout_is_moved_up(coordinator):
    commit(coordinator, "moved", b"data")
    path = coordinator.layout.object_path("moved")
    nested = path.parent / path.name[2:4]
    nested.mkdir()
    os.rename(path, nested / path.name)
    fresh = restarted(coordinator)
    assert path.exists() and not nested.exists()
    assert "moved" in fresh.index
    fresh.close()


def test_a_snapshot_written_behind_holds_the_same_rows(tmp_path):
    """A thread writes the periodic snapshot's blocks: same file, and its errors reach finish."""
    loaded = []
    for behind in (False, True):
        layout = Layout(tmp_path / str(behind))
        layout.create()
        writer = SnapshotWriter(layout, 7, behind=behind)
        for start in range(0, 3000, 1000):
            keys = [f"k/{n:05}".encode() for n in range(start, start + 1000)]
            writer.add(keys, array("q", range(start + 1, start + 1001)), array("d", [1.5] * 1000))
        writer.finish()
        assert writer.backlog == 0
        snapshot = load_snapshot(layout)
        loaded.append((snapshot.keys, snapshot.charges, snapshot.seen, snapshot.sequence))
    assert loaded[0] == loaded[1] and len(loaded[0][0]) == 3000
    layout = Layout(tmp_path / "broken")
    layout.create()
    writer = SnapshotWriter(layout, 7, behind=True)
    os.close(writer._file.fileno())  # every write of the thread fails
    writer.add([b"k"], array("q", [1]), array("d", [1.0]))
    with pytest.raises(OSError):
        writer.finish()
    assert not layout.snapshot_path().exists()
    assert list(layout.snapshot_path().parent.iterdir()) == []
