"""Trace readers read each format the way the reference figures do."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from packrat.simulator.reference import write_oracle_general
from packrat.simulator.sizes import parse_size
from packrat.simulator.traces import guess_format, read_trace, unique_bytes

DATA = Path(__file__).parent / "data"
NASA = DATA / "nasa_19950801_head3000.tsv"
WEB = DATA / "request_head5000.trace.xz"


def test_nasa_slice_keeps_successful_gets_with_a_body() -> None:
    requests = read_trace(NASA)
    assert len(requests) == 2584
    assert len({key for key, _ in requests}) == 555
    assert unique_bytes(requests) == 25_864_715
    assert requests[0] == ("/images/launch-logo.gif", 1713)


def test_nasa_object_size_is_the_largest_logged(tmp_path: Path) -> None:
    log = tmp_path / "log.tsv"
    log.write_text(
        "host\tlogname\ttime\tmethod\turl\tresponse\tbytes\treferer\tuseragent\n"
        "h\t-\t1\tGET\t/a\t200\t100\n"
        "h\t-\t2\tGET\t/a\t200\t40\n"
        "h\t-\t3\tGET\t/a\t304\t0\n"
        "h\t-\t4\tHEAD\t/a\t200\t100\n"
        "h\t-\t5\tGET\t/b\t404\t300\n"
        "h\t-\t6\tGET\t/c\t200\t-\n"
    )
    assert read_trace(log, "nasa") == [("/a", 100), ("/a", 100)]


def test_webcachesim_id_and_size_make_one_object(tmp_path: Path) -> None:
    trace = tmp_path / "t.trace"
    trace.write_text("1 7 100\n2 7 100\n3 7 250\n")
    requests = read_trace(trace, "webcachesim")
    assert requests == [((7, 100), 100), ((7, 100), 100), ((7, 250), 250)]
    assert unique_bytes(requests) == 350


def test_webcachesim_slice_reads_through_xz() -> None:
    requests = read_trace(WEB)
    assert len(requests) == 5000
    assert unique_bytes(requests) == 19_042_716


def test_oracle_general_round_trip(tmp_path: Path) -> None:
    requests = read_trace(NASA)[:50]
    path = tmp_path / "nasa.oracleGeneral.bin"
    write_oracle_general(requests, path)
    records = list(struct.iter_unpack("<IQIq", path.read_bytes()))
    ids = {key: obj_id for (key, _), (_, obj_id, _, _) in zip(requests, records, strict=True)}
    assert len(set(ids.values())) == len(ids)
    again = read_trace(path)
    assert [size for _, size in again] == [size for _, size in requests]
    # next_access_vtime points at the 1-based index of the key's next request
    for i, (_, obj_id, _, nxt) in enumerate(records):
        if nxt != -1:
            assert records[nxt - 1][1] == obj_id and nxt > i + 1


def test_csv_skips_its_header(tmp_path: Path) -> None:
    trace = tmp_path / "t.csv"
    trace.write_text("time,key,size\n1,a,10\n2,b,20\n")
    assert read_trace(trace) == [("a", 10), ("b", 20)]


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("x.oracleGeneral.bin", "oracleGeneral"),
        ("nasa.tsv", "nasa"),
        ("t.csv.gz", "csv"),
        ("request.trace.xz", "webcachesim"),
    ],
)
def test_format_is_guessed_from_the_name(name: str, fmt: str) -> None:
    assert guess_format(Path(name)) == fmt


def test_sizes_parse_percentages_and_binary_units() -> None:
    assert parse_size("10%", 1000) == 100
    assert parse_size("2.5%", 1000) == 25
    assert parse_size("64M", 0) == 64 * 2**20
    assert parse_size("1GiB", 0) == 2**30
    assert parse_size("4096", 0) == 4096
    with pytest.raises(ValueError):
        parse_size("lots", 0)
