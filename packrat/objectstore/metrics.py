"""The object store's Prometheus metrics, counted by the front ends and the uploader.

Created after ``core.metrics_directory.use_directory``, they land in the shared
directory like the front ends' own, so any front end's ``GET /metrics``
shows them all.  One instance per process (``store_metrics``).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class StoreMetrics:
    """Requests to the store and what came of them, the backlog, objects lost before upload."""

    def __init__(self) -> None:
        self.requests = Counter(
            "packrat_objectstore_requests",
            "Requests sent to the object store, by operation",
            ["op"],
            registry=None,
        )
        self.errors = Counter(
            "packrat_objectstore_errors",
            "Store requests that failed, by operation and kind "
            "(unavailable: no answer, throttled, server, refused: a 4xx other than "
            "not-found and precondition failed)",
            ["op", "kind"],
            registry=None,
        )
        self.duration = Histogram(
            "packrat_objectstore_request_duration_seconds",
            "Store requests, until the answer's headers (a GET's body streams on)",
            ["op"],
            buckets=DURATION_BUCKETS,
            registry=None,
        )
        self.sent = Counter(
            "packrat_objectstore_sent_bytes", "Object bytes sent to the store", registry=None
        )
        self.received = Counter(
            "packrat_objectstore_received_bytes",
            "Object bytes received from the store",
            registry=None,
        )
        self.fetches = Counter(
            "packrat_objectstore_fetches",
            "Local misses asked of the store, by outcome (fetched, absent, corrupt, "
            "unavailable: the breaker was open or the store failed)",
            ["outcome"],
            registry=None,
        )
        self.uploads = Counter(
            "packrat_objectstore_uploads",
            "Objects the uploader dealt with, by outcome (uploaded; newer_in_store: the "
            "store held that version or a newer one; fetched: came from the store; "
            "corrupt: the store refused the bytes as not matching their sha256)",
            ["outcome"],
            registry=None,
        )
        self.lost = Counter(
            "packrat_objectstore_lost_before_upload",
            "Objects evicted (or dropped as corrupt) from the local disk before they reached "
            "the store: they are in neither",
            registry=None,
        )
        self.deletes = Counter(
            "packrat_objectstore_deletes",
            "Client DELETEs applied to the store",
            registry=None,
        )
        self.backlog = Gauge(
            "packrat_objectstore_backlog_objects",
            "Objects committed locally and not yet in the store, as the uploader tracks them",
            multiprocess_mode="livesum",
            registry=None,
        )
        self.backlog_bytes = Gauge(
            "packrat_objectstore_backlog_bytes",
            "Bytes of those objects",
            multiprocess_mode="livesum",
            registry=None,
        )
        self.backlog_age = Gauge(
            "packrat_objectstore_backlog_oldest_seconds",
            "Age of the oldest object waiting for upload (0: none)",
            multiprocess_mode="livemax",
            registry=None,
        )
        self.up = Gauge(
            "packrat_objectstore_up",
            "1 while every process's circuit breaker to the store is closed, else 0",
            multiprocess_mode="livemin",
            registry=None,
        )
        self.up.set(1)


_metrics: StoreMetrics | None = None


def store_metrics() -> StoreMetrics:
    """This process's ``StoreMetrics`` (made at first use, after ``use_directory``)."""
    global _metrics
    if _metrics is None:
        _metrics = StoreMetrics()
    return _metrics
