"""What a replayed object costs against the cache size.

``packrat serve`` charges each object the disk it really takes
(``packrat.store.accounting``): its file, data plus metadata trailer, in
whole blocks, plus its row of the index snapshot; and the index keeps one
block of headroom for its directories' growth.  A trace gives only data
sizes, so ``ServerCharge`` rebuilds the rest the way the server would: the
trailer of an upload named after its key's last segment, typed
``application/octet-stream``.  For objects of a few KiB the difference with
the data size is large (a 1 KiB object takes a 4 KiB block), and a simulator
charging data bytes predicts a hit ratio the server never reaches.

``BytesCharge`` charges the data size and nothing else: what libCacheSim and
webcachesim count, for comparing with them.
"""

from __future__ import annotations

import os
from collections.abc import Hashable
from pathlib import Path

from packrat.coordinator.index import DIR_RESERVE
from packrat.store.accounting import expected_charge
from packrat.store.format import ObjectMeta, encode_trailer
from packrat.store.layout import BLOCK

CONTENT_TYPE = "application/octet-stream"
_SHA256 = "0" * 64
_XXH3 = "0" * 32


class BytesCharge:
    """Each object costs its data bytes; the whole size holds objects."""

    name = "bytes"

    def __call__(self, key: Hashable, size: int) -> int:
        return size

    def room(self, max_size: int) -> int:
        """The bytes objects may take in a cache of ``max_size``."""
        return max_size


class ServerCharge:
    """Each object costs what ``packrat serve`` charges for it.

    ``block``: the file system's allocation unit; the server never counts
    less than 4 KiB a file, so smaller blocks change nothing.
    """

    name = "server"

    def __init__(self, block: int = BLOCK) -> None:
        self.block = max(block, BLOCK)
        self._known: dict[tuple[Hashable, int], int] = {}

    def __call__(self, key: Hashable, size: int) -> int:
        known = self._known.get((key, size))
        if known is None:
            known = self._known[key, size] = self._charge(str(key), size)
        return known

    def _charge(self, key: str, size: int) -> int:
        meta = ObjectMeta(key, key.rsplit("/", 1)[-1], CONTENT_TYPE, size, _SHA256, 0.0, _XXH3)
        return expected_charge(size + len(encode_trailer(meta)), key, self.block)

    def room(self, max_size: int) -> int:
        """The bytes objects may take in a cache of ``max_size`` (as ``Index.capacity``)."""
        return max(max_size - DIR_RESERVE, 0)


Charge = BytesCharge | ServerCharge
CHARGES = ("server", "bytes")


def block_size(root: Path) -> int:
    """The allocation unit of the file system holding ``root`` (or its nearest parent)."""
    path = Path(root).absolute()
    while not path.exists():
        path = path.parent
    return os.statvfs(path).f_frsize or BLOCK


def make_charge(name: str, root: Path | None = None) -> Charge:
    """The charge called ``name``; ``root``: the cache root whose blocks the server counts."""
    if name == "bytes":
        return BytesCharge()
    if name == "server":
        return ServerCharge(block_size(root) if root is not None else BLOCK)
    raise ValueError(f"charge must be one of {', '.join(CHARGES)}, not {name!r}")
