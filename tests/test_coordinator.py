"""The coordinator's message handling and start-up, on real files (no sockets)."""

from __future__ import annotations

import os
import time
from dataclasses import replace

import pytest

from packrat import protocol
from packrat.config import Settings
from packrat.coordinator.recovery import rebuild, save_snapshot, sweep_staging
from packrat.coordinator.server import Coordinator
from packrat.storage import ObjectMeta, encode_trailer, read_object_meta


@pytest.fixture
def coordinator(tmp_path) -> Coordinator:
    settings = Settings(
        cache_root=tmp_path / "cache", cache_max_size=1100, cache_low_water=1.0, cache_policy="lru"
    )
    coord = Coordinator(settings)
    coord.load()
    return coord


def stage(coord: Coordinator, key: str, data: bytes) -> tuple[str, int]:
    """Write a staged object as a front end would; return its name and size."""
    meta = ObjectMeta(key, f"{key}.txt", "text/plain", len(data), "0" * 64, time.time())
    path, fd = coord.layout.new_staging_file()
    blob = data + encode_trailer(meta)
    os.write(fd, blob)
    os.close(fd)
    return path.name, len(blob)


def call(coord: Coordinator, **message) -> dict:
    return coord.handle(protocol.encode({"id": 1, **message}))


def commit(coord: Coordinator, key: str, data: bytes) -> dict:
    name, size = stage(coord, key, data)
    return call(coord, op="commit", key=key, staging=name, size=size)


def test_commit_publishes_the_object(coordinator):
    reply = commit(coordinator, "k", b"hello")
    assert reply["ok"] is True and reply["evicted"] == 0
    meta, size = read_object_meta(coordinator.layout.object_path("k"))
    assert meta.key == "k" and meta.filename == "k.txt"
    assert coordinator.index.size_of("k") == size
    assert list(coordinator.layout.staging.iterdir()) == []


def test_commit_evicts_least_recently_used(coordinator):
    for key in "abc":
        commit(coordinator, key, b"x" * 200)
    call(coordinator, op="touch", keys=["a"], misses=2)
    reply = commit(coordinator, "d", b"x" * 200)
    assert reply["evicted"] == 1
    assert not coordinator.layout.object_path("b").exists()
    assert "b" not in coordinator.index and "a" in coordinator.index
    stats = call(coordinator, op="stats")
    assert (stats["hits"], stats["misses"], stats["evictions"]) == (1, 2, 1)
    assert stats["bytes"] <= stats["max_size"]


def test_overwrite_keeps_accounting_exact(coordinator):
    commit(coordinator, "k", b"x" * 300)
    commit(coordinator, "k", b"y" * 100)
    on_disk = coordinator.layout.object_path("k").stat().st_size
    assert coordinator.index.used == on_disk
    assert len(coordinator.index) == 1


def test_larger_than_cache_is_refused_and_staging_removed(coordinator):
    reply = commit(coordinator, "big", b"x" * 2000)
    assert reply["ok"] is False and reply["error"] == "too_large"
    assert list(coordinator.layout.staging.iterdir()) == []
    assert not coordinator.layout.object_path("big").exists()


def test_stale_request_is_refused(coordinator):
    name, size = stage(coordinator, "late", b"x")
    reply = call(
        coordinator, op="commit", key="late", staging=name, size=size, deadline=time.time() - 1
    )
    assert reply["error"] == "stale"
    assert not coordinator.layout.object_path("late").exists()


def test_staging_name_cannot_escape(coordinator):
    for name in ("../../etc/passwd", "/etc/passwd", "x/../../y.part", ".part"):
        reply = call(coordinator, op="commit", key="k", staging=name, size=1)
        assert reply["ok"] is False and reply["error"] == "bad_request"


def test_size_mismatch_is_refused(coordinator):
    name, size = stage(coordinator, "k", b"data")
    reply = call(coordinator, op="commit", key="k", staging=name, size=size + 1)
    assert reply["error"] == "bad_request"


def test_delete(coordinator):
    commit(coordinator, "k", b"data")
    assert call(coordinator, op="delete", key="k")["ok"] is True
    assert not coordinator.layout.object_path("k").exists()
    assert call(coordinator, op="delete", key="k")["error"] == "not_found"


def test_bad_messages_are_answered_or_dropped(coordinator):
    assert coordinator.handle(b"\xc1garbage") is None
    assert call(coordinator, op="nope")["error"] == "bad_request"
    assert call(coordinator, op="commit")["error"] == "bad_request"


def test_restart_rebuilds_from_disk_with_snapshot_recency(tmp_path, coordinator):
    for key in "abcd":
        commit(coordinator, key, b"x" * 50)
    call(coordinator, op="touch", keys=["a"])
    save_snapshot(coordinator.layout, coordinator.index)
    # After the snapshot: one object added (adopted at start-up), one removed
    # behind the coordinator's back (dropped), one corrupted (removed).
    commit(coordinator, "e", b"x" * 50)
    coordinator.layout.object_path("b").unlink()
    coordinator.layout.object_path("c").write_bytes(b"not an object")
    fresh = Coordinator(coordinator.settings)
    report = rebuild(fresh.layout, fresh.index)
    assert (report.restored, report.adopted, report.dropped, report.corrupt) == (2, 1, 1, 1)
    assert not coordinator.layout.object_path("c").exists()
    order = [key for key, _, _ in fresh.index.entries_by_recency()]
    assert order == ["d", "a", "e"]


def test_start_up_evicts_down_to_a_smaller_max_size(coordinator):
    for key in "abc":
        commit(coordinator, key, b"x" * 150)
    save_snapshot(coordinator.layout, coordinator.index)
    smaller = Coordinator(replace(coordinator.settings, cache_max_size=700))
    smaller.load()
    assert smaller.index.used <= 700
    assert sorted(smaller.index.last_access) == ["b", "c"]
    assert not smaller.layout.object_path("a").exists()


def test_sweep_removes_orphaned_and_stale_staging(coordinator):
    layout = coordinator.layout
    mine, fd = layout.new_staging_file()
    os.close(fd)
    orphan = layout.staging / "999999999-dead.part"
    orphan.write_bytes(b"x")
    old, fd = layout.new_staging_file()
    os.close(fd)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert sweep_staging(layout, stale_after=3600) == 2
    assert mine.exists() and not orphan.exists() and not old.exists()
    assert sweep_staging(layout, stale_after=3600, everything=True) == 1


def test_clean_snapshot_is_trusted_once(coordinator):
    for key in "abc":
        commit(coordinator, key, b"x" * 50)
    call(coordinator, op="touch", keys=["a"])
    save_snapshot(coordinator.layout, coordinator.index, clean=True)
    mark = coordinator.layout.clean_mark_path()
    assert mark.exists()
    fresh = Coordinator(coordinator.settings)
    report = rebuild(fresh.layout, fresh.index)
    assert (report.restored, report.adopted, report.dropped) == (3, 0, 0)
    assert [key for key, _, _ in fresh.index.entries_by_recency()] == ["b", "c", "a"]
    # Start-up consumed the mark: if this run is killed, the snapshot is not clean.
    assert not mark.exists()


def test_overwriting_the_next_victim_replaces_it_in_place(coordinator):
    for key in "abc":
        commit(coordinator, key, b"x" * 200)
    path = coordinator.layout.object_path("a")
    with open(path, "rb") as old:  # a reader holds the old version open
        reply = commit(coordinator, "a", b"y" * 300)  # "a" is least recently used
        assert reply["ok"] is True and reply["evicted"] >= 1
        assert old.read(200) == b"x" * 200  # the reader's copy is intact
    assert read_object_meta(path)[0].size == 300
    layout, index = coordinator.layout, coordinator.index
    on_disk = sum(layout.object_path(k).stat().st_size for k in index.last_access)
    assert index.used == on_disk <= index.max_size
    assert "a" in index
