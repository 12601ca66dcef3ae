"""``store.MetadataCache`` on real object files: what it keeps, and for how long.

The front end asks it for a small object's bytes first (``body``), and on
``None`` opens and reads the file whole, then has the cache check the bytes
against the object's digest (``verified``), which keeps them: ``get`` below
is that sequence (``frontend.objects.ObjectRequest._read``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from packrat.frontend.downloads import WHOLE_FILE
from packrat.store import Layout, MetadataCache, StagedFile, open_to_read
from packrat.store.reader import SETTLED_NS

SIZES = (0, 1, 100, 1000, 1024, 3000, 4096, 10_000)  # bytes of the pool's objects


def store(layout: Layout, key: str, data: bytes) -> None:
    """Publish ``data`` under ``key`` as the coordinator does: a sealed staging file,
    renamed over the object's name."""
    staged = StagedFile(layout)
    staged.write(data)
    staged.seal(key, "f.bin", "application/octet-stream")
    os.rename(layout.staging / staged.name, layout.object_path(key))


def get(cache: MetadataCache, key: str) -> bytes | None:
    """What a ``GET`` of ``key`` answers from: kept bytes, or the file read and checked;
    None when it is absent or corrupt."""
    kept = cache.body(key)
    if kept is not None:
        return kept[1]
    opened = open_to_read(cache.layout, key, WHOLE_FILE)
    if opened is None:
        return None
    fd, meta, info, data = opened
    os.close(fd)
    assert data is not None
    return bytes(data) if cache.verified(key, info, meta, data) else None


def new_layout(root: Path) -> Layout:
    layout = Layout(root)
    layout.create()
    layout.open_dirs()
    return layout


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Layout, dict[str, bytes]]]:
    """Objects of several sizes, settled (their change times ``SETTLED_NS`` old)."""
    layout = new_layout(tmp_path_factory.mktemp("pool"))
    objects = {f"k{n}/{size}": os.urandom(size) for n in range(3) for size in SIZES}
    for key, data in objects.items():
        store(layout, key, data)
    time.sleep(SETTLED_NS / 1e9 + 0.1)
    yield layout, objects


@settings(max_examples=200, deadline=None)
@given(
    budget=st.integers(min_value=0, max_value=30_000),
    entries=st.integers(min_value=1, max_value=10),
    reads=st.lists(st.tuples(st.integers(0, 23), st.booleans()), max_size=60),
)
def test_kept_bytes_are_the_files_and_stay_within_both_bounds(pool, budget, entries, reads):
    """Whatever the reads, the bytes kept are counted exactly, never pass the budget,
    and are the file's; the entries never pass their number; a small object just read
    whole is kept when it fits, and a ``HEAD`` keeps no bytes."""
    layout, objects = pool
    keys = list(objects)
    cache = MetadataCache(layout, size=entries, body_bytes=budget)
    for index, whole in reads:
        key = keys[index]
        if whole:
            assert get(cache, key) == objects[key]
            kept = cache.body(key)
            if budget > 0 and len(objects[key]) <= budget:
                assert kept is not None and kept[1] == objects[key]
            else:
                assert kept is None
        else:
            had = cache.body(key)
            meta = cache.read(key)
            assert meta is not None and meta.key == key and meta.size == len(objects[key])
            assert cache.body(key) == had  # a HEAD neither adds nor drops bytes
        bodies = [body for _, _, body in cache._entries.values() if body is not None]
        assert cache.kept_bytes == sum(map(len, bodies)) <= budget
        assert len(cache._entries) <= entries


def test_bytes_of_a_changed_removed_or_fresh_file_are_never_answered(tmp_path):
    """Kept bytes hold for the file they were read from: corrupted in place (times set
    back: only the change time tells), replaced, or removed, it is read again or
    missed; a file whose change time is not settled is not kept; 0 keeps nothing."""
    layout = new_layout(tmp_path)
    data = {key: os.urandom(2000) for key in ("corrupted", "replaced", "removed", "off")}
    for key, body in data.items():
        store(layout, key, body)
    time.sleep(SETTLED_NS / 1e9 + 0.1)
    cache = MetadataCache(layout)
    for key in ("corrupted", "replaced", "removed"):
        assert get(cache, key) == data[key]
        assert cache.body(key) is not None

    path = layout.object_path("corrupted")
    before = path.stat()
    with open(path, "r+b") as f:
        f.seek(1000)
        f.write(bytes([data["corrupted"][1000] ^ 1]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert cache.body("corrupted") is None
    assert get(cache, "corrupted") is None  # read again: it no longer matches its digest

    store(layout, "replaced", b"new bytes")
    assert cache.body("replaced") is None
    assert get(cache, "replaced") == b"new bytes"
    assert cache.body("replaced") is None  # too fresh to keep

    layout.object_path("removed").unlink()
    assert cache.body("removed") is None
    assert get(cache, "removed") is None

    off = MetadataCache(layout, body_bytes=0)
    assert get(off, "off") == data["off"]
    assert off.body("off") is None and off.kept_bytes == 0
