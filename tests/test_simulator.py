"""Replay semantics, ``packrat simulate``, and the cross-check against libCacheSim.

The cross-check replays the NASA and webcachesim traces (from
``../shared/traces/`` when present, else the slices in ``tests/data``) at 1,
5, 10 and 25 % of their unique bytes, and requires our FIFO-family policies to
land within 0.5 percentage points of libCacheSim's same-named algorithm.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packrat.simulator import reference
from packrat.simulator.cli import main
from packrat.simulator.replay import replay
from packrat.simulator.traces import read_trace, unique_bytes

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "traces"
TRACES = {
    "nasa": (SHARED / "nasa_19950801.tsv", DATA / "nasa_19950801_head3000.tsv"),
    "web": (SHARED / "request.trace.xz", DATA / "request_head5000.trace.xz"),
}


def test_hits_misses_and_bytes_are_counted() -> None:
    requests = [("a", 10), ("b", 20), ("a", 10), ("c", 30), ("b", 20)]
    result = replay(requests, "lru", capacity=40)
    # a, b miss; a hits; c evicts b (least recently used), so b misses again
    assert result.requests == 5 and result.misses == 4
    assert result.bytes_requested == 90 and result.bytes_missed == 80
    assert result.object_miss_ratio == pytest.approx(0.8)
    assert result.byte_miss_ratio == pytest.approx(80 / 90)


def test_objects_larger_than_the_cache_always_miss() -> None:
    result = replay([("big", 100), ("big", 100)], "lru", capacity=50)
    assert result.misses == 2


def test_a_size_change_is_an_overwrite() -> None:
    result = replay([("a", 10), ("a", 12), ("a", 12)], "lru", capacity=100)
    assert result.misses == 2


def test_low_water_evicts_further() -> None:
    requests = [(i % 12, 10) for i in range(120)]
    full = replay(requests, "lru", capacity=100)
    culled = replay(requests, "lru", capacity=100, low_water=0.5)
    assert culled.misses >= full.misses


def test_json_lines_carry_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--trace", str(DATA / "nasa_19950801_head3000.tsv"), "--policy", "lru"]
    assert main([*argv, "--policy", "sieve", "--size", "10%", "--size", "1M", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["policy"], r["size_bytes"]) for r in lines] == [
        ("lru", 2_586_471),
        ("sieve", 2_586_471),
        ("lru", 2**20),
        ("sieve", 2**20),
    ]
    assert set(lines[0]) == {
        "policy",
        "size_bytes",
        "requests",
        "object_miss_ratio",
        "byte_miss_ratio",
        "requests_per_second",
    }
    assert lines[0]["requests"] == 2584


def test_table_compares_all_policies(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--trace", str(DATA / "request_head5000.trace.xz"), "--size", "5%"]) == 0
    out = capsys.readouterr().out
    for name in ("lru", "gdsf", "s3fifo", "sieve", "s3gdsf"):
        assert f"\n{name} " in out


def test_plot_writes_a_png(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    png = tmp_path / "out.png"
    trace = str(DATA / "nasa_19950801_head3000.tsv")
    assert main(["--trace", trace, "--policy", "lru", "--plot", str(png), "--json"]) == 0
    assert png.read_bytes().startswith(b"\x89PNG")


def test_bad_arguments_exit_with_usage() -> None:
    with pytest.raises(SystemExit):
        main(["--trace", str(DATA / "nasa_19950801_head3000.tsv"), "--policy", "nope"])
    with pytest.raises(SystemExit):
        main(["--trace", str(DATA / "nasa_19950801_head3000.tsv"), "--size", "big"])


@pytest.fixture(scope="module", params=sorted(TRACES))
def trace(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    full, piece = TRACES[request.param]
    requests = read_trace(full if full.exists() else piece)
    path = tmp_path_factory.mktemp(request.param) / "trace.oracleGeneral.bin"
    reference.write_oracle_general(requests, path)
    return requests, path


@pytest.mark.parametrize("fraction", [0.01, 0.05, 0.10, 0.25])
@pytest.mark.parametrize("policy", ["lru", "fifo", "sieve", "s3fifo"])
def test_matches_libcachesim_within_half_a_point(trace, policy: str, fraction: float) -> None:
    requests, path = trace
    capacity = int(unique_bytes(requests) * fraction)
    ours = replay(requests, policy, capacity)
    theirs = reference.run(path, policy, capacity, timeout=60)
    assert theirs is not None, "libCacheSim failed or timed out"
    assert ours.object_miss_ratio == pytest.approx(theirs[0], abs=0.005)
    assert ours.byte_miss_ratio == pytest.approx(theirs[1], abs=0.005)
