"""The front end's Prometheus metrics, and what ``GET /metrics`` answers.

Each front end counts its own requests, bytes, reads and coordinator round
trips; with ``packrat.core.metrics_directory.use_directory`` they go to the shared
directory and a scrape of any front end adds up all of them (and the
supervisor's restarts).  The coordinator's figures (objects, bytes, evictions)
are fetched with one ``Stats`` round trip per scrape and exposed by
``CoordinatorCollector``; its counters restart from zero with the
coordinator, which Prometheus' ``rate()`` handles as a counter reset.
"""

from __future__ import annotations

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


class FrontendMetrics:
    """One process's metrics (create one per process, after ``use_directory``).

    ``request`` is the per-request cost: one dictionary lookup for the
    labelled children, then four increments.
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
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any, Any]] = {}

    def request(
        self, route: str, method: str, status: int, seconds: float, received: int, sent: int
    ) -> None:
        """Count one answered request."""
        if method not in METHODS:
            method = "other"
        label = (route, method, status)
        children = self._children.get(label)
        if children is None:
            children = self._children[label] = (
                self.requests.labels(route, method, str(status)),
                self.duration.labels(route, method),
                self.received.labels(route),
                self.sent.labels(route),
            )
        requests, duration, received_bytes, sent_bytes = children
        requests.inc()
        duration.observe(seconds)
        if received:
            received_bytes.inc(received)
        if sent:
            sent_bytes.inc(sent)

    def observe_round_trip(self, op: str, seconds: float) -> None:
        self.round_trip.labels(op).observe(seconds)

    def collect(self) -> Iterator[Metric]:
        """This process's values (when they are not shared through files)."""
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
    registry = CollectorRegistry(auto_describe=False)
    directory = shared_directory()
    if directory is not None:
        forget_dead_processes(directory)
        MultiProcessCollector(registry, path=str(directory))
    else:
        registry.register(metrics)
    registry.register(CoordinatorCollector(stats))
    return generate_latest(registry)
