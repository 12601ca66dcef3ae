"""Replay requests through a policy exactly as the coordinator drives it."""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from packrat.policies import Policy
from packrat.simulator.keyed import KeyedPolicy

ADMISSIONS = ("all", "policy")
"""``all``: store every object that fits, as the server does; ``policy``: let it refuse."""


@dataclass(frozen=True)
class Result:
    """Counts from one replay; ratios are derived so they never disagree."""

    policy: str
    size_bytes: int
    requests: int
    misses: int
    bytes_requested: int
    bytes_missed: int
    seconds: float
    admission: str = "all"

    @property
    def object_miss_ratio(self) -> float:
        return self.misses / self.requests if self.requests else 0.0

    @property
    def byte_miss_ratio(self) -> float:
        return self.bytes_missed / self.bytes_requested if self.bytes_requested else 0.0

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else float("inf")

    def as_dict(self) -> dict[str, object]:
        """The ``--json`` line for this run."""
        return {
            "policy": self.policy,
            "admission": self.admission,
            "size_bytes": self.size_bytes,
            "requests": self.requests,
            "object_miss_ratio": self.object_miss_ratio,
            "byte_miss_ratio": self.byte_miss_ratio,
            "requests_per_second": self.requests_per_second,
        }


def replay(
    requests: Iterable[tuple[Hashable, int]],
    policy: str | Policy,
    capacity: int,
    low_water: float = 1.0,
    admission: str = "all",
) -> Result:
    """Replay ``(key, size)`` requests against a cache of ``capacity`` bytes.

    A request is a hit when the key is cached at that size.  On a miss the
    object is uploaded, as a client does after fetching it elsewhere, and
    stored the way the server stores it:

    * ``admission="all"`` (the default, what ``packrat serve`` does): every
      object that fits in the cache is stored, ``make_room`` then ``insert``;
    * ``admission="policy"``: the policy may also refuse it (``admit``, e.g.
      S3-FIFO's refusal of objects as large as its probation queue), as
      libCacheSim does; only for comparing with libCacheSim.

    Objects larger than the cache are never stored (the server answers 413).
    A key seen again at another size is an overwrite: the old copy is removed
    and the request is a miss.
    """
    if admission not in ADMISSIONS:
        raise ValueError(f"admission must be one of {', '.join(ADMISSIONS)}, not {admission!r}")
    cache = KeyedPolicy(policy)
    by_policy = admission == "policy"
    n = misses = nbytes = missed = 0
    start = time.perf_counter()
    for key, size in requests:
        n += 1
        nbytes += size
        cached = cache.size_of(key)
        if cached == size:
            cache.access(key)
            continue
        if cached is not None:
            cache.remove(key)
        misses += 1
        missed += size
        store = cache.admit(size, capacity) if by_policy else size <= capacity
        if store:
            cache.make_room(size, capacity, low_water)
            cache.insert(key, size)
    seconds = time.perf_counter() - start
    return Result(cache.name, capacity, n, misses, nbytes, missed, seconds, admission)
