"""Replay requests through a policy exactly as the coordinator drives it."""

from __future__ import annotations

import time
from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from packrat.policies import Policy
from packrat.simulator.charges import BytesCharge, Charge
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
    charge: str = "bytes"

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
            "charge": self.charge,
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
    charge: Charge | None = None,
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

    ``charge`` (``packrat.simulator.charges``) is what an object costs
    against ``capacity``: its data bytes by default, as libCacheSim counts;
    ``ServerCharge()`` for what ``packrat serve`` counts.  Miss ratios count
    data bytes either way.

    Objects larger than the cache are never stored (the server answers 413).
    A key seen again at another size is an overwrite: the old copy is removed
    and the request is a miss.
    """
    if admission not in ADMISSIONS:
        raise ValueError(f"admission must be one of {', '.join(ADMISSIONS)}, not {admission!r}")
    cache = KeyedPolicy(policy)
    charge = charge or BytesCharge()
    room = charge.room(capacity)
    by_policy = admission == "policy"
    # The data size of each cached key: the policy's own sizes when it is
    # charged data bytes (the common comparison, kept fast), else a mirror.
    plain = isinstance(charge, BytesCharge)
    stored: dict[Hashable, int] = {}
    n = misses = nbytes = missed = 0
    start = time.perf_counter()
    for key, size in requests:
        n += 1
        nbytes += size
        cached = cache.size_of(key) if plain else stored.get(key)
        if cached == size:
            cache.access(key)
            continue
        if cached is not None:
            cache.remove(key)
            stored.pop(key, None)
        misses += 1
        missed += size
        cost = size if plain else charge(key, size)
        if cache.admit(cost, room) if by_policy else cost <= room:
            victims = cache.make_room(cost, room, low_water)
            if not plain:
                for victim, _ in victims:
                    del stored[victim]
            cache.insert(key, cost)
            if not plain:
                stored[key] = size
    seconds = time.perf_counter() - start
    return Result(cache.name, capacity, n, misses, nbytes, missed, seconds, admission, charge.name)
