"""Listing keys by prefix from the coordinator's index: the contract of ``Index.list_keys``.

A sorted list of keys is the model: a page is the entries after the cursor,
in order, at most ``limit`` of them, and paging from the empty cursor with
each page's last entry lists everything exactly once.  Any index (today's
dict, or one kept in order) must pass these.
"""

from __future__ import annotations

import bisect
import hashlib
import time

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from packrat.coordinator import protocol
from packrat.coordinator.index import Index
from packrat.coordinator.protocol import Commit, ListKeys, Purge
from packrat.coordinator.service import Coordinator
from packrat.core.settings import Settings
from packrat.store import StagedFile, open_key

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


@pytest.fixture
def coordinator(tmp_path) -> Coordinator:
    coord = Coordinator(Settings(cache_root=tmp_path / "cache", cache_max_size=1 << 24))
    coord.load()
    yield coord
    coord.close()


def store(coord: Coordinator, key: str) -> None:
    staged = StagedFile(coord.layout)
    staged.write(key.encode())
    _, file_size = staged.seal(key, "f", "text/plain")
    assert coord.handle(Commit(1, time.time() + 5, key, staged.name, file_size)).ok


def ask(coord: Coordinator, request: ListKeys | Purge) -> protocol.Reply:
    """Through the wire format both ways, as a front end's request and reply go."""
    reply = coord.handle(protocol.decode_request(protocol.encode(request)))
    assert reply is not None
    return protocol.decode_reply(protocol.encode(reply))


def test_the_coordinator_lists_pages_and_purges_in_batches(coordinator):
    keys = [f"ci/{n:03}" for n in range(7)] + ["ci/x/1", "other"]
    for key in keys:
        store(coordinator, key)
    deadline = time.time() + 5
    page = ask(coordinator, ListKeys(2, deadline, "ci/", "ci/002", 3, collections=True))
    assert page.keys == ("ci/003", "ci/004", "ci/005") and page.more
    last = ask(coordinator, ListKeys(3, deadline, "ci/", "ci/005", 3, collections=True))
    assert last.keys == ("ci/006", "ci/x/") and not last.more

    removed: list[str] = []
    for _ in range(4):  # 8 keys in batches of 3: three batches, the last says no more
        batch = ask(coordinator, Purge(4, deadline, "ci/", 3))
        removed += batch.keys
        if not batch.more:
            break
    assert sorted(removed) == sorted(keys[:-1])
    assert ask(coordinator, ListKeys(5, deadline, "")).keys == ("other",)
    for key in removed:  # gone from the disk too, and from the status page
        assert open_key(coordinator.layout, key) is None
    assert [u["key"] for u in coordinator.stats()["recent_uploads"]] == ["other"]
    again = ask(coordinator, Purge(6, deadline, "ci/", 3))  # a rerun: nothing left, no error
    assert again.ok and again.keys == () and not again.more


# -- over HTTP: GET and DELETE /api/keys, and who may see key names -----------------

READER = "reader-token-0123456789"
WRITER = "writer-token-0123456789"
LISTER = "lister-token-0123456789"
ADMIN = "admin-token-0123456789"  # in write_tokens and list_tokens


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def test_pages_of_keys_with_their_details_and_a_purge_in_batches(packrat_server):
    url = packrat_server.url
    keys = [f"ci/{n}" for n in range(5)] + ["ci/sub/a", "ci/sub/b", "cj"]
    for key in keys:
        assert requests.put(f"{url}/{key}", data=key.encode(), timeout=10).status_code == 200
    listed, after = [], ""
    for _ in range(5):
        reply = requests.get(
            f"{url}/api/keys", params={"prefix": "ci/", "after": after, "limit": 2}, timeout=10
        )
        assert reply.status_code == 200, reply.text
        page = reply.json()
        assert len(page["keys"]) <= 2 and page["collections"] == []
        listed += page["keys"]
        if page["next"] is None:
            break
        after = page["next"]
    assert [entry["key"] for entry in listed] == sorted(keys[:-1])
    first = listed[0]
    assert first["size"] == 4 and first["sha256"] == hashlib.sha256(b"ci/0").hexdigest()
    assert first["content_type"] and first["stored_at"] > 0

    rolled = requests.get(
        f"{url}/api/keys", params={"prefix": "ci/", "delimiter": "/"}, timeout=10
    ).json()
    assert [e["key"] for e in rolled["keys"]] == [f"ci/{n}" for n in range(5)]
    assert rolled["collections"] == ["ci/sub/"] and rolled["next"] is None

    for params, error in (
        ({"limit": 0}, "bad_request"),
        ({"limit": protocol.MAX_PAGE + 1}, "bad_request"),
        ({"limit": "x"}, "bad_request"),
        ({"limit": "\u00b2"}, "bad_request"),  # a digit to str.isdigit, not to int()
        ({"limit": "9" * 5000}, "bad_request"),
        ({"prefix": "/ci"}, "invalid_key"),
        ({"prefix": "a//b"}, "invalid_key"),
        ({"delimiter": "-"}, "bad_request"),
    ):
        reply = requests.get(f"{url}/api/keys", params=params, timeout=10)
        assert (reply.status_code, reply.json()["error"]) == (400, error), params
    reply = requests.delete(f"{url}/api/keys", timeout=10)  # no prefix: no purge of everything
    assert (reply.status_code, reply.json()["error"]) == (400, "missing_field")

    removed = []
    for _ in range(5):
        reply = requests.delete(f"{url}/api/keys", params={"prefix": "ci/", "limit": 3}, timeout=10)
        assert reply.status_code == 200, reply.text
        removed += reply.json()["keys"]
        if not reply.json()["more"]:
            break
    assert sorted(removed) == sorted(keys[:-1])
    assert [packrat_server.exists(key) for key in keys] == [False] * 7 + [True]
    everything = requests.get(f"{url}/api/keys", timeout=10).json()
    assert [e["key"] for e in everything["keys"]] == ["cj"]


def test_key_names_need_the_list_right_even_with_anonymous_read(make_server):
    server = make_server(
        wait=False,
        auth={
            "enabled": "true",
            "anonymous_read": "true",
            "read_tokens": READER,
            "write_tokens": f"{WRITER} {ADMIN}",
            "list_tokens": f"{LISTER} {ADMIN}",
        },
    )
    server.wait_ready()
    url = server.url
    key = "secret/unguessable-0123456789abcdef"
    assert requests.put(f"{url}/{key}", data=b"x", headers=bearer(WRITER), timeout=10).ok

    for token, status in ((None, 401), (READER, 403), (WRITER, 403), (LISTER, 200), (ADMIN, 200)):
        reply = requests.get(f"{url}/api/keys", headers=bearer(token), timeout=10)
        assert reply.status_code == status, (token, reply.text)
        recent = server.stats(token)["recent_uploads"] if token != WRITER else None
        page = requests.get(url + "/", headers=bearer(token), timeout=10).text
        if status == 200:
            assert reply.json()["keys"][0]["key"] == key
            assert recent[0]["key"] == key and key in page
        else:  # anonymous_read shows the figures, never the names
            assert recent is None and key not in page
            assert "shown only to credentials with the list right" in page
    assert requests.get(f"{url}/{key}", timeout=10).content == b"x"  # reading still works

    purge = {"prefix": "secret/"}
    for token, status in ((None, 401), (READER, 403), (WRITER, 403), (LISTER, 403)):
        reply = requests.delete(f"{url}/api/keys", params=purge, headers=bearer(token), timeout=10)
        assert reply.status_code == status, token
    assert server.exists(key)
    reply = requests.delete(f"{url}/api/keys", params=purge, headers=bearer(ADMIN), timeout=10)
    assert reply.status_code == 200 and reply.json()["keys"] == [key]
    assert not server.exists(key)
