"""Listing keys by prefix from the coordinator's index: the contract of ``Index.list_keys``.

A sorted list of keys is the model: a page is the entries after the cursor,
in order, at most ``limit`` of them, and paging from the empty cursor with
each page's last entry lists everything exactly once.  Any index (today's
dict, or one kept in order) must pass these.
"""

from __future__ import annotations

import bisect

from hypothesis import given, settings
from hypothesis import strategies as st

from packrat.coordinator.index import Index

SEGMENTS = st.sampled_from(["a", "b", "ab", "a-b", "a.b", "b0", "z", "~", "A"])
KEYS = st.lists(st.lists(SEGMENTS, min_size=1, max_size=4).map("/".join), max_size=40)
PREFIXES = st.one_of(
    st.just(""),
    st.lists(SEGMENTS, min_size=1, max_size=3).map("/".join),
    st.lists(SEGMENTS, min_size=1, max_size=3).map(lambda s: "/".join(s) + "/"),
)


def index_of(keys: list[str]) -> Index:
    index = Index("lru", 1 << 40)
    for key in keys:
        index.insert(key, 4096)
    return index


def model_listing(keys: list[str], prefix: str, collections: bool) -> list[str]:
    """Every entry under ``prefix``, in order: walk a sorted list, skipping each
    collection's keys once it is listed."""
    ordered = sorted(set(keys))
    entries = []
    position = bisect.bisect_left(ordered, prefix)
    while position < len(ordered) and ordered[position].startswith(prefix):
        key = ordered[position]
        slash = key.find("/", len(prefix)) if collections else -1
        if slash < 0:
            entries.append(key)
            position += 1
        else:
            collection = key[: slash + 1]
            entries.append(collection)
            # past every key of the collection: '/' + 1 is '0'
            position = bisect.bisect_left(ordered, collection[:-1] + "0", position)
    return entries


@settings(max_examples=300, deadline=None)
@given(KEYS, PREFIXES, st.booleans(), st.integers(1, 7))
def test_paging_lists_every_entry_once_in_order(keys, prefix, collections, limit):
    index = index_of(keys)
    expected = model_listing(keys, prefix, collections)
    listed: list[str] = []
    after = ""
    for _ in range(len(expected) + 2):  # a listing that never ends fails, not hangs
        page, more = index.list_keys(prefix, after, limit, collections)
        assert len(page) <= limit
        listed += page
        if not more:
            break
        assert len(page) == limit
        after = page[-1]
    else:
        raise AssertionError(f"paging did not end: {listed}")
    assert listed == expected


@settings(max_examples=300, deadline=None)
@given(KEYS, PREFIXES, st.booleans(), st.integers(1, 7), st.text("ab/-.~z0", max_size=6))
def test_a_page_is_the_entries_after_any_cursor(keys, prefix, collections, limit, after):
    index = index_of(keys)
    rest = [entry for entry in model_listing(keys, prefix, collections) if entry > after]
    page, more = index.list_keys(prefix, after, limit, collections)
    assert page == rest[:limit]
    assert more == (len(rest) > limit)


def test_removed_and_evicted_keys_are_not_listed():
    index = index_of(["a/1", "a/2", "a/b/3", "b/4"])
    index.remove("a/2")
    assert index.list_keys("a/") == (["a/1", "a/b/3"], False)
    assert index.list_keys("a/", collections=True) == (["a/1", "a/b/"], False)
    assert index.list_keys("", limit=1, collections=True) == (["a/"], True)
    assert index.list_keys("", after="a/", collections=True) == (["b/"], False)
