"""The HTTP benchmark harness (bench/http.py) measures what it says it measures.

Its CPU accounting is checked against real processes that burn a known
amount of CPU, and the harness itself runs in its quickest form against real
servers (nginx when installed, the naive Tornado server, Packrat) with wrk,
which CI installs (.ci/run); without wrk that test is skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parents[1]
sys.path.append(str(REPO))  # bench/ is not installed: its modules import as bench.<name>

from bench.http import SERVERS, Result, median_run, update_doc  # noqa: E402
from bench.procstat import Reading, snapshot  # noqa: E402

# A parent and its child each burn a known amount of CPU on "go" and say
# "burned"; on "reap" the parent waits for the child and says "reaped".
BURNER = r"""
import subprocess, sys, time

def burn(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass

def say(word):
    print(word, flush=True)

if sys.argv[1] == "child":
    say("ready")
    sys.stdin.readline()
    burn(0.3)
    say("burned")
    sys.stdin.readline()  # exits when the parent closes stdin
else:
    child = subprocess.Popen(
        [sys.executable, "-c", sys.argv[2], "child", sys.argv[2]],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    child.stdout.readline()
    say(f"ready {child.pid}")
    sys.stdin.readline()
    child.stdin.write("go\n"); child.stdin.flush()
    burn(0.2)
    child.stdout.readline()
    say("burned")
    sys.stdin.readline()
    child.stdin.close()
    child.wait()
    say("reaped")
    sys.stdin.readline()
"""


def test_tree_cpu_counts_children_live_and_reaped() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", BURNER, "parent", BURNER],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert parent.stdin and parent.stdout
    try:
        child = int(parent.stdout.readline().split()[1])
        start = snapshot()
        assert start.tree(parent.pid) == [parent.pid, child]

        parent.stdin.write("go\n")
        parent.stdin.flush()
        assert parent.stdout.readline() == "burned\n"
        burned = snapshot()
        spent = burned.tree_cpu(parent.pid) - start.tree_cpu(parent.pid)
        assert 0.45 <= spent <= 0.65, spent  # 0.2 s in the parent + 0.3 s in the child

        parent.stdin.write("reap\n")
        parent.stdin.flush()
        assert parent.stdout.readline() == "reaped\n"
        reaped = snapshot()
        assert reaped.tree(parent.pid) == [parent.pid]
        # The child's time moved into its parent's cutime: nothing is lost.
        kept = reaped.tree_cpu(parent.pid) - burned.tree_cpu(parent.pid)
        assert 0 <= kept <= 0.05, kept
    finally:
        parent.kill()
        parent.wait()


def test_machine_busy_includes_our_own_work() -> None:
    """What our processes burn shows in /proc/stat too, so "others" excludes it."""
    before = Reading.take()
    end = time.process_time() + 0.3
    while time.process_time() < end:
        pass
    after = Reading.take()
    ours = after.ours - before.ours
    assert ours >= 0.29 - 1e-9, ours  # 29 ticks of 10 ms; the sum of floats may fall short
    assert (after.busy - before.busy) >= ours - 0.03, (after.busy - before.busy, ours)


def test_update_doc_replaces_only_the_block_of_its_mode() -> None:
    text = "# Benchmarks\n\n## Profile notes\n\nhand-written\n"
    once = update_doc(text, "pinned", "table 1\n")
    assert once.startswith(text.rstrip("\n"))
    assert "table 1" in once
    twice = update_doc(once, "pinned", "table 2\n")
    assert "table 1" not in twice and twice.count("table 2") == 1
    both = update_doc(twice, "unpinned", "table 3\n")
    assert "table 2" in both and "table 3" in both and "hand-written" in both
    assert update_doc(both, "unpinned", "table 3\n") == both


def run_with_cpu(cpu: float) -> Result:
    return Result(
        server="Packrat",
        workload="GET 1 KiB",
        frontends=1,
        connections=16,
        requests=1000,
        seconds=3.0,
        payload=1024,
        p50=1.0,
        p90=2.0,
        p99=3.0,
        max=4.0,
        errors=0,
        cpu=cpu,
        wall=3.0,
        others=0.0,
    )


@given(st.lists(st.floats(min_value=0.001, max_value=10), min_size=1, max_size=9))
def test_median_run_is_one_real_run_with_the_median_cpu(cpus: list[float]) -> None:
    runs = [run_with_cpu(c) for c in cpus]
    chosen = median_run(runs)
    assert any(chosen is r for r in runs)  # all its numbers come from one run
    ordered = sorted(r.cpu_us for r in runs)
    assert chosen.cpu_us == ordered[(len(runs) - 1) // 2]
    assert chosen.spread == ((ordered[0], ordered[-1]) if len(runs) > 1 else None)


@pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)"
)
def test_quick_run_reports_every_column(tmp_path: Path) -> None:
    """The quickest real run: 1 s per server and workload, pinned, two front-end counts."""
    out = tmp_path / "bench.json"
    workloads = ["GET 1 KiB", "upload 1 KiB POST"]
    argv = [sys.executable, str(REPO / "bench" / "http.py"), "--quick", "--idle-wait", "0"]
    argv += ["--frontends", "1", "2", "--no-write", "--json", str(out), "--only", *workloads]
    pin = len(os.sched_getaffinity(0)) >= 2
    if pin:
        argv.append("--pin")
    done = subprocess.run(argv, capture_output=True, text=True, timeout=150, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["mode"] == ("pinned" if pin else "unpinned")

    servers = {r["server"] for r in report["results"]}
    assert servers >= {"bare httptools", "bare Tornado", "naive Tornado", "Packrat"}
    assert servers <= set(SERVERS)
    assert len(report["results"]) == 2 * len(workloads) * len(servers)
    cores = len(report["server_cpus"] or os.sched_getaffinity(0))
    for r in report["results"]:
        assert r["workload"] in workloads and r["frontends"] in (1, 2)
        assert r["requests"] > 0 and r["errors"] == 0, r
        assert r["rate"] == pytest.approx(r["requests"] / r["seconds"])
        assert r["mb_s"] == pytest.approx(r["rate"] * 1024 / 1e6)
        # Real work was counted, and no more than the servers' cores can give.
        assert 1 <= r["cpu_us"] <= 100_000, r
        assert 1 <= r["cpu_percent"] <= 100 * cores + 10, r

    markdown = report["markdown"]
    mode = "pinned: servers on CPU" if pin else "unpinned: servers and wrk share"
    assert f"- mode: {mode}" in markdown
    for header in (
        "| workload | conns | nginx µs/req | nginx logged µs/req | bare httptools µs/req"
        " | bare Tornado µs/req | naive Tornado µs/req | Packrat µs/req | µs/req Packrat ÷ nginx"
        " | µs/req Packrat ÷ nginx logged | µs/req Packrat ÷ bare httptools"
        " | µs/req Packrat ÷ naive | req/s Packrat ÷ nginx | req/s Packrat ÷ naive |",
        "| workload | server | req/s | MB/s | p50 ms | p99 ms | CPU % | CPU µs/req | errors"
        " | others % |",
    ):
        assert markdown.count(header) == 2  # one table of each per front-end count
    for frontends in (1, 2):
        assert f"#### Packrat with {frontends} front end(s)" in markdown
    for workload in workloads:
        assert markdown.count(f"| {workload} | {'Packrat'} |") == 2


@pytest.mark.parametrize("workload", ["HEAD", "upload 1 KiB POST"])
def test_frontend_instructions_feeds_its_requests(workload: str) -> None:
    """bench/frontend_instructions.py's in-process front end, run as callgrind runs it
    (without callgrind): a real coordinator, the objects loaded, every answer read
    being a 200 (the script exits with 1 on any other)."""
    argv = [sys.executable, str(REPO / "bench" / "frontend_instructions.py")]
    done = subprocess.run(
        [*argv, "--feed", workload, "20"], capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stdout + done.stderr
