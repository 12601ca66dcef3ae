"""Readers turning trace files into ``(key, size)`` requests.

Each reader follows the reading that the reference figures in
``shared/traces/SOURCES.md`` use, so miss ratios are comparable with
libCacheSim's.  Files ending in ``.xz``, ``.gz`` or ``.bz2`` are
decompressed on the fly.  A line a reader cannot take is an error naming
the file, the line and the format expected (``FORMATS``), never a request
quietly skipped: a trace in the wrong format would otherwise replay as
nothing.
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

from packrat.core.numbers import whole_number

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
            size = _size(row[6]) if len(row) >= 7 else None
            if not size or row[3] != "GET" or row[5] != "200":
                continue
            url = row[4]
            urls.append(url)
            if size > largest.get(url, 0):
                largest[url] = size
    return [(url, largest[url]) for url in urls]


class TraceError(ValueError):
    """A trace that does not read as the format it was given."""


def _size(text: str) -> int | None:
    """A size field's bytes."""
    return whole_number(text.strip())


def _bad_line(path: Path, number: int, line: str, fmt: str) -> TraceError:
    return TraceError(f"{path}: line {number} is not {FORMATS[fmt]}: {line.strip()[:80]!r}")


def read_webcachesim(path: Path) -> Iterator[Request]:
    """webcachesim text (``time id size``): an (id, size) pair is one object.

    Caffeine and webcachesim treat a size change as a new object; so do we.
    """
    with _open(path, "rt") as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 3:
                raise _bad_line(path, number, line, "webcachesim")
            size, key = _size(fields[2]), whole_number(fields[1].removeprefix("-"))
            if size is None or key is None:
                raise _bad_line(path, number, line, "webcachesim")
            yield (-key if fields[1].startswith("-") else key, size), size


def read_oracle_general(path: Path) -> Iterator[Request]:
    """libCacheSim's oracleGeneral binary: 24-byte ``<IQIq`` records."""
    with _open(path, "rb") as f:
        data = f.read()
    for _, obj_id, size, _ in ORACLE_RECORD.iter_unpack(data[: len(data) // 24 * 24]):
        yield obj_id, size


def read_csv(path: Path) -> Iterator[Request]:
    """Plain ``time,key,size`` csv; a first line whose size is not a number is a header."""
    with _open(path, "rt") as f:
        for number, row in enumerate(csv.reader(f), 1):
            if not row:
                continue
            size = _size(row[2]) if len(row) >= 3 else None
            if size is None:
                if number == 1 and len(row) >= 3:
                    continue
                raise _bad_line(path, number, ",".join(row), "csv")
            yield row[1], size


FORMATS = {
    "nasa": "NASA-HTTP tsv (a header, then host, time, ..., method, url, status, bytes)",
    "webcachesim": "webcachesim text: 'time id size', space-separated, integers",
    "oracleGeneral": "libCacheSim oracleGeneral binary (24-byte records)",
    "csv": "csv 'time,key,size' (size in bytes; an optional header line)",
}
"""Each ``--format``, as the error for a trace that does not read says it."""

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
    """All requests of a trace, in order; ``fmt`` defaults to a guess.

    Raises ``TraceError`` when a line does not read, or nothing does.
    """
    path = Path(path)
    fmt = fmt or guess_format(path)
    try:
        requests = list(READERS[fmt](path))
    except (UnicodeDecodeError, EOFError, lzma.LZMAError, OSError) as e:
        if isinstance(e, FileNotFoundError | PermissionError | IsADirectoryError):
            raise
        raise TraceError(f"{path}: does not read as {FORMATS[fmt]}: {e}") from None
    if not requests:
        raise TraceError(f"{path}: no requests read as {FORMATS[fmt]} (--format to choose)")
    return requests


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
