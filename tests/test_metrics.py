"""The front end's counts: gathered per request, handed to Prometheus once per loop turn.

``FrontendMetrics`` adds observations up between two flushes and hands them
over with ``observe_many``, which updates a histogram's values directly
(``prometheus_client`` observes one value at a time): these properties check
that what is exposed is exactly what observing each request would expose.
"""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Histogram, generate_latest

from packrat.frontend.metrics import DURATION_BUCKETS, FrontendMetrics, _Pending, observe_many

durations = st.lists(
    st.one_of(
        st.sampled_from(DURATION_BUCKETS),  # on a bound: it belongs to that bucket
        st.floats(min_value=0, max_value=100, allow_nan=False),
    ),
    max_size=50,
)


def exposed(collector) -> str:
    """The exposition, without the ``_created`` times (of the two objects, not of the counts)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    lines = generate_latest(registry).decode().splitlines()
    return "\n".join(line for line in lines if "_created" not in line)


def histogram() -> Histogram:
    return Histogram("d_seconds", "d", ["route"], buckets=DURATION_BUCKETS, registry=None)


@given(durations)
@settings(max_examples=200, deadline=None)
def test_observe_many_exposes_what_single_observations_do(values):
    one_by_one, at_once = histogram(), histogram()
    one_by_one.labels("/{key}")
    pending = _Pending(len(DURATION_BUCKETS) + 1)
    for value in values:
        one_by_one.labels("/{key}").observe(value)
        pending.observe(DURATION_BUCKETS, value)
    observe_many(at_once.labels("/{key}"), pending.buckets, pending.seconds)
    assert exposed(at_once) == exposed(one_by_one)


@given(st.lists(st.tuples(st.sampled_from(["GET", "PUT", "BREW"]), durations), max_size=5))
@settings(max_examples=50, deadline=None)
def test_counts_reach_prometheus_by_the_next_loop_turn(requests):
    """Requests counted during one turn of the loop are exposed after it, and a
    method outside the known ones is counted as "other" (no label made up by a client)."""
    metrics, reference = FrontendMetrics(), FrontendMetrics()

    async def serve() -> str:
        for method, values in requests:
            for value in values:
                metrics.request("/{key}", method, 200, value, 10, 1000)
                metrics.hit()
        await asyncio.sleep(0)  # the flush scheduled by the first count runs
        return exposed(metrics)

    text = asyncio.run(serve())
    for method, values in requests:
        for value in values:
            label = method if method != "BREW" else "other"
            reference.requests.labels("/{key}", label, "200").inc()
            reference.duration.labels("/{key}", label).observe(value)
            reference.received.labels("/{key}").inc(10)
            reference.sent.labels("/{key}").inc(1000)
            reference.hits.inc()
    assert text == exposed(reference)
