"""The front end's Prometheus metrics, and what ``GET /metrics`` answers.

Each front end counts its own requests, bytes, reads and coordinator round
trips; with ``packrat.core.metrics_directory.use_directory`` they go to the shared
directory and a scrape of any front end adds up all of them (and the
supervisor's restarts).  The coordinator's figures (objects, bytes, evictions)
are fetched with one ``Stats`` round trip per scrape and exposed by
``CoordinatorCollector``; its counters restart from zero with the
coordinator, which Prometheus' ``rate()`` handles as a counter reset.

Per request, counting is a few additions to plain numbers (``request``,
``hit``, ``miss``, ``observe_round_trip``, ``uploads`` for the gauge); they
reach Prometheus' values (locked, memory-mapped; each label set's children
looked up once per process) in one ``flush`` per turn of the event loop, right
after the answers of that turn were written, and before this process's own
scrape.  Under load one flush serves many requests; a scrape of another
front end sees them a turn of the loop later, microseconds after the answer.
"""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector

from packrat import __version__
from packrat.core.metrics_directory import forget_dead_processes, shared_directory

# Seconds: small reads take about a millisecond, a large upload minutes.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
ROUND_TRIP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 1, 5)
# Methods counted under their own name; any other is "other", so a client
# cannot make up label values.
METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"))


class _Pending:
    """Counts of one label set since the last flush: a histogram's and its counters'."""

    __slots__ = ("buckets", "count", "received", "seconds", "sent")

    def __init__(self, buckets: int) -> None:
        self.count = 0
        self.seconds = 0.0
        self.buckets = [0] * buckets  # observations per bucket (not cumulative)
        self.received = 0
        self.sent = 0

    def observe(self, bounds: tuple[float, ...], seconds: float) -> None:
        self.count += 1
        self.seconds += seconds
        self.buckets[bisect.bisect_left(bounds, seconds)] += 1


def observe_many(histogram: Any, buckets: list[int], total: float) -> None:
    """Add observations to a histogram's child at once: ``buckets[i]`` of them in its
    i-th bucket, summing to ``total``.

    ``prometheus_client`` observes one value at a time; this updates the
    same values ``Histogram.observe`` updates (its ``_sum`` and ``_buckets``),
    once per flush instead of once per request.  ``tests/test_metrics.py``
    checks that it exposes what single observations would.
    """
    histogram._sum.inc(total)
    for value, count in zip(histogram._buckets, buckets, strict=True):
        if count:
            value.inc(count)


class FrontendMetrics:
    """One process's metrics (create one per process, after ``use_directory``).

    ``request`` is the per-request cost: a dictionary lookup and a few
    additions; ``flush`` hands them to Prometheus (see the module docstring).
    """

    def __init__(self) -> None:
        self.requests = Counter(
            "packrat_http_requests",
            "HTTP requests answered, by route, method and status",
            ["route", "method", "status"],
            registry=None,
        )
        self.duration = Histogram(
            "packrat_http_request_duration_seconds",
            "Time from a request's start to its last byte handed to the socket",
            ["route", "method"],
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.received = Counter(
            "packrat_http_received_bytes",
            "HTTP request body bytes received",
            ["route"],
            registry=None,
        )
        self.sent = Counter(
            "packrat_http_sent_bytes",
            "HTTP response body bytes sent",
            ["route"],
            registry=None,
        )
        self.hits = Counter(
            "packrat_cache_hits", "Reads (GET, HEAD) that found their object", registry=None
        )
        self.misses = Counter(
            "packrat_cache_misses", "Reads (GET, HEAD) of a key with no object", registry=None
        )
        self.round_trip = Histogram(
            "packrat_coordinator_request_duration_seconds",
            "Round trips to the coordinator, by request (failed ones included)",
            ["op"],
            buckets=ROUND_TRIP_BUCKETS,
            registry=None,
        )
        self.turbo_events = Counter(
            "packrat_turbo_events",
            "Turborepo's cache usage events (POST /v8/artifacts/events), by source and event",
            ["source", "event"],
            registry=None,
        )
        self.turbo_saved = Counter(
            "packrat_turbo_saved_seconds",
            "Task time Turborepo's cache hits saved, as its events report it, by source",
            ["source"],
            registry=None,
        )
        self.uploads_in_flight = Gauge(
            "packrat_uploads_in_flight",
            "Uploads being received, in every running front end",
            multiprocess_mode="livesum",
            registry=None,
        )
        self._requests: dict[tuple[str, str, int], _Pending] = {}
        self._round_trips: dict[str, _Pending] = {}
        # The labelled children of each label set, looked up once (``labels`` checks and
        # locks on every call): requests, duration, received, sent.
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any, Any]] = {}
        self._round_trip_children: dict[str, Any] = {}
        self._hits = 0
        self._misses = 0
        self._uploads = 0  # being received now
        self._uploads_shown = 0  # as the gauge has it
        self._flush_soon = False

    def request(
        self, route: str, method: str, status: int, seconds: float, received: int, sent: int
    ) -> None:
        """Count one answered request."""
        pending = self._requests.get((route, method, status))
        if pending is None:
            pending = self._requests[(route, method, status)] = _Pending(len(DURATION_BUCKETS) + 1)
        pending.observe(DURATION_BUCKETS, seconds)
        pending.received += received
        pending.sent += sent
        if not self._flush_soon:  # a call less for every answer after a turn's first
            self._dirty()

    def hit(self) -> None:
        self._hits += 1
        if not self._flush_soon:
            self._dirty()

    def miss(self) -> None:
        self._misses += 1
        if not self._flush_soon:
            self._dirty()

    def uploads(self, count: int) -> None:
        """The number of uploads being received, set on its gauge by the next flush (a
        locked write to a shared file: once a turn, not twice an upload)."""
        self._uploads = count
        if not self._flush_soon:
            self._dirty()

    def observe_round_trip(self, op: str, seconds: float) -> None:
        pending = self._round_trips.get(op)
        if pending is None:
            pending = self._round_trips[op] = _Pending(len(ROUND_TRIP_BUCKETS) + 1)
        pending.observe(ROUND_TRIP_BUCKETS, seconds)
        self._dirty()

    def _dirty(self) -> None:
        if not self._flush_soon:
            self._flush_soon = True
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no event loop (a tool, a test): at once
                self.flush()

    def flush(self) -> None:
        """Hand the counts gathered since the last flush to Prometheus' values."""
        self._flush_soon = False
        requests, self._requests = self._requests, {}
        for labels, pending in requests.items():
            children = self._children.get(labels) or self._labelled(*labels)
            count, duration, received, sent = children
            count.inc(pending.count)
            observe_many(duration, pending.buckets, pending.seconds)
            if pending.received:
                received.inc(pending.received)
            if pending.sent:
                sent.inc(pending.sent)
        round_trips, self._round_trips = self._round_trips, {}
        for op, pending in round_trips.items():
            child = self._round_trip_children.get(op)
            if child is None:
                child = self._round_trip_children[op] = self.round_trip.labels(op)
            observe_many(child, pending.buckets, pending.seconds)
        if self._hits:
            self.hits.inc(self._hits)
            self._hits = 0
        if self._misses:
            self.misses.inc(self._misses)
            self._misses = 0
        if self._uploads != self._uploads_shown:
            self.uploads_in_flight.set(self._uploads)
            self._uploads_shown = self._uploads

    def _labelled(self, route: str, method: str, status: int) -> tuple[Any, Any, Any, Any]:
        """The children a request of these labels counts in (made once per label set)."""
        label = method if method in METHODS else "other"
        children = (
            self.requests.labels(route, label, str(status)),
            self.duration.labels(route, label),
            self.received.labels(route),
            self.sent.labels(route),
        )
        self._children[(route, method, status)] = children
        return children

    def collect(self) -> Iterator[Metric]:
        """This process's values (when they are not shared through files)."""
        self.flush()
        for metric in (
            self.requests,
            self.duration,
            self.received,
            self.sent,
            self.hits,
            self.misses,
            self.round_trip,
            self.turbo_events,
            self.turbo_saved,
            self.uploads_in_flight,
        ):
            yield from metric.collect()


class CoordinatorCollector:
    """The coordinator's figures from one ``Stats`` reply (None: it did not answer)."""

    def __init__(self, stats: dict[str, Any] | None) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats
        yield GaugeMetricFamily(
            "packrat_coordinator_up",
            "1 when the coordinator answered this scrape's request for its figures",
            value=0 if stats is None else 1,
        )
        if stats is None:
            return
        yield InfoMetricFamily(
            "packrat",
            "Version and eviction policy",
            value={"version": __version__, "policy": stats["policy"]},
        )
        yield GaugeMetricFamily("packrat_cache_objects", "Objects stored", value=stats["objects"])
        yield GaugeMetricFamily(
            "packrat_cache_bytes",
            "Bytes charged against max_size (object files and directory growth)",
            value=stats["bytes"],
        )
        yield GaugeMetricFamily(
            "packrat_cache_max_bytes", "The cache's max_size in bytes", value=stats["max_size"]
        )
        yield CounterMetricFamily(
            "packrat_cache_evictions",
            "Objects evicted since the coordinator started",
            value=stats["evictions"],
        )
        yield CounterMetricFamily(
            "packrat_cache_evicted_bytes",
            "Bytes (charges) evicted since the coordinator started",
            value=stats["evicted_bytes"],
        )
        yield CounterMetricFamily(
            "packrat_cache_commits",
            "Uploads committed since the coordinator started",
            value=stats["commits"],
        )
        yield GaugeMetricFamily(
            "packrat_coordinator_start_time_seconds",
            "When the coordinator started (Unix time)",
            value=stats["started_at"],
        )


def exposition(metrics: FrontendMetrics, stats: dict[str, Any] | None) -> bytes:
    """The Prometheus text of every process's metrics and the coordinator's figures."""
    metrics.flush()
    registry = CollectorRegistry(auto_describe=False)
    directory = shared_directory()
    if directory is not None:
        forget_dead_processes(directory)
        MultiProcessCollector(registry, path=str(directory))
    else:
        registry.register(metrics)
    registry.register(CoordinatorCollector(stats))
    return generate_latest(registry)
