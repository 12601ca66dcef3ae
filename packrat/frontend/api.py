"""``GET /api/stats``: the status page's figures as JSON, for scripts and ``packrat stat``."""

from __future__ import annotations

from packrat import __version__
from packrat.frontend.base import BaseHandler

# The coordinator's counters the answer carries (its reply also has id, ok, v).
STATS_FIELDS = (
    "objects",
    "bytes",
    "max_size",
    "policy",
    "hits",
    "misses",
    "evictions",
    "evicted_bytes",
    "commits",
)


class StatsHandler(BaseHandler):
    """The coordinator's counters plus ``version`` and ``hit_ratio`` (hits per lookup).

    Needs the read right, like the status page; 503 ``coordinator_unavailable``
    while the coordinator is down.
    """

    async def get(self) -> None:
        reply = await self.client.request("stats")
        stats = {name: reply[name] for name in STATS_FIELDS if name in reply}
        lookups = stats.get("hits", 0) + stats.get("misses", 0)
        stats["hit_ratio"] = stats.get("hits", 0) / lookups if lookups else 0.0
        stats["version"] = __version__
        self.write_json(stats)
