"""Replay semantics, ``packrat simulate``, and the cross-check against libCacheSim.

The cross-check replays the NASA and webcachesim traces (from
``../shared/traces/`` when present, else the slices in ``tests/data``) at 1,
5, 10 and 25 % of their unique bytes, and requires our FIFO-family policies to
land within 0.5 percentage points of libCacheSim's same-named algorithm.
It replays with ``admission="policy"``, libCacheSim's semantics (S3-FIFO
refuses objects as large as its probation queue); the default,
``admission="all"``, stores every object that fits, as the server does.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from packrat.simulator import reference
from packrat.simulator.charges import BytesCharge, ServerCharge, block_size
from packrat.simulator.cli import main
from packrat.simulator.replay import replay
from packrat.simulator.traces import read_trace, unique_bytes
from packrat.store.accounting import expected_charge

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


def test_admission_all_stores_what_the_policy_would_refuse() -> None:
    # 15 bytes is more than s3fifo's probation queue (10 % of 100): libCacheSim
    # refuses it, the server stores it.
    requests = [("big", 15), ("big", 15)]
    assert replay(requests, "s3fifo", capacity=100).misses == 1
    assert replay(requests, "s3fifo", capacity=100, admission="all").misses == 1
    refused = replay(requests, "s3fifo", capacity=100, admission="policy")
    assert refused.misses == 2 and refused.admission == "policy"


def test_server_charge_is_what_the_server_index_does() -> None:
    """With the server's charges, the simulator drives a policy exactly like the
    coordinator's Index of the same ``max_size``."""
    from packrat.coordinator.index import Index

    requests = [(str(k), s) for k, s in read_trace(DATA / "request_head5000.trace.xz")]
    charge = ServerCharge()
    max_size = unique_bytes(requests, charge) // 20
    for name in ("lru", "s3fifo", "s3gdsf"):
        index = Index(name, max_size, low_water=0.95)
        misses = 0
        for key, size in requests:
            if key in index:
                index.touch([key])
                continue
            misses += 1
            index.make_room(charge(key, size))
            index.insert(key, charge(key, size))
        ours = replay(requests, name, max_size, low_water=0.95, charge=charge)
        assert (ours.misses, ours.charge) == (misses, "server"), name


def test_server_charge_counts_blocks_trailer_and_index_row() -> None:
    charge = ServerCharge()
    # A 1-byte object takes a 4 KiB block and its snapshot rows.
    assert charge("a/b", 1) == expected_charge(1, "a/b") == 4096 + 2 * (64 + 3)
    # The trailer (key, file name, type, digests) pushes a full block into a second one.
    assert charge("a/b", 4096) == 8192 + 2 * (64 + 3)
    assert charge("a/b", 4000) == 8192 + 2 * (64 + 3)
    # Larger file-system blocks round further; smaller ones change nothing.
    assert ServerCharge(65536)("a/b", 1) == 65536 + 2 * (64 + 3)
    assert ServerCharge(1024)("a/b", 1) == charge("a/b", 1)
    assert BytesCharge()("a/b", 1) == 1


def test_block_size_is_the_file_systems(tmp_path: Path) -> None:
    import os

    assert block_size(tmp_path) == os.statvfs(tmp_path).f_frsize
    assert block_size(tmp_path / "not" / "made" / "yet") == os.statvfs(tmp_path).f_frsize


def test_small_objects_hit_less_than_their_data_bytes_promise() -> None:
    """Objects of a few KiB take whole blocks: a cache as large as their data bytes
    holds far fewer of them than bytes alone would say."""
    requests = [(f"k{i % 400}", 100 + (i % 400) * 7) for i in range(4000)]
    max_size = unique_bytes(requests)
    by_bytes = replay(requests, "lru", max_size, charge=BytesCharge())
    by_server = replay(requests, "lru", max_size, charge=ServerCharge())
    assert by_bytes.misses == 400  # every object fits
    assert by_server.misses > 2 * by_bytes.misses


def test_unknown_admission_is_refused() -> None:
    with pytest.raises(ValueError):
        replay([("a", 1)], "lru", capacity=10, admission="some")


def test_low_water_evicts_further() -> None:
    requests = [(i % 12, 10) for i in range(120)]
    full = replay(requests, "lru", capacity=100)
    culled = replay(requests, "lru", capacity=100, low_water=0.5)
    assert culled.misses >= full.misses


def test_json_lines_carry_every_field(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--trace", str(DATA / "nasa_19950801_head3000.tsv"), "--policy", "lru"]
    assert main([*argv, "--policy", "sieve", "--size", "10%", "--size", "1M", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # 10 % of what the distinct objects take as the server charges them
    assert [(r["policy"], r["size_bytes"]) for r in lines] == [
        ("lru", 2_737_417),
        ("sieve", 2_737_417),
        ("lru", 2**20),
        ("sieve", 2**20),
    ]
    assert set(lines[0]) == {
        "policy",
        "admission",
        "charge",
        "size_bytes",
        "requests",
        "object_miss_ratio",
        "byte_miss_ratio",
        "requests_per_second",
    }
    assert lines[0]["requests"] == 2584
    assert (lines[0]["admission"], lines[0]["charge"]) == ("all", "server")
    assert main([*argv, "--size", "10%", "--json", "--charge", "bytes"]) == 0
    by_bytes = json.loads(capsys.readouterr().out)
    assert (by_bytes["size_bytes"], by_bytes["charge"]) == (2_586_471, "bytes")


def test_admission_option(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--trace", str(DATA / "nasa_19950801_head3000.tsv"), "--policy", "s3fifo", "--json"]
    assert main([*argv, "--size", "1%", "--admission", "policy"]) == 0
    refused = json.loads(capsys.readouterr().out)
    assert main([*argv, "--size", "1%"]) == 0
    stored = json.loads(capsys.readouterr().out)
    assert (refused["admission"], stored["admission"]) == ("policy", "all")
    assert refused["object_miss_ratio"] != stored["object_miss_ratio"]


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


def test_plot_without_matplotlib_says_so_before_replaying(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed
    trace = str(DATA / "nasa_19950801_head3000.tsv")
    with pytest.raises(SystemExit) as exited:
        main(["--trace", trace, "--policy", "lru", "--plot", str(tmp_path / "out.png")])
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and out == ""
    assert "--plot needs matplotlib: pip install matplotlib" in err
    assert "Traceback" not in err


def test_bad_arguments_exit_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    trace = str(DATA / "nasa_19950801_head3000.tsv")
    for argv in (["--policy", "nope"], ["--size", "big"], ["--low-water", "0"]):
        with pytest.raises(SystemExit) as exited:
            main(["--trace", trace, *argv])
        assert exited.value.code == 2
    assert "--low-water must be more than 0 and at most 1" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("name", "text", "error"),
    [
        ("log.csv", "time,key,size\n1,a,10\n2,b,ten\n", "line 3 is not csv 'time,key,size'"),
        ("log.csv", "key size\na 10\n", "line 1 is not csv 'time,key,size'"),
        ("log.csv", "time,key,size\n", "no requests read as csv 'time,key,size'"),
        ("log.csv", "1,a,1\n2,b,\u00b2\n", "line 2 is not csv"),
        ("log.txt", "1,a,10\n", "line 1 is not webcachesim text: 'time id size'"),
        ("log.txt", "1 7 10\n2 \u00b2 10\n", "line 2 is not webcachesim text"),
        ("log.txt", "1 --7 10\n", "line 1 is not webcachesim text"),
        ("log.tsv", "a header\nnothing\tof\tNASA's\n", "no requests read as NASA-HTTP tsv"),
    ],
)
def test_a_trace_in_another_format_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, error: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(SystemExit) as exited:
        main(["--trace", str(path)])
    out, err = capsys.readouterr()
    assert exited.value.code == 2 and out == ""
    assert error in err, err


def test_a_csv_trace_reads_with_or_without_its_header(tmp_path: Path) -> None:
    with_header = tmp_path / "a.csv"
    with_header.write_text("time,key,size\n1,a,10\n2,b c,20\n3,a,10\n")
    bare = tmp_path / "b.csv"
    bare.write_text("1,a,10\n2,b c,20\n3,a,10\n")
    assert read_trace(with_header) == read_trace(bare) == [("a", 10), ("b c", 20), ("a", 10)]


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
    ours = replay(requests, policy, capacity, admission="policy")
    theirs = reference.run(path, policy, capacity, timeout=60)
    assert theirs is not None, "libCacheSim failed or timed out"
    assert ours.object_miss_ratio == pytest.approx(theirs[0], abs=0.005)
    assert ours.byte_miss_ratio == pytest.approx(theirs[1], abs=0.005)
