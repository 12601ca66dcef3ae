"""Readers turning trace files into ``(key, size)`` requests.

Each reader follows the reading that the reference figures in
``shared/traces/SOURCES.md`` use, so miss ratios are comparable with
libCacheSim's.  Files ending in ``.xz``, ``.gz`` or ``.bz2`` are
decompressed on the fly.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import lzma
import struct
from collections.abc import Callable, Hashable, Iterator
from pathlib import Path
from typing import IO

Request = tuple[Hashable, int]

ORACLE_RECORD = struct.Struct("<IQIq")
"""libCacheSim's oracleGeneral record: time, object id, size, next access."""

_OPENERS: dict[str, Callable[..., IO]] = {".xz": lzma.open, ".gz": gzip.open, ".bz2": bz2.open}


def _open(path: Path, mode: str) -> IO:
    return _OPENERS.get(path.suffix, open)(path, mode)


def read_nasa(path: Path) -> list[Request]:
    """NASA-HTTP log as tsv: successful GETs with a body, key = URL.

    A URL's size is the largest byte count logged for it, because shorter
    entries are interrupted transfers of the same file.
    """
    urls: list[str] = []
    largest: dict[str, int] = {}
    with _open(path, "rt") as f:
        rows = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(rows, None)
        for row in rows:
            if len(row) < 7 or row[3] != "GET" or row[5] != "200" or not row[6].isdigit():
                continue
            size = int(row[6])
            if size <= 0:
                continue
            url = row[4]
            urls.append(url)
            if size > largest.get(url, 0):
                largest[url] = size
    return [(url, largest[url]) for url in urls]


def read_webcachesim(path: Path) -> Iterator[Request]:
    """webcachesim text (``time id size``): an (id, size) pair is one object.

    Caffeine and webcachesim treat a size change as a new object; so do we.
    """
    with _open(path, "rt") as f:
        for line in f:
            fields = line.split()
            if len(fields) >= 3:
                yield (int(fields[1]), int(fields[2])), int(fields[2])


def read_oracle_general(path: Path) -> Iterator[Request]:
    """libCacheSim's oracleGeneral binary: 24-byte ``<IQIq`` records."""
    with _open(path, "rb") as f:
        data = f.read()
    for _, obj_id, size, _ in ORACLE_RECORD.iter_unpack(data[: len(data) // 24 * 24]):
        yield obj_id, size


def read_csv(path: Path) -> Iterator[Request]:
    """Plain ``time,key,size`` csv; a header line is skipped if present."""
    with _open(path, "rt") as f:
        for row in csv.reader(f):
            if len(row) >= 3 and row[2].strip().isdigit():
                yield row[1], int(row[2])


READERS: dict[str, Callable[[Path], Iterator[Request] | list[Request]]] = {
    "nasa": read_nasa,
    "webcachesim": read_webcachesim,
    "oracleGeneral": read_oracle_general,
    "csv": read_csv,
}


def guess_format(path: Path) -> str:
    """Pick a reader from the file name, as ``--format`` would name it."""
    name = path.name.lower()
    if "oraclegeneral" in name or name.endswith(".bin"):
        return "oracleGeneral"
    if name.endswith((".tsv", ".tsv.xz", ".tsv.gz")):
        return "nasa"
    if name.endswith((".csv", ".csv.xz", ".csv.gz")):
        return "csv"
    return "webcachesim"


def read_trace(path: str | Path, fmt: str | None = None) -> list[Request]:
    """All requests of a trace, in order; ``fmt`` defaults to a guess."""
    path = Path(path)
    return list(READERS[fmt or guess_format(path)](path))


def unique_bytes(
    requests: list[Request], charge: Callable[[Hashable, int], int] | None = None
) -> int:
    """Sum of the sizes (or ``charge``) of the distinct objects: what ``10%`` is a fraction of."""
    sizes: dict[Hashable, int] = {}
    for key, size in requests:
        sizes[key] = max(size, sizes.get(key, 0))
    if charge is None:
        return sum(sizes.values())
    return sum(charge(key, size) for key, size in sizes.items())
