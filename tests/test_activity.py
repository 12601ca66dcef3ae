"""The coordinator's activity figures: history buckets, recent uploads, front ends seen."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from packrat.coordinator.activity import (
    RECENT_UPLOADS,
    SILENT_AFTER,
    Activity,
    History,
)
from packrat.coordinator.protocol import Commit, Delete, Stats, Touch
from packrat.coordinator.service import Coordinator
from packrat.core.settings import Settings
from packrat.store import StagedFile

DAY = 86400.0
events = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=3 * 3600),  # seconds after the start
        st.sampled_from(History.FIELDS),
        st.integers(min_value=0, max_value=10**9),
    ),
    max_size=200,
)


@given(events, st.floats(min_value=0, max_value=3 * 3600))
def test_history_keeps_exactly_the_last_hour(added, later):
    """Oldest first, one bucket a minute, ending at now's; each total is what was
    added in those minutes, whatever the order and gaps of the additions."""
    history = History()
    added = sorted(added)
    for at, name, amount in added:
        history.add(DAY + at, **{name: amount})
    now = DAY + (added[-1][0] if added else 0) + later
    rows = history.buckets(now)
    assert len(rows) == 60
    assert [row["start"] for row in rows] == [
        int(now // 60) * 60 - 60 * n for n in range(59, -1, -1)
    ]
    first = rows[0]["start"]
    for name in History.FIELDS:
        expected = sum(amount for at, n, amount in added if n == name and DAY + at >= first)
        assert sum(row[name] for row in rows) == expected, name


def test_history_adds_a_clock_step_back_to_the_newest_bucket():
    history = History()
    history.add(DAY + 125, hits=1)
    history.add(DAY + 30, hits=2)  # the wall clock stepped back two minutes
    rows = history.buckets(DAY + 130)
    assert rows[-1]["hits"] == 3 and sum(row["hits"] for row in rows) == 3


def test_recent_uploads_are_the_latest_still_stored():
    activity = Activity()
    for n in range(RECENT_UPLOADS + 3):
        activity.uploaded(DAY + n, f"k{n}", n, f"f{n}")
    activity.uploaded(DAY + 50, "k5", 55, "again")  # an overwrite moves to the front
    activity.removed("k12")
    keys = [row["key"] for row in activity.recent_uploads()]
    assert keys == ["k5", "k11", "k10", "k9", "k8", "k7", "k6", "k4", "k3"]
    assert activity.recent_uploads()[0] == {
        "key": "k5",
        "size": 55,
        "filename": "again",
        "stored_at": DAY + 50,
    }


def test_front_ends_are_running_until_silent_and_a_new_pid_replaces_the_old():
    activity = Activity()
    activity.reads(DAY, 1, 0, 0, 0, number=0, pid=100)
    activity.reads(DAY, 0, 0, 0, 0, number=1, pid=101)
    activity.reads(DAY, 5, 0, 0, 0, number=9, pid=0)  # not a front end (a tool)
    activity.reads(DAY + 10, 0, 0, 0, 0, number=1, pid=101)
    rows = activity.frontend_rows(DAY + SILENT_AFTER)
    assert [(r["number"], r["pid"], r["state"]) for r in rows] == [
        (0, 100, "running"),
        (1, 101, "running"),
    ]
    rows = activity.frontend_rows(DAY + SILENT_AFTER + 1)
    assert [r["state"] for r in rows] == ["silent", "running"]
    activity.reads(DAY + 20, 0, 0, 0, 0, number=0, pid=200)  # restarted
    rows = activity.frontend_rows(DAY + 20, running=lambda pid: pid != 100)
    assert [r["pid"] for r in rows] == [200, 101] and rows[0]["last_seen_seconds"] == 0


def test_coordinator_stats_follow_commits_reads_deletes_and_evictions(tmp_path):
    coordinator = Coordinator(
        Settings(cache_root=tmp_path, cache_max_size=40 * 4096, cache_policy="lru")
    )
    coordinator.load()
    try:
        for n in range(30):
            staged = StagedFile(coordinator.layout)
            staged.write(b"x" * 5000)
            meta, file_size = staged.seal(f"k{n}", f"k{n}.bin", "text/plain")
            commit = Commit(
                n + 1, time.time() + 5, f"k{n}", staged.name, file_size, meta.size, meta.filename
            )
            assert coordinator.handle(commit).ok
        coordinator.handle(
            Touch(("k29", "k28"), misses=3, bytes_in=7, bytes_out=9, number=1, pid=42)
        )
        coordinator.handle(Delete(99, time.time() + 5, "k29"))
        changes = coordinator.changes
        coordinator.handle(Touch((), number=1, pid=42))  # a heartbeat: nothing to snapshot
        assert coordinator.changes == changes
        stats = coordinator.handle(Stats(100, time.time() + 5)).stats
    finally:
        coordinator.close()
    assert stats["evictions"] > 0 and stats["commits"] == 30
    recent = [row["key"] for row in stats["recent_uploads"]]
    assert recent == [f"k{n}" for n in range(28, 19, -1)]  # k29 deleted
    assert all(key in coordinator.index for key in recent)
    assert stats["recent_uploads"][0]["size"] == 5000
    assert stats["recent_uploads"][0]["filename"] == "k28.bin"
    assert stats["hit_ratio"] == 2 / 5
    assert stats["processes"][1] == {
        "role": "frontend",
        "number": 1,
        "pid": 42,
        "last_seen_seconds": stats["processes"][1]["last_seen_seconds"],
        "state": "running",
    }
    buckets = stats["history"]["buckets"]
    totals = {name: sum(b[name] for b in buckets) for name in History.FIELDS}
    assert totals == {"hits": 2, "misses": 3, "uploads": 30, "bytes_in": 7, "bytes_out": 9}


def test_front_end_rows_forget_a_replaced_process_but_show_two_at_once():
    activity = Activity()
    running = {101, 102, 200}
    activity.reads(DAY, 0, 0, 0, 0, number=0, pid=101)
    activity.reads(DAY, 0, 0, 0, 0, number=1, pid=200)
    # Front end 0 restarted: 102 replaces 101, which has exited.
    running.discard(101)
    activity.reads(DAY + 1, 0, 0, 0, 0, number=0, pid=102)
    rows = activity.frontend_rows(DAY + 2, running.__contains__)
    assert [(r["number"], r["pid"], r["state"]) for r in rows] == [
        (0, 102, "running"),
        (1, 200, "running"),
    ]
    # A second process under number 1 while the first still runs: both listed.
    activity.reads(DAY + 3, 0, 0, 0, 0, number=1, pid=201)
    running.add(201)
    rows = activity.frontend_rows(DAY + 4, running.__contains__)
    assert [(r["number"], r["pid"]) for r in rows] == [(0, 102), (1, 200), (1, 201)]
    # One not heard of for SILENT_AFTER stays listed, as silent, while it is the newest.
    rows = activity.frontend_rows(DAY + 4 + SILENT_AFTER + 1, lambda pid: False)
    assert [(r["number"], r["pid"], r["state"]) for r in rows] == [
        (0, 102, "silent"),
        (1, 201, "silent"),
    ]
